"""What is due when: cadence periods with their day, re-match on a newer snapshot, the job."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from engine.rules import CATALOGUE
from store.models import Run
from store.runs import start_run
from store.schedule import JOB_ID, decide_due, due_date, make_scheduler, next_due_date, nightly_job, run_due

from .conftest import AS_OF


@pytest.mark.parametrize(
    ("cadence", "today", "day", "due", "next_due"),
    [
        ("monthly", date(2026, 7, 15), 1, date(2026, 7, 1), date(2026, 8, 1)),
        ("monthly", date(2026, 7, 4), 5, date(2026, 6, 5), date(2026, 7, 5)),
        ("monthly", date(2026, 7, 5), 5, date(2026, 7, 5), date(2026, 8, 5)),
        ("monthly", date(2026, 1, 3), 5, date(2025, 12, 5), date(2026, 1, 5)),
        ("quarterly", date(2026, 8, 20), 1, date(2026, 7, 1), date(2026, 10, 1)),
        ("quarterly", date(2026, 7, 9), 10, date(2026, 4, 10), date(2026, 7, 10)),
        ("semiannual", date(2026, 6, 30), 1, date(2026, 1, 1), date(2026, 7, 1)),
        ("semiannual", date(2026, 7, 1), 1, date(2026, 7, 1), date(2027, 1, 1)),
        ("annual", date(2026, 3, 1), 32, date(2026, 2, 1), date(2027, 2, 1)),
        ("annual", date(2026, 1, 15), 32, date(2025, 2, 1), date(2026, 2, 1)),
    ],
)
def test_periods_and_their_day(cadence, today, day, due, next_due):
    assert due_date(cadence, today, day) == due
    assert next_due_date(cadence, today, day) == next_due


def due_ids(store, today: date) -> set[str]:
    return {d.rule_id for d in decide_due(store, today) if d.due}


def test_everything_is_due_at_first_and_nothing_right_after(store, deliver, city):
    deliver.all(city)
    today = date(2026, 7, 10)
    assert due_ids(store, today) == {r.id for r in CATALOGUE}
    decisions, outcome = run_due(store, today=today)
    assert outcome is not None and {r.outcome for r in outcome.rules} == {"ran"}
    with store.read() as session:
        run = session.get(Run, outcome.run_id)
    assert run.trigger == "schedule" and run.as_of == today
    assert due_ids(store, today) == set()
    decisions, nothing = run_due(store, today=today + timedelta(days=1))
    assert nothing is None and all(d.reasons for d in decisions)


def test_cadence_periods_come_round(store, deliver, city):
    deliver.all(city)
    run_due(store, today=date(2026, 6, 30))
    cadence = {r.id: r.cadence for r in CATALOGUE}
    july = due_ids(store, date(2026, 7, 1))  # a new month, quarter and half-year all begin
    assert july == {r for r, c in cadence.items() if c != "annual"}
    run_due(store, today=date(2026, 7, 1))
    august = due_ids(store, date(2026, 8, 1))
    assert august == {r for r, c in cadence.items() if c == "monthly"}
    run_due(store, today=date(2026, 8, 1))
    assert due_ids(store, date(2027, 1, 1)) == set(cadence)


def test_the_day_within_the_period_is_configurable(store, deliver, city):
    deliver.all(city)
    run_due(store, today=date(2026, 6, 30))
    store.settings = store.settings.model_copy(update={"day_monthly": 10, "day_quarterly": 20})
    assert due_ids(store, date(2026, 7, 9)) == {r.id for r in CATALOGUE if r.cadence == "semiannual"}
    assert {r.id for r in CATALOGUE if r.cadence == "monthly"} <= due_ids(store, date(2026, 7, 10))
    assert not {r.id for r in CATALOGUE if r.cadence == "quarterly"} & due_ids(store, date(2026, 7, 19))


def test_a_newer_snapshot_makes_its_rules_due(store, deliver, city):
    deliver.all(city)
    run_due(store, today=AS_OF)
    deliver("vehicles", city.sources["vehicles"].head(100), date(2026, 6, 30))
    decisions = {d.rule_id: d for d in decide_due(store, AS_OF)}
    assert {r for r, d in decisions.items() if d.due} == {"vehicle_owned"}
    assert "newer vehicles snapshot" in decisions["vehicle_owned"].reasons[0]
    _, outcome = run_due(store, today=AS_OF)
    assert [r.rule_id for r in outcome.rules] == ["vehicle_owned"]
    # hukou is read by every rule (roll IDs are resolved against it): a new hukou re-matches them all
    deliver("hukou", city.sources["hukou"].head(2000), date(2026, 7, 2))
    assert due_ids(store, date(2026, 7, 2)) == {r.id for r in CATALOGUE}


def test_rules_without_their_source_are_not_due_and_say_why(store, deliver, city):
    deliver.all(city, skip=("deposits",))
    decisions = {d.rule_id: d for d in decide_due(store, AS_OF)}
    assert not decisions["assets_over_limit"].due
    assert "deposits" in decisions["assets_over_limit"].reasons[0]
    _, outcome = run_due(store, today=AS_OF, dry_run=True)
    assert outcome is None


def test_a_manual_run_counts_as_a_run(store, deliver, city):
    deliver.all(city)
    start_run(store, AS_OF, rules=["deceased"])
    assert "deceased" not in due_ids(store, AS_OF)


@pytest.mark.parametrize("trigger", ["upload", "api"])
def test_a_batch_or_a_stored_check_is_not_a_run_of_the_roll(store, deliver, city, trigger):
    """A township's batch or an application's check covers a few households: after one, the
    nightly job neither re-runs every rule nor says a newer snapshot is held."""
    from engine.run import RunResult, empty_flags
    from store.checks import record

    deliver.all(city)
    today = date(2026, 7, 10)
    _, outcome = run_due(store, today=today)
    assert outcome is not None
    later = RunResult(flags=empty_flags(), as_of=today + timedelta(days=20), ran=[r.id for r in CATALOGUE])
    record(store, later, ["APP-1"], trigger, {})
    decisions = decide_due(store, today + timedelta(days=1))
    assert {d.rule_id for d in decisions if d.due} == set()
    assert {d.last_run_id for d in decisions} == {outcome.run_id}
    assert not any("newer" in reason for d in decisions for reason in d.reasons)


def test_the_in_process_job(settings, store, deliver, city):
    from apscheduler.schedulers.background import BackgroundScheduler

    deliver.all(city)
    scheduler = make_scheduler(settings.model_copy(update={"scheduler_time": "03:30"}), BackgroundScheduler())
    job = scheduler.get_job(JOB_ID)
    assert str(job.trigger) == "cron[hour='3', minute='30']" and job.max_instances == 1
    assert nightly_job(settings) is not None  # the job itself: a run of what is due today
    assert nightly_job(settings) is None  # and nothing the second time
    # and through a started scheduler, fired at once
    run_once = make_scheduler(settings, BackgroundScheduler())
    run_once.start()
    try:
        deliver("vehicles", city.sources["vehicles"].head(50), date.today())
        run_once.modify_job(JOB_ID, next_run_time=datetime.now().astimezone())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with store.read() as session:
                if session.scalar(sa.select(sa.func.count(Run.id)).where(Run.status == "completed")) == 2:
                    break
            time.sleep(0.2)
    finally:
        run_once.shutdown(wait=True)
    with store.read() as session:
        runs = session.scalars(sa.select(Run).order_by(Run.id)).all()
    assert [(r.trigger, r.status) for r in runs] == [("schedule", "completed")] * 2
