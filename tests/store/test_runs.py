"""Recorded runs and the lifecycle rules, each across two or three runs over changing snapshots."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta

import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from engine.errors import SelectionError, StoreError
from engine.policy import load_policy
from store import lifecycle
from store.flags import get_flag
from store.models import Flag, FlagEvent, Run, RunRule, utcnow
from store.runs import list_runs, start_run

from .conftest import AS_OF, dump

NEXT_MONTH = date(2026, 7, 31)


def flags(store, rule_id: str | None = None) -> dict[int, Flag]:
    with store.read() as session:
        query = sa.select(Flag)
        if rule_id:
            query = query.where(Flag.rule_id == rule_id)
        return {f.id: f for f in session.scalars(query)}


def events(store, flag_id: int | None = None) -> list[FlagEvent]:
    with store.read() as session:
        query = sa.select(FlagEvent).order_by(FlagEvent.id)
        if flag_id is not None:
            query = query.where(FlagEvent.flag_id == flag_id)
        return list(session.scalars(query))


def review(store, flag_id: int, verb: str, **detail) -> None:
    with store.write(lock="test review") as session:
        lifecycle.review(session, flag_id, verb, "王芳", utcnow(), **detail)


def status(store, flag_id: int) -> str:
    with store.read() as session:
        flag, _, derived = get_flag(session, flag_id)
    assert flag.status == derived  # the cached status is what the events say
    return derived


def one(store, rule_id: str) -> Flag:
    found = sorted(flags(store, rule_id).values(), key=lambda f: f.id)
    assert found, f"the city has no {rule_id} flag"
    return found[0]


def plate_of(flag: Flag) -> str:
    return json.loads(flag.evidence)["records"][0]["plate"]


def test_a_first_run_raises_every_finding_of_the_engine(store, deliver, city, policy_file):
    deliver.all(city)
    outcome = start_run(store, AS_OF)
    assert outcome.status == "completed"
    assert outcome.counts.raised == outcome.counts.found > 0
    truth = set(city.truth.select("household_id", "rule_id").iter_rows())
    found = {(f.household_id, f.rule_id) for f in flags(store).values()}
    assert found == truth  # the engine's findings on the snapshots: the planted ground truth
    assert all(e.kind == "raised" and e.by == lifecycle.SYSTEM for e in events(store))
    assert {r.outcome for r in outcome.rules} == {"ran"}


def test_rerunning_the_same_inputs_changes_nothing(store, deliver, city):
    deliver.all(city)
    start_run(store, AS_OF)
    before = dump(store)
    again = start_run(store, AS_OF)
    after = dump(store, skip_runs={again.run_id})
    assert {r.outcome for r in again.rules} == {"unchanged"}
    assert again.counts.alerts == 0 and again.counts.found == 0
    assert {k: v for k, v in after.items() if k not in ("run_rules", "run_inputs")} == \
        {k: v for k, v in before.items() if k not in ("run_rules", "run_inputs")}
    # ingesting the very same files again is a no-op too
    assert not deliver("roll", city.roll).new
    third = start_run(store, AS_OF)
    assert third.counts.alerts == 0 and {r.outcome for r in third.rules} == {"unchanged"}


@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.sets(st.sampled_from(["deceased", "vehicle_owned", "property_excess", "incarcerated",
                                      "name_mismatch", "assets_over_limit"]), min_size=1),
       shift=st.integers(0, 40))
def test_rerunning_any_run_changes_nothing(store, deliver, city, first, shift):
    """Whatever ran before, re-running the last run adds no flag and no event."""
    if not deliver.count:
        deliver.all(city)
    as_of = AS_OF + timedelta(days=shift)
    start_run(store, as_of, rules=sorted(first))
    before = dump(store)
    again = start_run(store, as_of, rules=sorted(first))
    after = dump(store, skip_runs={again.run_id})
    assert after["flags"] == before["flags"] and after["flag_events"] == before["flag_events"]
    assert again.counts.alerts == 0


def test_found_again_is_the_same_flag_with_a_seen_event_and_no_alert(store, deliver, city):
    deliver.all(city)
    first = start_run(store, AS_OF)
    ids = set(flags(store))
    second = start_run(store, NEXT_MONTH)  # a month later: every rule runs again on the same data
    assert second.counts.raised == 0 and second.counts.reopened == 0
    assert set(flags(store)) - ids == set()  # no new flag
    seen = [e for e in events(store) if e.run_id == second.run_id]
    assert seen and {e.kind for e in seen} <= {"seen", "cleared"}
    assert second.counts.seen == len([e for e in seen if e.kind == "seen"]) > 0
    assert first.counts.found >= second.counts.seen


def test_dismissed_and_unchanged_stays_dismissed_even_as_the_overpayment_grows(store, deliver, city):
    deliver.all(city)
    start_run(store, AS_OF)
    dead = [f for f in flags(store, "deceased").values() if f.overpayment]
    flag = dead[0]
    review(store, flag.id, "dismiss", reason="已于当月停发，系统数据滞后")
    start_run(store, NEXT_MONTH)
    later = flags(store)[flag.id]
    assert later.overpayment > flag.overpayment  # the estimate grew with the as-of date ...
    assert status(store, flag.id) == "dismissed"  # ... which is no new evidence
    assert [e.kind for e in events(store, flag.id)] == ["raised", "dismissed", "seen"]
    third = start_run(store, NEXT_MONTH + timedelta(days=31))
    assert status(store, flag.id) == "dismissed" and third.counts.reopened == 0


def test_dismissed_but_evidence_changed_is_reopened(store, deliver, city):
    deliver.all(city)
    start_run(store, AS_OF)
    flag = one(store, "vehicle_owned")
    review(store, flag.id, "dismiss", reason="车辆已过户，登记未更新")
    plate = plate_of(flag)
    vehicles = city.sources["vehicles"].with_columns(
        pl.when(pl.col("plate") == plate).then(pl.col("purchase_price") + 50_000).otherwise(pl.col("purchase_price"))
        .alias("purchase_price")
    )
    deliver("vehicles", vehicles, AS_OF + timedelta(days=10))
    outcome = start_run(store, AS_OF + timedelta(days=10), rules=["vehicle_owned"])
    assert status(store, flag.id) == "open"
    assert [e.kind for e in events(store, flag.id)] == ["raised", "dismissed", "reopened"]
    reopened = events(store, flag.id)[-1]
    assert reopened.by == lifecycle.SYSTEM and "evidence changed" in reopened.detail["reason"]
    assert outcome.counts.reopened == 1 and outcome.counts.raised == 0


def test_not_found_any_more_is_cleared_and_found_again_reopened(store, deliver, city):
    deliver.all(city)
    start_run(store, AS_OF)
    flag = one(store, "vehicle_owned")
    review(store, flag.id, "assign", to="王芳")
    sold = city.sources["vehicles"].filter(pl.col("plate") != plate_of(flag))
    deliver("vehicles", sold, date(2026, 7, 10))
    gone = start_run(store, date(2026, 7, 10), rules=["vehicle_owned"])
    assert status(store, flag.id) == "cleared" and gone.counts.cleared >= 1
    deliver("vehicles", city.sources["vehicles"].with_columns(pl.col("brand") + "·"), date(2026, 8, 10))
    back = start_run(store, date(2026, 8, 10), rules=["vehicle_owned"])
    assert status(store, flag.id) == "open" and back.counts.reopened == 1
    assert [e.kind for e in events(store, flag.id)] == ["raised", "assigned", "cleared", "reopened"]


def test_a_run_clears_only_what_it_looked_at(store, deliver, city):
    """A person gone from the roll (their row rejected at ingest, or removed) and a household
    gone from it were not looked at: their flags are not "not found any more". A finding gone
    while its person is still on the roll is cleared, as before."""
    deliver.all(city)
    start_run(store, AS_OF)
    dead = one(store, "deceased")
    owner = next(f for f in sorted(flags(store, "vehicle_owned").values(), key=lambda f: f.id)
                 if f.household_id != dead.household_id)
    jailed = next(f for f in sorted(flags(store, "incarcerated").values(), key=lambda f: f.id)
                  if f.household_id not in (dead.household_id, owner.household_id))
    roll = city.roll.filter((pl.col("id_number") != dead.roll_id_number) & (pl.col("household_id") != owner.household_id))
    assert roll.height < city.roll.height and dead.household_id in roll.get_column("household_id").to_list()
    deliver("roll", roll, NEXT_MONTH)
    released = city.sources["prisoners"].filter(pl.col("id_number") != jailed.id_number)
    deliver("prisoners", released, NEXT_MONTH)
    outcome = start_run(store, NEXT_MONTH, rules=["deceased", "vehicle_owned", "incarcerated"])
    assert status(store, dead.id) == "open" and status(store, owner.id) == "open"
    assert status(store, jailed.id) == "cleared" and outcome.counts.cleared >= 1


def test_confirmed_stays_until_resolved(store, deliver, city):
    deliver.all(city)
    start_run(store, AS_OF)
    flag = one(store, "vehicle_owned")
    review(store, flag.id, "visit", income=1200, expenditure=900, living="有小型汽车一辆")
    review(store, flag.id, "confirm", action="stop")
    deliver("vehicles", city.sources["vehicles"].filter(pl.col("plate") != plate_of(flag)), date(2026, 7, 10))
    start_run(store, date(2026, 7, 10), rules=["vehicle_owned"])
    assert status(store, flag.id) == "confirmed"  # not cleared: the decision is still to be carried out
    start_run(store, date(2026, 8, 10), rules=["vehicle_owned"])
    assert status(store, flag.id) == "confirmed"
    review(store, flag.id, "resolve", note="已停发")
    assert status(store, flag.id) == "resolved"
    assert [e.kind for e in events(store, flag.id)] == ["raised", "visited", "confirmed", "resolved"]


def test_another_vehicle_is_another_flag(store, deliver, city):
    deliver.all(city)
    start_run(store, AS_OF)
    flag = one(store, "vehicle_owned")
    owner = json.loads(flag.evidence)["records"][0]["id_number"]
    vehicles = city.sources["vehicles"].filter(pl.col("plate") != plate_of(flag))
    extra = vehicles.head(1).with_columns(pl.lit(owner).alias("id_number"), pl.lit("苏C9Z9Z9").alias("plate"),
                                          pl.lit("car").alias("vehicle_type"), pl.lit("normal").alias("status"))
    deliver("vehicles", pl.concat([vehicles, extra]), date(2026, 7, 10))
    outcome = start_run(store, date(2026, 7, 10), rules=["vehicle_owned"])
    assert status(store, flag.id) == "cleared"
    newer = [f for f in flags(store, "vehicle_owned").values() if f.household_id == flag.household_id
             and f.id != flag.id]
    assert len(newer) == 1 and newer[0].identity == ["苏C9Z9Z9"] and outcome.counts.raised == 1


def test_a_skipped_or_unselected_rule_clears_nothing(store, deliver, city):
    deliver.all(city, skip=("prisoners",))
    outcome = start_run(store, AS_OF, rules=["incarcerated", "deceased"])
    assert {r.rule_id: r.outcome for r in outcome.rules} == {"deceased": "ran", "incarcerated": "skipped"}
    assert "prisoners" in next(r.reason for r in outcome.rules if r.rule_id == "incarcerated")
    deliver("prisoners", city.sources["prisoners"])
    start_run(store, AS_OF, rules=["incarcerated"])
    jailed = set(flags(store, "incarcerated"))
    assert jailed
    later = start_run(store, NEXT_MONTH, rules=["deceased"])
    assert all(status(store, i) == "open" for i in jailed) and later.counts.cleared == 0


def test_flags_open_too_long_are_overdue(store, deliver, city):
    deliver.all(city)
    start_run(store, AS_OF, now=utcnow() - timedelta(days=45))
    from store.flags import FlagFilter, list_flags

    victim = one(store, "deceased")
    review(store, victim.id, "dismiss", reason="核实")
    with store.read() as session:
        overdue = list_flags(session, FlagFilter(overdue_days=30), utcnow(), 30)
        fresh = list_flags(session, FlagFilter(overdue_days=60), utcnow(), 60)
    assert overdue.height == len(flags(store)) - 1 and overdue["overdue"].all()
    assert victim.id not in overdue["id"].to_list()  # decided: nobody is waiting on it
    assert fresh.height == 0


def test_a_run_needs_a_roll_and_records_failures(store, deliver, city):
    with pytest.raises(StoreError, match="no roll snapshot"):
        start_run(store, AS_OF)
    deliver.all(city)
    with pytest.raises(SelectionError):
        start_run(store, AS_OF, rules=["no_such_rule"])
    with store.read() as session:
        assert session.scalars(sa.select(Run)).all() == []  # a bad request records no run
    start_run(store, AS_OF, rules=["deceased"])
    runs = list_runs(store)
    assert runs["status"].to_list() == ["completed"] and runs["ran"].to_list() == [1]
    with store.read() as session:
        rules = session.scalars(sa.select(RunRule)).all()
    assert [(r.rule_id, r.outcome, r.snapshots is not None) for r in rules] == [("deceased", "ran", True)]


def test_a_new_policy_reruns_what_it_affects(store, deliver, city, tmp_path, policy_file):
    deliver.all(city)
    start_run(store, AS_OF, rules=["income_over_standard"])
    stricter = tmp_path / "stricter.toml"
    stricter.write_text("[defaults]\ndibao_monthly = 100\n", encoding="utf-8")
    load_policy(stricter)
    outcome = start_run(store, AS_OF, rules=["income_over_standard"], policy=stricter)
    assert outcome.rules[0].outcome == "ran" and outcome.counts.raised > 0


def test_a_run_that_fails_is_recorded_as_failed_and_writes_no_flag(store, deliver, city, monkeypatch):
    deliver.all(city)

    def broken(*args, **kwargs):
        raise RuntimeError("the engine broke")

    monkeypatch.setattr("engine.indexed.run_indexed", broken)
    with pytest.raises(RuntimeError):
        start_run(store, AS_OF)
    with store.read() as session:
        run = session.scalars(sa.select(Run)).one()
    assert (run.status, run.error) == ("failed", "the engine broke") and flags(store) == {}
    monkeypatch.undo()
    assert start_run(store, AS_OF).counts.raised > 0  # and the next run completes


def test_an_unknown_engine_is_refused_before_anything_is_recorded(store, deliver, city):
    deliver.all(city)
    with pytest.raises(SelectionError, match="unknown engine 'duckdb'"):
        start_run(store, AS_OF, engine="duckdb")
    assert list_runs(store).height == 0


def test_the_spark_engine_without_pyspark_says_what_to_install(store, deliver, city, monkeypatch):
    deliver.all(city)
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as where it is not installed
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(SelectionError, match=r"pip install -e '\.\[spark\]'"):
        start_run(store, AS_OF, engine="spark")
    assert list_runs(store)["status"].to_list() == ["failed"]
