"""A run is one transaction: killed in the middle it leaves the store as it was, and two runs at
once neither corrupt it nor both apply. Real processes (`python -m engine runs start`), paused
inside their transaction by the test hook (store.runs.PAUSE_ENV)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from store import lifecycle
from store.models import Flag, FlagEvent, Run, utcnow
from store.runs import PAUSE_ENV, start_run

from .conftest import AS_OF, dump, env_for

LATER = date(2026, 7, 10)


def launch(settings, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", *args], env=env_for(settings, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the run ended before pausing ({process.returncode}):\n{out}\n{err}")
        assert time.monotonic() < deadline, "the run never reached its transaction"
        time.sleep(0.05)


def changes(store, deliver, city) -> None:
    """A month's news: one vehicle flag dismissed and then its price changes (→ reopened), the
    other vehicles' owners sell them (→ cleared)."""
    start_run(store, AS_OF)
    with store.read() as session:
        vehicle_flags = session.scalars(sa.select(Flag).where(Flag.rule_id == "vehicle_owned").order_by(Flag.id)).all()
    dismissed = vehicle_flags[0]
    with store.write(lock="test") as session:
        lifecycle.review(session, dismissed.id, "dismiss", "王芳", utcnow(), reason="车辆已过户")
    import json

    keep = json.loads(dismissed.evidence)["records"][0]["plate"]
    vehicles = city.sources["vehicles"]
    others = {json.loads(f.evidence)["records"][0]["plate"] for f in vehicle_flags[1:]}
    vehicles = vehicles.filter(~pl.col("plate").is_in(list(others))).with_columns(
        pl.when(pl.col("plate") == keep).then(pl.col("purchase_price") + 1).otherwise(pl.col("purchase_price"))
        .alias("purchase_price")
    )
    deliver("vehicles", vehicles, LATER)


def running_runs(store) -> list[int]:
    with store.read() as session:
        return list(session.scalars(sa.select(Run.id).where(Run.status == "running")))


def test_sigkill_inside_the_transaction_leaves_the_previous_state(store, settings, deliver, city, tmp_path):
    deliver.all(city)
    changes(store, deliver, city)
    before = dump(store)
    marker = tmp_path / "pause"
    process = launch(settings, "runs", "start", "--as-of", LATER.isoformat(), **{PAUSE_ENV: str(marker)})
    wait_for(Path(str(marker) + ".paused"), process)
    # Inside the transaction: flags and events written, not committed. Kill it there.
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed = running_runs(store)
    assert len(killed) == 1
    assert dump(store, skip_runs=set(killed)) == before  # nothing of the killed run is left

    outcome = start_run(store, LATER)  # the next run completes
    assert outcome.status == "completed"
    assert outcome.counts.reopened == 1 and outcome.counts.cleared >= 1
    with store.read() as session:
        assert session.get(Run, killed[0]).status == "abandoned"
        kinds = session.execute(sa.select(FlagEvent.kind, sa.func.count()).where(FlagEvent.run_id == outcome.run_id)
                                .group_by(FlagEvent.kind)).all()
    assert dict(kinds)["reopened"] == 1


def test_a_second_run_waits_for_the_first_and_then_changes_nothing(store, settings, deliver, city, tmp_path):
    deliver.all(city)
    marker = tmp_path / "pause"
    first = launch(settings, "runs", "start", "--as-of", AS_OF.isoformat(), **{PAUSE_ENV: str(marker)})
    wait_for(Path(str(marker) + ".paused"), first)
    second = launch(settings, "runs", "start", "--as-of", AS_OF.isoformat(), CROSSCHECK_LOCK_TIMEOUT="120")
    time.sleep(3)
    assert second.poll() is None, "the second run must wait for the first one's transaction"
    Path(str(marker) + ".go").touch()
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, out1 + err1
    assert second.returncode == 0, out2 + err2
    with store.read() as session:
        runs = session.scalars(sa.select(Run).order_by(Run.id)).all()
        raised = session.execute(sa.select(FlagEvent.flag_id).where(FlagEvent.kind == "raised")).scalars().all()
        flag_count = session.execute(sa.select(sa.func.count(Flag.id))).scalar_one()
    assert [r.status for r in runs] == ["completed", "completed"]
    assert sorted(r.raised for r in runs) == [0, flag_count]  # one applied it; the other found it applied
    assert len(raised) == len(set(raised)) == flag_count  # every flag raised exactly once


def test_a_run_that_cannot_get_the_lock_fails_clearly_and_writes_nothing(store, settings, deliver, city, tmp_path):
    deliver.all(city)
    marker = tmp_path / "pause"
    first = launch(settings, "runs", "start", "--as-of", AS_OF.isoformat(), **{PAUSE_ENV: str(marker)})
    wait_for(Path(str(marker) + ".paused"), first)
    holder = running_runs(store)
    second = launch(settings, "runs", "start", "--as-of", AS_OF.isoformat(), CROSSCHECK_LOCK_TIMEOUT="1")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 2, out + err
    assert "the store is busy" in err and f"run {holder[0]}" in err
    assert "Traceback" not in err
    Path(str(marker) + ".go").touch()
    out1, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, out1 + err1
    with store.read() as session:
        statuses = dict(session.execute(sa.select(Run.id, Run.status)).all())
        events = session.execute(sa.select(FlagEvent.run_id).distinct()).scalars().all()
    assert statuses[holder[0]] == "completed"
    assert set(statuses.values()) <= {"completed", "failed"}  # the refused run, if recorded, failed
    assert events == [holder[0]]  # only the first run wrote events
