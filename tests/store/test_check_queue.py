"""Concurrent checks gathered into one engine call give each request exactly what a check of its
household alone gives."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl
import pytest

from engine.loaders import load_frame
from store.check_queue import CheckQueue
from store.checks import Checker

from .conftest import AS_OF

_COLUMNS = ("program", "household_id", "id_number", "name", "region_code", "benefit_monthly",
            "declared_income_monthly", "relation")


def _members(city, household_id: str) -> pl.DataFrame:
    rows = city.roll.filter(pl.col("household_id") == household_id)
    return rows.select([pl.col(c).cast(pl.String) if c in rows.columns else pl.lit(None, pl.String).alias(c)
                        for c in _COLUMNS])


@pytest.fixture
def checker(store, deliver, city):
    deliver.all(city, skip=("roll",))
    return Checker(store)


def _alone(checker: Checker, members: pl.DataFrame) -> pl.DataFrame:
    index, _ = checker.current()
    loaded = load_frame(members, "roll", "request", AS_OF, first_row=0)
    return index.check(loaded.frame, AS_OF).flags


def _gathered(checker: Checker, *households: Any) -> tuple[CheckQueue, list[Any]]:
    """Every household queued before the worker starts, so that they are taken together."""
    queue = CheckQueue(checker)
    futures = [queue.submit(members, AS_OF) for members in households]
    queue.start()
    try:
        return queue, [future.result(timeout=60) for future in futures]
    finally:
        queue.stop()


def test_gathered_checks_equal_single_checks(checker, city):
    households = city.roll.get_column("household_id").unique().sort().to_list()[:60]
    queue = CheckQueue(checker)
    queue.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            futures = list(pool.map(lambda h: queue.submit(_members(city, h), AS_OF), households))
        answers = [f.result(timeout=60) for f in futures]
    finally:
        queue.stop()
    assert queue.checked == len(households)
    assert queue.calls < len(households)  # some were gathered
    found = 0
    for household, answer in zip(households, answers, strict=True):
        expected = _alone(checker, _members(city, household))
        assert answer.flags.equals(expected), household
        found += expected.height
    assert found > 0


def test_a_bad_request_does_not_spoil_the_others(checker, city):
    households = city.roll.get_column("household_id").unique().sort().to_list()[:2]
    good, bad = _members(city, households[0]), _members(city, households[1])
    bad = bad.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("nonsense"))
                           .otherwise(pl.col("program")).alias("program"))
    queue, (good_answer, bad_answer) = _gathered(checker, good, bad)
    assert queue.calls == 1  # the bad one never reaches the engine
    assert [(p.row, p.column) for p in bad_answer.problems] == [(0, "program")]
    assert not good_answer.problems
    assert good_answer.flags.equals(_alone(checker, good))


def test_each_answer_says_how_many_were_taken_together_and_how_long_that_took(checker, city):
    households = city.roll.get_column("household_id").unique().sort().to_list()[:5]
    _, answers = _gathered(checker, *(_members(city, h) for h in households))
    assert [a.together for a in answers] == [5] * 5
    assert len({a.engine_seconds for a in answers}) == 1 and 0 < answers[0].engine_seconds < 60
    _, (alone,) = _gathered(checker, _members(city, households[0]))
    assert alone.together == 1 and alone.engine_seconds > 0


def test_a_queue_not_started_checks_a_group_at_each_step_in_the_callers_thread(checker, city):
    households = city.roll.get_column("household_id").unique().sort().to_list()[:3]
    queue = CheckQueue(checker)  # never started: the caller drives it (the check process does)
    assert not queue.waiting and queue.step() is False
    members = _members(city, households[0])
    futures = [queue.submit(members, AS_OF), queue.submit(members, AS_OF),
               queue.submit(_members(city, households[1]), AS_OF)]
    settled_in: list[str] = []
    futures[0].add_done_callback(lambda _: settled_in.append(threading.current_thread().name))
    assert queue.waiting and not any(f.done() for f in futures)
    assert queue.step() is True  # the first group: the same household is never taken twice in one
    assert futures[0].done() and futures[2].done() and not futures[1].done()
    assert settled_in == [threading.current_thread().name]
    assert futures[0].result().together == 2
    assert queue.step() is True and futures[1].result().together == 1
    assert not queue.waiting and queue.step() is False
    assert futures[0].result().flags.equals(_alone(checker, members))
    assert queue.calls == 2 and queue.state() == "stopped"  # no thread of its own


def test_the_same_household_twice_is_checked_twice_not_merged(checker, city):
    household = city.roll.get_column("household_id").unique().sort()[0]
    members = _members(city, household)
    queue, (first, second) = _gathered(checker, members, members)
    assert queue.calls == 2
    assert first.flags.equals(second.flags)
    assert first.frame.get_column("_row").to_list() == list(range(members.height))




@pytest.fixture
def checker_with_roll(store, deliver, city):
    deliver.all(city)
    checker = Checker(store)
    checker.current()
    return checker


def test_a_household_enrolling_anothers_member_is_checked_apart_from_it(checker_with_roll, city):
    sizes = city.roll.group_by("household_id").len().filter(pl.col("len") >= 2).sort("household_id")
    household = sizes.get_column("household_id")[0]
    members = _members(city, household)
    # The applicant is still enrolled in their old household, which is checked at the same moment
    # without them: no person is in both requests, yet the roll ties the two households.
    applicant = members.head(1).with_columns(pl.lit("APP-1").alias("household_id"))
    theirs = members.slice(1)
    queue, answers = _gathered(checker_with_roll, applicant, theirs)
    for members, answer in zip((applicant, theirs), answers, strict=True):
        assert answer.flags.equals(_alone(checker_with_roll, members))
    assert "duplicate_enrollment" in answers[0].flags.get_column("rule_id").to_list()
    assert queue.calls == 2  # taken as one group, then checked in two parts


def test_a_household_given_as_columns_is_checked_as_its_frame_is(checker, city):
    household = city.roll.get_column("household_id").unique().sort().to_list()[0]
    frame = _members(city, household)
    _, (as_frame, as_columns) = _gathered(checker, frame, frame.to_dict(as_series=False))
    assert as_columns.flags.equals(as_frame.flags) and as_columns.rows == as_frame.flags.to_dicts()


def test_a_household_with_a_mistyped_id_is_resolved_and_checked_with_the_others(checker, city):
    households = city.roll.get_column("household_id").unique().sort().to_list()[:6]
    damaged = _members(city, households[0])
    true_id = damaged.get_column("id_number")[0]
    typo = true_id[:5] + str((int(true_id[5]) + 1) % 10) + true_id[6:]  # one digit off: check fails
    damaged = damaged.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(typo))
                                   .otherwise(pl.col("id_number")).alias("id_number"))
    others = [_members(city, h) for h in households[1:]]
    queue, answers = _gathered(checker, damaged, *others)
    assert queue.calls == 1  # resolved together, then checked together
    first = answers[0].frame.row(0, named=True)
    assert (first["id_number"], first["roll_id_valid"], first["match_method"]) == (true_id, False, "repaired")
    for members, answer in zip((damaged, *others), answers, strict=True):
        assert answer.flags.equals(_alone(checker, members))
    assert "id_invalid" in answers[0].flags.get_column("rule_id").to_list()


def test_a_request_whose_caller_gave_up_does_not_stop_the_worker(checker, city):
    households = city.roll.get_column("household_id").unique().sort().to_list()[:3]
    queue = CheckQueue(checker)
    abandoned = queue.submit(_members(city, households[0]), AS_OF)
    kept = queue.submit(_members(city, households[1]), AS_OF)
    assert abandoned.cancel()
    queue.start()
    try:
        assert kept.result(timeout=60).flags.equals(_alone(checker, _members(city, households[1])))
        later = queue.submit(_members(city, households[2]), AS_OF)
        assert later.result(timeout=60).flags.equals(_alone(checker, _members(city, households[2])))
    finally:
        queue.stop()


def test_the_index_is_frozen_with_the_name_tables_loaded(checker, monkeypatch):
    # pypinyin's ~200,000 objects imported after gc.freeze() made every full collection of the
    # check process a ~20 ms pause of its checks: they must be loaded before it.
    import gc

    from engine import names

    happened: list[str] = []
    monkeypatch.setattr(names, "load", lambda: happened.append("names loaded"))
    monkeypatch.setattr(gc, "freeze", lambda: happened.append("frozen"))
    checker.current()
    assert happened == ["names loaded", "frozen"]
