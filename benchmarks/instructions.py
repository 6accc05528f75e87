"""What a check costs in instructions, counted by valgrind: a figure that does not move with the
machine's speed.

    python benchmarks/instructions.py --data-dir DATA                 # both figures
    python benchmarks/instructions.py --data-dir DATA --only engine --groups 40 --size 16

DATA is a data directory holding the city's snapshots (SQLite), e.g. the `data/` of the directory
`bench_api.py --keep` leaves (it prints where). Two figures, each counted over the measured part only (callgrind starts with its
counting off; this script turns it on after the warm-up, with `callgrind_control`):

* engine: groups of `--size` households of the roll, their IDs as written (dirty ones
  included), checked in process as the check process checks them (`store.check_queue`, driven
  by `step()`, one polars thread): instructions a group;
* server: `POST /api/v1/checks` through the app's ASGI interface in process, each check's answer
  ready at once (worked out beforehand by the real checker): the server's own instructions a
  request, uvicorn's aside. It runs on a copy of DATA's database (its audit log is append-only).

Why: on this project's shared VM the same build's timings move 15-40 % within minutes, so a
change worth 3 % cannot be seen in interleaved timings; its instructions can (two runs of one
build agree within ~0.1 %). Instructions leave out what waits (a cache miss, a hand-over to
another thread or process), so a change is still measured live before it is kept
(`bench_api.py`, `scale.py --steps api`). Needs valgrind (Debian: `apt-get install valgrind`);
under it everything runs ~50× slower.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AS_OF = date(2026, 6, 30)


def _bodies(data_dir: Path, database_url: str | None, count: int, seed: int) -> list[dict[str, object]]:
    from bench_api import bodies_of

    from store import snapshots
    from store.db import Store
    from store.settings import load_settings

    with Store.open(load_settings(data_dir=data_dir, database_url=database_url), migrate=False) as store:
        with store.read() as session:
            roll = snapshots.latest(session)["roll"]
        return bodies_of(snapshots.scan(store, roll).collect(), count, seed)


def _columns(body: dict) -> dict[str, list[str | None]]:
    """A body's members as the roll's String columns, as api.routes.checks hands them on."""
    members = body["members"]
    return {"program": [m["program"] for m in members], "household_id": [body["household_id"]] * len(members),
            "id_number": [m["id_number"] for m in members], "name": [m["name"] for m in members],
            "region_code": [m["region_code"] for m in members],
            "benefit_monthly": [repr(m["benefit_monthly"]) for m in members],
            "relation": [m["relation"] for m in members],
            "declared_income_monthly": [repr(m["declared_income_monthly"]) for m in members],
            "enrolled_on": [None] * len(members)}


def _wait_for_go(ready: Path, go: Path) -> None:
    ready.touch()
    while not go.exists():
        time.sleep(0.05)


def engine_part(args: argparse.Namespace, ready: Path, go: Path) -> None:
    """Under valgrind: warm up, then check `args.groups` groups while counted."""
    from store.check_queue import CheckQueue
    from store.checks import Checker
    from store.db import Store
    from store.settings import load_settings

    bodies = _bodies(args.data_dir, None, args.size * (args.warmup + args.groups), args.seed)
    store = Store.open(load_settings(data_dir=args.data_dir), migrate=False)
    checker = Checker(store, refresh_seconds=1e9)
    checker.current()
    queue = CheckQueue(checker, keep_frames=False)  # as the check process drives it

    def group(index: int) -> None:
        for body in bodies[index * args.size:(index + 1) * args.size]:
            queue.submit(_columns(body), AS_OF)
        while queue.step():
            pass

    for index in range(args.warmup):
        group(index)
    _wait_for_go(ready, go)
    for index in range(args.warmup, args.warmup + args.groups):
        group(index)


def server_part(args: argparse.Namespace, ready: Path, go: Path) -> None:
    """Under valgrind: the app with its lifespan, the checker swapped for answers worked out
    beforehand; warm up, then send `args.requests` requests while counted."""
    import asyncio
    import json
    from concurrent.futures import Future

    from api import deps
    from api.app import create_app
    from store import audit
    from store.db import Store
    from store.settings import load_settings
    from store.users import add_user

    database_url = os.environ["INSTRUCTIONS_DATABASE_URL"]
    bodies = _bodies(args.data_dir, database_url, 200, args.seed)
    payloads = [json.dumps({**body, "as_of": AS_OF.isoformat()}, ensure_ascii=False).encode() for body in bodies]
    # Under valgrind the server's 5 s of caching a user is ~0.1 s of its work: kept for the run,
    # as it is under load, so that no request reads the user from the database.
    deps.USER_CACHE_SECONDS = 1e9
    # Likewise the audit log's writes, every 50 ms of wall time: ~100 entries a write under load,
    # one or two under valgrind, each write's own cost then counted once an entry. Every 2.5 s
    # here, to write about as many at a time.
    audit.AuditLog.__init__.__defaults__ = (2.5,)
    settings = load_settings(data_dir=args.data_dir, database_url=database_url)
    with Store.open(settings) as store:  # the copy of DATA's database
        _, token = add_user(store, "instructions-benchmark", "system", "32")
    app = create_app(settings)

    async def call(payload: bytes) -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": "/api/v1/checks", "raw_path": b"/api/v1/checks", "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode()),
                             (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "app": app}
        given, status = False, 0

        async def receive() -> dict:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": payload, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    async def run() -> None:
        async with app.router.lifespan_context(app):
            state = app.state.crosscheck
            answers = {}
            for body in bodies:
                members = _columns(body)
                answers[body["household_id"]] = state.checks.submit(members, AS_OF).result(timeout=600)

            class Answered:  # the check process's place: each answer at once
                def submit(self, members, as_of, rules=None, cadences=None):  # noqa: ANN001, ANN202
                    future: Future = Future()
                    future.set_result(answers[members["household_id"][0]])
                    return future

            real, state.checks = state.checks, Answered()
            try:
                for payload in payloads:  # the first also puts the user in the server's short cache
                    assert await call(payload) == 200
                _wait_for_go(ready, go)
                for index in range(args.requests):
                    await call(payloads[index % len(payloads)])
            finally:
                state.checks = real

    import uvloop

    uvloop.run(run())


def _counted(part: str, args: argparse.Namespace, env: dict[str, str]) -> int:
    """Run `part` of this script under callgrind; the instructions counted once it said go."""
    valgrind = shutil.which("valgrind")
    control = shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
        ready, go, log = Path(tmp) / "ready", Path(tmp) / "go", Path(tmp) / "callgrind.log"
        command = [valgrind, "--tool=callgrind", "--cache-sim=no", "--instr-atstart=no",
                   f"--callgrind-out-file={tmp}/callgrind.out", f"--log-file={log}",
                   os.path.realpath(sys.executable), __file__, "--part", part, "--ready", str(ready), "--go", str(go),
                   *sys.argv[1:]]
        child = subprocess.Popen(command, env=env)
        while not ready.exists():
            if child.poll() is not None:
                raise SystemExit(f"the {part} part stopped (exit {child.returncode}):\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        subprocess.run([control, "--instr=on", str(child.pid)], check=True, capture_output=True)
        go.touch()
        if child.wait() != 0:
            raise SystemExit(f"the {part} part failed (exit {child.returncode}):\n{log.read_text()[-2000:]}")
        found = re.findall(r"Collected : (\d+)", log.read_text())
        if not found:
            raise SystemExit(f"callgrind counted nothing:\n{log.read_text()[-2000:]}")
        return int(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="a data directory with the city's snapshots")
    parser.add_argument("--only", choices=("engine", "server"), help="one figure only")
    parser.add_argument("--size", type=int, default=16, help="households a group (default 16)")
    parser.add_argument("--groups", type=int, default=40, help="groups counted (default 40)")
    parser.add_argument("--warmup", type=int, default=30, help="groups checked before counting (default 30)")
    parser.add_argument("--requests", type=int, default=600, help="requests counted (default 600)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--part", choices=("engine", "server"), help=argparse.SUPPRESS)  # under valgrind
    parser.add_argument("--ready", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--go", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    if args.part:
        (engine_part if args.part == "engine" else server_part)(args, args.ready, args.go)
        return
    if not (args.data_dir / "crosscheck.db").exists():
        raise SystemExit(f"{args.data_dir}: no crosscheck.db (a data directory with the city's snapshots is needed)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POLARS_MAX_THREADS": "1"}
    if args.only in (None, "engine"):
        total = _counted("engine", args, env)
        print(f"engine: {total / args.groups / 1e6:.2f} M instructions a group of {args.size} "
              f"({args.groups} groups after {args.warmup})")
    if args.only in (None, "server"):
        with tempfile.TemporaryDirectory(prefix="instructions-db-") as tmp:
            copy = Path(tmp) / "crosscheck.db"
            with sqlite3.connect(args.data_dir / "crosscheck.db") as source, sqlite3.connect(copy) as target:
                source.backup(target)  # with what the write-ahead log holds
            total = _counted("server", args, {**env, "INSTRUCTIONS_DATABASE_URL": f"sqlite:///{copy}"})
        print(f"server: {total / args.requests / 1e3:.1f} k instructions a request "
              f"(POST /checks in process, answers ready; {args.requests} requests)")


if __name__ == "__main__":
    main()
