"""Household review dates: yearly, half-yearly where a member declares income."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from engine import ids
from engine.errors import NotFound, StoreError
from store.households import due, households, record_review


def person(first17: str) -> str:
    return first17 + ids.check_char(first17)


ROLL = pl.DataFrame(
    {
        "program": ["dibao", "dibao", "tekun", "dibao", "elderly"],
        "household_id": ["H1", "H1", "H2", "H3", "H4"],
        "id_number": [person(p) for p in ("11010519491231002", "11010519500101002", "11010519300101002",
                                          "11010519600101002", "11010519200101002")],
        "name": ["甲", "乙", "丙", "丁", "戊"],
        "region_code": ["110105001001", "110105001001", "110105002001", "110105001002", "110105002002"],
        "benefit_monthly": ["800", "800", "1200", "800", "100"],
        "declared_income_monthly": ["0", "600", "0", "0", "0"],
        "enrolled_on": ["2025-09-01", "2025-03-01", "2025-09-15", None, "2024-01-01"],
    }
)


@pytest.fixture
def roll_held(store, deliver):
    assert all(ids.is_valid(i) for i in ROLL["id_number"]), "fix the test IDs"
    deliver("roll", ROLL, date(2026, 6, 30))
    return store


@pytest.mark.parametrize(
    ("today", "within", "expected"),
    [
        # H1 declares income: every 6 months from its latest enrolment (2025-09-01) → 2026-03-01
        # H2 yearly from 2025-09-15 → 2026-09-15; H3 never reviewed; H4 yearly from 2024-01-01
        (date(2026, 7, 1), 0, [("H3", None, "overdue"), ("H4", date(2025, 1, 1), "overdue"),
                               ("H1", date(2026, 3, 1), "overdue")]),
        (date(2026, 9, 1), 30, [("H3", None, "overdue"), ("H4", date(2025, 1, 1), "overdue"),
                                ("H1", date(2026, 3, 1), "overdue"), ("H2", date(2026, 9, 15), "due")]),
    ],
)
def test_households_due(roll_held, today, within, expected):
    frame = due(roll_held, today, within)
    assert list(frame.select("household_id", "due_on", "state").iter_rows()) == expected


def test_a_recorded_review_moves_the_due_date(roll_held):
    record_review(roll_held, "H1", date(2026, 6, 20), "王芳", "入户复核")
    frame = due(roll_held, date(2026, 7, 1), 0)
    assert "H1" not in frame["household_id"].to_list()
    later = due(roll_held, date(2026, 12, 25), 0).filter(pl.col("household_id") == "H1")
    assert later.select("last_reviewed", "basis", "interval_months", "due_on").row(0) == (
        date(2026, 6, 20), "review", 6, date(2026, 12, 20))


def test_region_filter_and_summary(roll_held):
    assert due(roll_held, date(2026, 7, 1), 0, region="110105002")["household_id"].to_list() == ["H4"]
    summary = households(roll_held).filter(pl.col("household_id") == "H1").row(0, named=True)
    assert summary["members"] == 2 and summary["declares_income"] and summary["programs"] == "dibao"


def test_reviews_of_unknown_households_and_without_a_roll(store, roll_held):
    with pytest.raises(NotFound, match="H9"):
        record_review(roll_held, "H9", date(2026, 6, 20), "王芳")
    with pytest.raises(StoreError, match="--by"):
        record_review(roll_held, "H1", date(2026, 6, 20), "")


def test_no_roll_no_listing(store):
    with pytest.raises(StoreError, match="no roll snapshot"):
        due(store, date(2026, 7, 1))
