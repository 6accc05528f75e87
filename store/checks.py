"""Checks of households that are not (or not only) the roll snapshot: one household at
application time, or an uploaded roll batch, against the latest source snapshots held in memory.

    checker = Checker(store)                  keeps engine.check.CheckIndex of the latest snapshots
    result, held = checker.check(households, as_of, rules, cadences)
    run_id = record(store, result, households, trigger, held, region=…)   the findings into the lifecycle

The index is built on first use and rebuilt when a newer snapshot has been registered (looked up
at most every `refresh_seconds`), so that a server answers checks from memory and still sees a
snapshot uploaded a moment ago. A rebuild happens beside the old index, which keeps answering.

Recording is the partial form of store.runs: a Run (trigger `api` or `upload`) whose lifecycle
covers only the households checked — a flag of another household is never cleared by it.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from datetime import date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine import names
from engine.errors import AccessDenied
from engine.policy import load_policy
from engine.run import RunResult

from . import lifecycle, snapshots
from .db import Store
from .identity import identify
from .models import Flag, Run, RunInput, RunRule, Snapshot, utcnow

__all__ = ["Checker", "record", "flag_ids", "foreign_households"]


class Checker:
    def __init__(self, store: Store, refresh_seconds: float = 2.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._index: Any = None
        self._held: dict[str, Snapshot] = {}
        self._signature: tuple[tuple[str, int], ...] | None = None
        self._looked_at = 0.0
        self._build = threading.Lock()
        self.policy = load_policy(store.settings.policy)

    def _latest(self) -> dict[str, Snapshot]:
        with self.store.read() as session:
            return snapshots.latest(session)

    def current(self) -> tuple[Any, dict[str, Snapshot]]:
        """The index of the latest snapshots and the snapshots it holds."""
        now = time.monotonic()
        if self._index is not None and now - self._looked_at < self.refresh_seconds:
            return self._index, self._held
        with self._build:
            if self._index is not None and time.monotonic() - self._looked_at < self.refresh_seconds:
                return self._index, self._held
            held = self._latest()
            signature = tuple(sorted((key, snap.id) for key, snap in held.items()))
            if signature != self._signature:
                self._index = self._make(held)
                self._held, self._signature = held, signature
                # The index is millions of long-lived objects (its name keys): left to the cyclic
                # collector, each full collection scanned them all and stalled every request for
                # ~100 ms. Frozen, they are still freed by reference counting when replaced.
                # pypinyin's tables likewise: imported on first use, after the freeze, they made
                # every full collection a ~20 ms pause of the checks (and the first check that
                # compared names waited 0.27 s).
                names.load()
                gc.freeze()
            self._looked_at = time.monotonic()
        return self._index, self._held

    def _make(self, held: dict[str, Snapshot]) -> Any:
        from engine.check import CheckIndex

        # Mapped, already sorted by ID (engine.keyed): no source is read or sorted here.
        sources = {key: snapshots.keyed(self.store, snap) for key, snap in held.items() if key != "roll"}
        roll = snapshots.scan(self.store, held["roll"]).collect() if "roll" in held else None
        return CheckIndex(roll, sources, self.policy)

    def check(self, households: pl.DataFrame, as_of: date, rules: list[str] | None = None,
              cadences: list[str] | None = None) -> tuple[RunResult, dict[str, Snapshot]]:
        index, held = self.current()
        return index.check(households, as_of, rules=rules, cadences=cadences), held


def _foreign(session: Session, households: list[str], region: str) -> set[str]:
    found: set[str] = set()
    if region:
        outside = ~Flag.region_code.startswith(region, autoescape=True)
        for start in range(0, len(households), 500):
            chunk = households[start:start + 500]
            found.update(session.scalars(sa.select(Flag.household_id).where(Flag.household_id.in_(chunk), outside)
                                         .distinct()))
    return found


def foreign_households(store: Store, households: list[str], region: str) -> set[str]:
    """The households among `households` with a flag outside `region`. A flag's key is its
    household's: findings recorded from `region` for such a household would clear, reopen or
    take over (its region_code is the latest finding's) another region's flags."""
    with store.read() as session:
        return _foreign(session, households, region)


def record(store: Store, result: RunResult, households: list[str], trigger: str, held: dict[str, Snapshot],
           requested: dict[str, Any] | None = None, now: datetime | None = None,
           region: str = "", persons: set[str] | None = None, partial: set[str] | None = None,
           ) -> tuple[int, lifecycle.Counts]:
    """Record a check's findings: a completed Run of `trigger` over `households` only, by a user
    of `region` (AccessDenied when one of the households has flags outside it). `persons` and
    `partial` are lifecycle.apply's: who was checked, and households checked only in part."""
    at = now or utcnow()
    found = identify(result.flags)
    run = Run(trigger=trigger, status="running", as_of=result.as_of, started_at=at, host=socket.gethostname()[:255],
              pid=os.getpid(), requested={**(requested or {}), "households": len(households)},
              policy_file=str(store.settings.policy) if store.settings.policy else None, policy_hash="check")
    with store.write(lock=f"{trigger} check (pid {os.getpid()})") as session:
        foreign = sorted(_foreign(session, households, region))  # under the lock: no flag appears meanwhile
        if foreign:
            listed = ", ".join(foreign[:10])
            raise AccessDenied(f"家庭编号 {listed} 不能在您的辖区 {region} 记录 "
                               f"(household {listed} cannot be recorded from your region {region})")
        session.add(run)
        session.flush()
        counts = lifecycle.apply(session, run.id, at, found, result.ran, households=households, persons=persons,
                                 partial=partial or set())
        per_rule = dict(found.group_by("rule_id").len().iter_rows()) if found.height else {}
        inputs = {key: snap.id for key, snap in held.items() if key != "roll"}
        if inputs:
            session.execute(sa.insert(RunInput), [{"run_id": run.id, "key": k, "snapshot_id": v}
                                                  for k, v in sorted(inputs.items())])
        rows = [{"run_id": run.id, "rule_id": rid, "outcome": "ran", "reason": None, "flags": per_rule.get(rid, 0),
                 "inputs_hash": None, "snapshots": None, "same_as_run_id": None} for rid in result.ran]
        rows += [{"run_id": run.id, "rule_id": rid, "outcome": "skipped", "reason": reason, "flags": None,
                  "inputs_hash": None, "snapshots": None, "same_as_run_id": None} for rid, reason in result.skipped]
        if rows:
            session.execute(sa.insert(RunRule), rows)
        run.status, run.finished_at = "completed", utcnow()
        run.found, run.raised, run.reopened = counts.found, counts.raised, counts.reopened
        run.seen, run.cleared = counts.seen, counts.cleared
    return run.id, counts


def flag_ids(store: Store, flags: pl.DataFrame) -> pl.Series:
    """The stored flag id of each finding (null where it was never recorded)."""
    keyed = identify(flags)
    keys = keyed.get_column("key").to_list()
    found: dict[str, int] = {}
    with store.read() as session:
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            found.update(dict(session.execute(sa.select(Flag.key, Flag.id).where(Flag.key.in_(chunk))).all()))
    return pl.Series("flag_id", [found.get(k) for k in keys], dtype=pl.Int64)
