"""Recorded runs over the latest snapshots.

    start_run(store, as_of, trigger, rules, cadences, policy, engine=) -> RunOutcome

1. The run is registered as `running` (its own short transaction), so that a run in progress,
   and one whose process died, can be seen in `runs list`.
2. Per selected rule: skipped when a source it needs has no snapshot; `unchanged` when its
   inputs (as-of date, policy, engine version and the snapshot of each input) are exactly those
   of the last run that applied it: re-running the same inputs changes nothing.
3. The other rules run in the engine outside any transaction (a long computation holds no lock):
   by default the roll's people looked up in the keyed snapshots (engine.indexed); with
   `engine="spark"`, the snapshots' Parquet read by Spark (engine.spark). The engine is not an
   input: it gives the same flags.
4. One transaction takes the run lock, checks (2) again (another run may have applied the same
   inputs meanwhile), applies the lifecycle to every flag of the rules that ran, records the
   inputs and the rules, and marks the run completed. It commits whole or not at all: a process
   killed inside it leaves the store as it was, and the next run completes.

A run that raises is marked `failed` with the message; one whose process vanished (same host,
pid gone) is marked `abandoned` by the next run or `runs list`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine.errors import NotFound, SelectionError, StoreError
from engine.ids import rejudged
from engine.policy import load_policy
from engine.rules import Rule, select_rules

from . import lifecycle, snapshots
from .db import Store
from .identity import identify
from .models import Run, RunInput, RunRule, Snapshot, utcnow

__all__ = ["TRIGGERS", "ENGINES", "RuleOutcome", "RunOutcome", "start_run", "rule_inputs", "list_runs", "get_run",
           "abandon_dead_runs", "PAUSE_ENV"]

TRIGGERS = ("cli", "schedule", "upload", "api")
ENGINES = ("polars", "spark")
# Test hook: when set to a path P, a run that is inside its transaction (flags and events
# written, not committed) creates P.paused and waits until P.go exists. The SIGKILL and
# concurrency tests use it; nothing else should.
PAUSE_ENV = "CROSSCHECK_TEST_PAUSE_IN_TRANSACTION"


@dataclass
class RuleOutcome:
    rule_id: str
    outcome: str  # ran, unchanged, skipped
    reason: str | None = None
    flags: int | None = None
    same_as_run_id: int | None = None


@dataclass
class RunOutcome:
    run_id: int
    as_of: date
    status: str
    rules: list[RuleOutcome] = field(default_factory=list)
    counts: lifecycle.Counts = field(default_factory=lifecycle.Counts)
    timings: dict[str, float] = field(default_factory=dict)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("crosscheck")
    except Exception:
        return "0+unknown"


def _policy(policy: Path | None) -> tuple[Any, str]:
    settings = load_policy(policy)  # PolicyError for a bad file, before anything is recorded
    digest = hashlib.sha256(Path(policy).read_bytes()).hexdigest() if policy else "default"
    return settings, digest


def rule_inputs(rule: Rule, held: dict[str, Snapshot]) -> dict[str, int]:
    """{input key: snapshot id} of what a rule reads: the roll, its sources, and hukou whenever
    it is held, because the engine resolves roll IDs against hukou before any rule runs."""
    keys = ["roll", *rule.used_sources(set(held) - {"roll"})]
    if "hukou" in held and "hukou" not in keys:
        keys.append("hukou")
    return {key: held[key].id for key in keys}


def _hash(rule_id: str, as_of: date, policy_hash: str, inputs: dict[str, int]) -> str:
    text = json.dumps([rule_id, as_of.isoformat(), policy_hash, _version(), sorted(inputs.items())])
    return hashlib.sha256(text.encode()).hexdigest()


def _last_applied(session: Session) -> dict[str, tuple[str, int]]:
    """rule_id → (inputs hash, run id) of the last completed run that applied the rule."""
    rows = session.execute(
        sa.select(RunRule.rule_id, RunRule.inputs_hash, RunRule.run_id)
        .join(Run, Run.id == RunRule.run_id)
        .where(Run.status == "completed", RunRule.outcome == "ran")
        .order_by(RunRule.run_id)
    ).all()
    return {r.rule_id: (r.inputs_hash, r.run_id) for r in rows}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def abandon_dead_runs(store: Store) -> int:
    """Mark `running` runs of this host whose process is gone as abandoned; returns how many."""
    host = socket.gethostname()
    with store.read() as session:
        dead = [
            r.id
            for r in session.execute(sa.select(Run.id, Run.pid).where(Run.status == "running", Run.host == host))
            if r.pid != os.getpid() and not _pid_alive(r.pid)
        ]
    if dead:
        with store.write() as session:
            session.execute(
                sa.update(Run).where(Run.id.in_(dead), Run.status == "running")
                .values(status="abandoned", finished_at=utcnow(), error="the process ended before the run was committed")
            )
    return len(dead)


def _pause_for_tests() -> None:
    marker = os.environ.get(PAUSE_ENV)
    if not marker:
        return
    Path(marker + ".paused").write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not Path(marker + ".go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def start_run(store: Store, as_of: date, trigger: str = "cli", rules: list[str] | None = None,
              cadences: list[str] | None = None, policy: Path | None = None,
              now: datetime | None = None, on_registered: Callable[[int], None] | None = None,
              engine: str | None = None) -> RunOutcome:
    """Run the selected rules (all by default) over the latest snapshots and record the run.
    `on_registered` is told the run's id as soon as it is recorded as running (an API answers
    with it at once); errors before that (selection, policy, no roll) are raised as usual.
    `engine`: "polars" (the roll's people looked up in the keyed snapshots), or "spark" (the
    snapshots' Parquet read by Spark: engine.spark); the flags are the same. Default: the
    store's settings (CROSSCHECK_ENGINE)."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}")
    engine = engine or store.settings.engine
    if engine not in ENGINES:
        raise SelectionError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    started = time.perf_counter()
    selected = select_rules(rules, cadences)  # SelectionError before anything is recorded
    policy = policy if policy is not None else store.settings.policy
    policy_settings, policy_hash = _policy(policy)
    abandon_dead_runs(store)
    with store.read() as session:
        held = snapshots.latest(session)
    if "roll" not in held:
        raise StoreError(
            "没有救助对象名册快照，无法比对 (no roll snapshot is held): "
            "crosscheck ingest roll FILE --snapshot-date YYYY-MM-DD"
        )
    run = Run(trigger=trigger, status="running", as_of=as_of, started_at=now or utcnow(), host=socket.gethostname()[:255],
              pid=os.getpid(), requested={"rules": rules, "cadences": cadences},
              policy_file=str(policy) if policy else None, policy_hash=policy_hash)
    with store.write() as session:
        session.add(run)
    if on_registered is not None:
        on_registered(run.id)
    try:
        return _execute(store, run, selected, held, policy_settings, policy_hash, as_of, now, started, engine)
    except BaseException as error:
        message = str(error) or type(error).__name__
        try:
            with store.write() as session:
                session.execute(sa.update(Run).where(Run.id == run.id, Run.status == "running")
                                .values(status="failed", finished_at=utcnow(), error=message[:4000]))
        except Exception:  # keep the original error; the next run marks this one abandoned
            pass
        raise


def _execute(store: Store, run: Run, selected: list[Rule], held: dict[str, Snapshot], policy_settings: Any,
             policy_hash: str, as_of: date, now: datetime | None, started: float, engine: str = "polars") -> RunOutcome:
    from engine.indexed import run_indexed

    outcomes: dict[str, RuleOutcome] = {}
    inputs: dict[str, dict[str, int]] = {}
    hashes: dict[str, str] = {}
    available = set(held) - {"roll"}
    for rule in selected:
        missing = rule.missing_sources(available)
        if missing:
            outcomes[rule.id] = RuleOutcome(rule.id, "skipped", f"{missing} (no snapshot held)")
            continue
        inputs[rule.id] = rule_inputs(rule, held)
        hashes[rule.id] = _hash(rule.id, as_of, policy_hash, inputs[rule.id])
    with store.read() as session:
        last = _last_applied(session)
    to_run = [rid for rid in hashes if last.get(rid, (None,))[0] != hashes[rid]]

    timings: dict[str, float] = {}
    found = identify(_empty_flags())
    households: list[str] | None = None  # what the run looked at (lifecycle.apply): the roll's
    persons: set[str] | None = None
    if to_run:
        mark = time.perf_counter()
        keys = {key for rid in to_run for key in inputs[rid]}
        # ID validity is judged at the run's as-of date, not at the roll's snapshot date.
        roll = rejudged(snapshots.scan(store, held["roll"]).collect(), held["roll"].snapshot_date, as_of)
        if engine == "spark":
            from engine import spark

            on_spark = spark.session()
            read = {key: on_spark.read.parquet(str(snapshots.parquet_path(store, held[key])))
                    for key in sorted(keys - {"roll"})}
            timings["load"] = round(time.perf_counter() - mark, 3)
            mark = time.perf_counter()
            result = spark.run_spark(roll, read, as_of, policy_settings, rules=to_run, session=on_spark)
        else:
            # Sources keyed by ID and mapped (engine.keyed): the roll's people are looked up in them.
            sources = {key: snapshots.keyed(store, held[key]) for key in sorted(keys - {"roll"})}
            timings["load"] = round(time.perf_counter() - mark, 3)
            mark = time.perf_counter()
            result = run_indexed(roll, sources, as_of, policy_settings, rules=to_run)
        found = identify(result.flags)
        households = roll.get_column("household_id").unique().to_list()
        persons = lifecycle.looked_at(roll, result.resolutions)
        timings["rules"] = round(time.perf_counter() - mark, 3)

    mark = time.perf_counter()
    at = now or utcnow()
    with store.write(lock=f"run {run.id} (pid {os.getpid()})") as session:
        last = _last_applied(session)  # again, under the lock
        applied = [rid for rid in to_run if last.get(rid, (None,))[0] != hashes[rid]]
        for rid in hashes:
            if rid not in applied:
                outcomes[rid] = RuleOutcome(rid, "unchanged", "inputs unchanged since run "
                                            f"{last[rid][1]} 输入未变化", same_as_run_id=last[rid][1])
        per_rule = dict(found.group_by("rule_id").len().iter_rows()) if found.height else {}
        for rid in applied:
            outcomes[rid] = RuleOutcome(rid, "ran", flags=per_rule.get(rid, 0))
        counts = lifecycle.apply(session, run.id, at, found.filter(pl.col("rule_id").is_in(applied)), applied,
                                 households=households, persons=persons)

        used = {key: sid for rid in hashes for key, sid in inputs[rid].items()}
        if used:
            session.execute(sa.insert(RunInput), [{"run_id": run.id, "key": k, "snapshot_id": v}
                                                  for k, v in sorted(used.items())])
        ordered = [outcomes[rule.id] for rule in selected]
        session.execute(sa.insert(RunRule), [
            {"run_id": run.id, "rule_id": o.rule_id, "outcome": o.outcome, "reason": o.reason, "flags": o.flags,
             "inputs_hash": hashes.get(o.rule_id), "snapshots": inputs.get(o.rule_id),
             "same_as_run_id": o.same_as_run_id}
            for o in ordered
        ])
        timings["store"] = round(time.perf_counter() - mark, 3)
        timings["total"] = round(time.perf_counter() - started, 3)
        session.execute(sa.update(Run).where(Run.id == run.id).values(
            status="completed", finished_at=utcnow(), found=counts.found, raised=counts.raised,
            reopened=counts.reopened, seen=counts.seen, cleared=counts.cleared, timings=timings))
        _pause_for_tests()
    return RunOutcome(run.id, as_of, "completed", ordered, counts, timings)


def _empty_flags() -> pl.DataFrame:
    from engine.run import empty_flags

    return empty_flags()


# ---- reading runs -------------------------------------------------------------------------


def list_runs(store: Store, limit: int = 50) -> pl.DataFrame:
    abandon_dead_runs(store)
    with store.read() as session:
        runs = session.scalars(sa.select(Run).order_by(Run.id.desc()).limit(limit)).all()
        tallies = session.execute(
            sa.select(RunRule.run_id, RunRule.outcome, sa.func.count())
            .where(RunRule.run_id.in_([r.id for r in runs]))
            .group_by(RunRule.run_id, RunRule.outcome)
        ).all()
    by_run: dict[int, dict[str, int]] = {}
    for run_id, outcome, count in tallies:
        by_run.setdefault(run_id, {})[outcome] = count
    rows = [
        {
            "id": r.id, "trigger": r.trigger, "status": r.status, "as_of": r.as_of, "started_at": r.started_at,
            "seconds": (r.finished_at - r.started_at).total_seconds() if r.finished_at else None,
            "ran": by_run.get(r.id, {}).get("ran", 0), "unchanged": by_run.get(r.id, {}).get("unchanged", 0),
            "skipped": by_run.get(r.id, {}).get("skipped", 0), "found": r.found, "raised": r.raised,
            "reopened": r.reopened, "seen": r.seen, "cleared": r.cleared,
        }
        for r in runs
    ]
    return pl.DataFrame(rows, schema={
        "id": pl.Int64, "trigger": pl.String, "status": pl.String, "as_of": pl.Date,
        "started_at": pl.Datetime("us", "UTC"), "seconds": pl.Float64, "ran": pl.Int64, "unchanged": pl.Int64,
        "skipped": pl.Int64, "found": pl.Int64, "raised": pl.Int64, "reopened": pl.Int64, "seen": pl.Int64,
        "cleared": pl.Int64,
    })


def get_run(store: Store, run_id: int | None = None) -> tuple[Run, list[tuple[RunInput, Snapshot]], list[RunRule]]:
    """A run (the latest completed one when `run_id` is None), its inputs and its rules."""
    with store.read() as session:
        if run_id is None:
            run = session.scalars(sa.select(Run).where(Run.status == "completed").order_by(Run.id.desc())).first()
            if run is None:
                raise NotFound("还没有完成的比对 (no completed run yet): crosscheck runs start")
        else:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFound(f"没有编号为 {run_id} 的比对 (no run {run_id})")
        inputs = [
            (i, s) for i, s in session.execute(
                sa.select(RunInput, Snapshot).join(Snapshot, Snapshot.id == RunInput.snapshot_id)
                .where(RunInput.run_id == run.id).order_by(RunInput.key)
            ).all()
        ]
        rules = list(session.scalars(sa.select(RunRule).where(RunRule.run_id == run.id)))
    return run, inputs, rules
