"""Which rules are due, and the nightly job that runs them.

A rule is due when
* its cadence period has come round since the last run that covered it: periods are calendar
  months, quarters (Jan/Apr/Jul/Oct), half-years and years; within a period the rule is due
  from day N (`CROSSCHECK_DAY_<CADENCE>`, 1 = the period's first day), and "covered" means a
  completed run of the rule with an as-of date on or after that day; or
* one of its inputs (the roll, its sources) has a newer snapshot than the one its last run used
  (re-match on change), or it has never run.
A rule whose source has no snapshot is not due; it is listed with the reason.

`run_due` is what `crosscheck schedule run-due` (cron, a systemd timer) and the in-process
APScheduler job (`make_scheduler`, for a server that enables it) both call: one recorded run,
trigger `schedule`, of the due rules, as of today.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from engine.rules import CATALOGUE

from . import snapshots
from .db import Store
from .models import Run, RunRule
from .runs import RunOutcome, rule_inputs, start_run
from .settings import Settings

__all__ = ["PERIOD_MONTHS", "Decision", "period_start", "due_date", "next_due_date", "decide_due", "run_due",
           "nightly_job", "make_scheduler", "JOB_ID"]

PERIOD_MONTHS = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}
JOB_ID = "crosscheck-run-due"
log = logging.getLogger("crosscheck.schedule")


def period_start(cadence: str, day: date) -> date:
    """The first day of the `cadence` period that contains `day`."""
    months = PERIOD_MONTHS[cadence]
    return date(day.year, (day.month - 1) // months * months + 1, 1)


def _shift(start: date, periods: int, cadence: str) -> date:
    index = start.year * 12 + start.month - 1 + periods * PERIOD_MONTHS[cadence]
    return date(index // 12, index % 12 + 1, 1)


def due_date(cadence: str, today: date, day_of_period: int) -> date:
    """The latest day on or before `today` from which `cadence` rules were due."""
    start = period_start(cadence, today)
    due = start + timedelta(days=day_of_period - 1)
    if due > today:
        due = _shift(start, -1, cadence) + timedelta(days=day_of_period - 1)
    return due


def next_due_date(cadence: str, today: date, day_of_period: int) -> date:
    """The first day after `today` from which `cadence` rules fall due again."""
    start = period_start(cadence, today)
    due = start + timedelta(days=day_of_period - 1)
    if due <= today:
        due = _shift(start, 1, cadence) + timedelta(days=day_of_period - 1)
    return due


@dataclass
class Decision:
    rule_id: str
    cadence: str
    due: bool
    reasons: list[str] = field(default_factory=list)  # why due, or why not
    last_run_id: int | None = None
    last_as_of: date | None = None
    next_due: date | None = None


# Runs store.checks.record makes of a batch or a stored check: a few households, no snapshots
# recorded. They cover no rule for the roll: counted, every input would look newer.
PARTIAL_TRIGGERS = ("upload", "api")


def _last_covering(store: Store) -> dict[str, tuple[int, date, dict[str, int]]]:
    """rule_id → (run id, as-of, snapshots used) of the last completed run of the roll that
    covered it."""
    with store.read() as session:
        rows = session.execute(
            sa.select(RunRule.rule_id, RunRule.run_id, Run.as_of, RunRule.snapshots)
            .join(Run, Run.id == RunRule.run_id)
            .where(Run.status == "completed", RunRule.outcome.in_(("ran", "unchanged")),
                   Run.trigger.not_in(PARTIAL_TRIGGERS))
            .order_by(Run.as_of, RunRule.run_id)
        ).all()
    return {r.rule_id: (r.run_id, r.as_of, {k: int(v) for k, v in (r.snapshots or {}).items()}) for r in rows}


def decide_due(store: Store, today: date) -> list[Decision]:
    """A Decision for every rule of the catalogue, in catalogue order."""
    settings = store.settings
    with store.read() as session:
        held = snapshots.latest(session)
    dates = {key: s.snapshot_date for key, s in held.items()}
    last = _last_covering(store)
    available = set(held) - {"roll"}
    decisions = []
    for rule in CATALOGUE:
        day = settings.day_of(rule.cadence)
        decision = Decision(rule.id, rule.cadence, False, next_due=next_due_date(rule.cadence, today, day))
        decisions.append(decision)
        if "roll" not in held:
            decision.reasons.append("no roll snapshot 没有名册快照")
            continue
        missing = rule.missing_sources(available)
        if missing:
            decision.reasons.append(f"{missing} (no snapshot held) 缺少数据源快照")
            continue
        if rule.id not in last:
            decision.due = True
            decision.reasons.append("never run 从未运行")
            continue
        run_id, as_of, used = last[rule.id]
        decision.last_run_id, decision.last_as_of = run_id, as_of
        period_due = due_date(rule.cadence, today, day)
        if as_of < period_due:
            decision.due = True
            decision.reasons.append(f"{rule.cadence} period due since {period_due} (last run as of {as_of}) 周期已到")
        for key, snapshot_id in rule_inputs(rule, held).items():
            if used.get(key) != snapshot_id:
                decision.due = True
                decision.reasons.append(f"newer {key} snapshot of {dates[key]} 数据源有新快照")
        if not decision.due:
            decision.reasons.append(f"not due until {decision.next_due} 未到期")
    return decisions


def run_due(store: Store, today: date | None = None, as_of: date | None = None,
            dry_run: bool = False) -> tuple[list[Decision], RunOutcome | None]:
    """Decide what is due and run it (unless `dry_run`); the run is recorded with trigger
    `schedule` and as-of `as_of` (default today)."""
    today = today or date.today()
    decisions = decide_due(store, today)
    due = [d.rule_id for d in decisions if d.due]
    if dry_run or not due:
        return decisions, None
    return decisions, start_run(store, as_of or today, trigger="schedule", rules=due)


def nightly_job(settings: Settings) -> int | None:
    """The scheduler's job: run what is due; returns the run id, or None when nothing was due.
    Errors are logged, never raised into the scheduler's thread."""
    from engine.errors import CrosscheckError

    try:
        with Store.open(settings) as store:
            decisions, outcome = run_due(store)
    except CrosscheckError as error:
        log.error("scheduled run-due failed: %s", error)
        return None
    due = [d.rule_id for d in decisions if d.due]
    log.info("scheduled run-due: %s", f"run {outcome.run_id} of {', '.join(due)}" if outcome else "nothing due")
    return outcome.run_id if outcome else None


def make_scheduler(settings: Settings, scheduler: Any = None) -> Any:
    """An APScheduler scheduler (a new BackgroundScheduler unless one is given) with the nightly
    job at `settings.scheduler_time`, not started: a server starts it when
    `settings.scheduler_enabled`."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    scheduler = scheduler if scheduler is not None else BackgroundScheduler()
    hour, minute = (int(part) for part in settings.scheduler_time.split(":"))
    scheduler.add_job(
        nightly_job,
        CronTrigger(hour=hour, minute=minute),
        kwargs={"settings": settings},
        id=JOB_ID,
        name="crosscheck schedule run-due",
        replace_existing=True,
        max_instances=1,  # a slow night must not overlap the next
        coalesce=True,  # after downtime, run once, not once per missed night
        misfire_grace_time=6 * 3600,
    )
    return scheduler
