"""A real server: `crosscheck serve` under uvicorn on a loopback port, set up the way an operator
does it (`crosscheck ingest` for every source and the roll, `crosscheck users add`), then used
over HTTP the way another system does: the generated roll (a GBK CSV with Chinese headers) is
uploaded, the batch polled, and its flags must equal the generator's ground truth."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import AS_OF, City

STARTUP_SECONDS = 60  # a server not answering by then has failed to start
POLL_SECONDS = 120


def _crosscheck(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(city: City, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """(base URL, the system user's token, the process) of a server on a store set up by the CLI."""
    data_dir = tmp_path_factory.mktemp("served") / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSCHECK_")}
    env.update(CROSSCHECK_POLICY=str(city.paths["policy"]), CROSSCHECK_MAX_UPLOAD_MB="1")
    for path in sorted(city.paths["sources"].iterdir()):
        done = _crosscheck("ingest", path.stem, path, "--snapshot-date", AS_OF, "--data-dir", data_dir, env=env)
        assert done.returncode == 0, done.stderr
    added = _crosscheck("users", "add", "另一系统", "--role", "system", "--region", "32", "--data-dir", data_dir, env=env)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()

    port = _free_port()
    log = (data_dir.parent / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--data-dir", str(data_dir)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        assert process.poll() is None, (data_dir.parent / "server.log").read_text()
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not answer /health"
        time.sleep(0.2)
    try:
        yield base, token, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _truth(path: Path) -> set[tuple[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return {(row["household_id"], row["rule_id"]) for row in csv.DictReader(handle)}


def test_the_uploaded_roll_is_flagged_as_the_ground_truth_says(server, city: City):
    base, token, _ = server
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        assert client.get("/health").json()["snapshots"]["hukou"] == AS_OF.isoformat()  # no roll: the upload is it
        with city.paths["roll"].open("rb") as roll:
            response = client.post("/batches", files={"file": ("roll.csv", roll, "text/csv")},
                                   data={"as_of": AS_OF.isoformat()})
        assert response.status_code == 202, response.text
        batch_id = response.json()["id"]
        deadline = time.monotonic() + POLL_SECONDS
        while (batch := client.get(f"/batches/{batch_id}").json())["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, batch
            time.sleep(0.2)
        assert batch["status"] == "completed", batch["error"]
        assert batch["problems"] == [] and batch["rows"] == city.roll.height
        flags = client.get(f"/batches/{batch_id}/flags").json()
    assert {(f["household_id"], f["rule_id"]) for f in flags} == _truth(city.paths["truth"])


def test_an_upload_over_the_limit_is_refused_before_it_is_sent_whole(server):
    """64 MiB declared against a 1 MiB limit: the answer comes before the body has been read
    (the client stops having sent a small part of it)."""
    base, token, _ = server
    size, chunk = 64 << 20, b"0" * (64 << 10)
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        while sent < size:
            sent += len(chunk)
            yield chunk

    headers = {"Authorization": f"Bearer {token}", "Content-Length": str(size),
               "Content-Type": "multipart/form-data; boundary=x"}
    response = httpx.post(f"{base}/batches", content=body(), headers=headers, timeout=60)
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert sent < size / 4


def test_the_server_stops_cleanly(server):
    """SIGTERM (what systemd and docker send): uvicorn finishes its requests, the app's shutdown
    runs (the batch worker, the audit log flushed), and the process ends by that signal."""
    _, _, process = server
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    log = Path(process.args[-1]).parent / "server.log"
    assert "Application shutdown complete" in log.read_text()
