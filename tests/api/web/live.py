"""A real server for the pages, set up the way a bureau would: the fixture generator's city
(`python -m fixtures --households 200 --format mixed`: a GBK roll with Chinese headers, sources
in XLSX, CSV and Parquet), its sources ingested with `crosscheck ingest`, users added with
`crosscheck users add`, and `crosscheck serve` started as its own process on a free port.

The browser tests (conftest.py) and docs/screenshots.py both use it.

Users (`Live.tokens`):
    cw_a   caseworker of township A (the township with the most ground-truth findings)
    cw_b   caseworker of township B (the next one in the same county)
    sup    supervisor of their county (6 digits)
    aud    auditor of the province (IDs masked; reads the audit log)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[3]
AS_OF = "2026-06-30"
HOUSEHOLDS = 200
ROLES = {"cw_a": "caseworker", "cw_b": "caseworker", "sup": "supervisor", "aud": "auditor"}
WAIT_SECONDS = 120.0

__all__ = ["Live", "live_server", "chromium", "AS_OF"]


def chromium() -> str | None:
    """Debian's chromium (`apt-get install chromium`), if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Live:
    base: str
    data_dir: Path
    city: Path  # the generated fixture directory: roll.csv, sources/, truth.csv, policy.toml
    tokens: dict[str, str]
    regions: dict[str, str]
    township_a: str
    township_b: str
    county: str
    log: Path
    batches: dict[str, int] = field(default_factory=dict)  # the last batch each user uploaded

    @property
    def roll(self) -> Path:
        return self.city / "roll.csv"

    def api(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.base + "/api/v1", timeout=60,
                            headers={"Authorization": f"Bearer {self.tokens[user]}"})

    def upload(self, user: str) -> dict[str, Any]:
        """Upload the roll through the API as `user` and wait until the batch is done."""
        with self.api(user) as client, open(self.roll, "rb") as handle:
            answer = client.post("/batches", files={"file": ("roll.csv", handle, "text/csv")}, data={"as_of": AS_OF})
            assert answer.status_code == 202, answer.text
            batch_id = answer.json()["id"]
            deadline = time.monotonic() + WAIT_SECONDS
            while True:
                batch = client.get(f"/batches/{batch_id}").json()
                if batch["status"] in ("completed", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert batch["status"] == "completed", batch
        self.batches[user] = batch_id
        return batch

    def flags(self, user: str, **query: Any) -> list[dict[str, Any]]:
        with self.api(user) as client:
            answer = client.get("/flags", params={"limit": 1000, **query})
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]

    def cli(self, *words: str) -> str:
        """Run a `crosscheck` command on the server's data directory (in this process)."""
        from engine.cli import main

        result = CliRunner().invoke(main, [*words, "--data-dir", str(self.data_dir)],
                                    env={"CROSSCHECK_POLICY": str(self.city / "policy.toml")})
        if result.exit_code not in (0, 2):  # 2: rows were rejected, the rest is kept
            raise AssertionError(f"crosscheck {' '.join(words)} failed ({result.exit_code}):\n{result.output}")
        return result.stdout


def _townships(city: Path) -> tuple[str, str]:
    """Townships A and B: the two of one county with the most ground-truth findings."""
    from datetime import date

    from engine import loaders

    roll = loaders.load(city / "roll.csv", "roll", date.fromisoformat(AS_OF)).frame
    truth = pl.read_csv(city / "truth.csv", schema_overrides={"household_id": pl.String})
    ranked = (
        truth.join(roll.select("household_id", "region_code").unique("household_id"), on="household_id")
        .group_by(pl.col("region_code").str.slice(0, 9).alias("township")).len()
        .sort(["len", "township"], descending=[True, False]).get_column("township").to_list()
    )
    a = ranked[0]
    return a, next(t for t in ranked[1:] if t[:6] == a[:6])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve_command(port: int, data_dir: Path) -> list[str]:
    words = ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    script = Path(sys.executable).with_name("crosscheck")  # the console script of this environment
    return [str(script), *words] if script.exists() else [sys.executable, "-m", "engine", *words]


@contextmanager
def live_server(workdir: Path) -> Iterator[Live]:
    """Generate the city, prepare the data directory, serve it; stop the server on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    city, data_dir, log = workdir / "city", workdir / "data", workdir / "server.log"
    subprocess.run([sys.executable, "-m", "fixtures", "--households", str(HOUSEHOLDS), "--out", str(city),
                    "--format", "mixed"], check=True, cwd=REPO, capture_output=True)
    a, b = _townships(city)
    regions = {"cw_a": a, "cw_b": b, "sup": a[:6], "aud": a[:2]}
    live = Live("", data_dir, city, {}, regions, a, b, a[:6], log)
    for path in sorted((city / "sources").iterdir()):
        live.cli("ingest", path.stem, str(path), "--snapshot-date", AS_OF)
    for name, role in ROLES.items():
        live.tokens[name] = live.cli("users", "add", name, "--role", role, "--region", regions[name]).strip()

    port = _free_port()
    live.base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CROSSCHECK_POLICY": str(city / "policy.toml"), "PYTHONPATH": str(REPO)}
    with open(log, "wb") as output:
        process = subprocess.Popen(_serve_command(port, data_dir), cwd=REPO, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"crosscheck serve exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(live.base + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"crosscheck serve did not answer in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield live
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
