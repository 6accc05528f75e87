"""Docs are tests: the README's set-up lines, its usage examples and its rule table."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main as cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _block_after(heading: str) -> list[str]:
    section = README.split(heading, 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no bash block after {heading}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_the_two_set_up_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert first_block == ["pip install -e . && crosscheck demo", "pip install -e '.[dev]' && python -m pytest"]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pip install -q -e '.[dev]' && python -m pytest" in ci


def test_usage_examples_run(tmp_path):
    for line in _block_after("## Usage"):
        words = shlex.split(line)
        assert words[0] == "crosscheck"
        completed = subprocess.run(
            [sys.executable, "-m", "engine", *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert completed.returncode == 0, f"{line}\n{completed.stdout}\n{completed.stderr}"
    assert (tmp_path / "demo-out" / "flags.parquet").exists()
    assert (tmp_path / "demo-out" / "monthly.csv").exists()


def test_rule_table_is_the_catalogue():
    table = CliRunner().invoke(cli, ["rules", "--format", "markdown"]).output.strip()
    block = README.split("<!-- rules:begin", 1)[1].split("-->", 1)[1].split("<!-- rules:end -->", 1)[0]
    assert block.strip() == table


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rest_api_examples_run(tmp_path):
    """The REST API section's commands as written: add the users, start the server, then the two
    curl calls (a check of one household, a roll batch uploaded as XLSX) answer as described."""
    import json
    import os
    import time

    import httpx

    from fixtures.generator import generate
    from schemas import ROLL

    env = {**os.environ, "CROSSCHECK_DATA_DIR": str(tmp_path / "data"), "CROSSCHECK_DATABASE_URL": ""}
    commands = _block_after("## REST API")
    port = _free_port()
    tokens = []
    for line in commands[:-1]:
        words = shlex.split(line.split("#", 1)[0])
        assert words[:3] == ["crosscheck", "users", "add"], line
        added = subprocess.run([sys.executable, "-m", "engine", *words[1:]], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
        assert added.returncode == 0, added.stderr
        tokens.append(added.stdout.strip())
    serve = shlex.split(commands[-1].split("#", 1)[0].replace("8000", str(port)))
    assert serve[:2] == ["crosscheck", "serve"]
    roll = generate(20, seed=3).roll
    chinese = {c.name: c.zh for c in ROLL.columns if c.name in roll.columns and c.zh}
    roll.select(list(chinese)).rename(chinese).write_excel(tmp_path / "roll.xlsx")
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "engine", *serve[1:]], cwd=tmp_path, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        calls = re.search(r"```text\n(.*?)```", README.split("## REST API", 1)[1], re.S).group(1)
        curls = [c.strip() for c in re.split(r"\n(?=curl )", calls.replace("8000", str(port))) if c.strip()]
        assert len(curls) == 2
        answers = []
        for curl in curls:
            done = subprocess.run(["bash", "-c", curl], cwd=tmp_path, env={**env, "TOKEN": tokens[0]},
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            answers.append(json.loads(done.stdout))
        checked, batch = answers
        assert checked["household_id"] == "APP-1" and "error" not in checked
        assert {f["rule_id"] for f in checked["flags"]} <= {"hukou_not_found"}  # the example's ID is valid
        assert batch["status"] == "queued" and batch["file_name"] == "roll.xlsx"
        headers = {"Authorization": f"Bearer {tokens[0]}"}
        while batch["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline + 120
            time.sleep(0.2)
            batch = httpx.get(f"{base}/api/v1/batches/{batch['id']}", headers=headers).json()
        assert batch["status"] == "completed", batch
        assert batch["rows"] == roll.height
    finally:
        server.terminate()
        server.wait(timeout=30)
