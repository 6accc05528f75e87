"""Household review dates (动态管理): when each household on the roll was last reviewed, and
which are due or overdue for re-review.

The last review of a household is the latest one recorded with `crosscheck households review`,
or else the latest `enrolled_on` of its roll rows (admission is the first review). A household
is re-reviewed every `review_months` (12), or every `review_months_income` (6) when a member
declares income on the roll. `due` lists the households of the latest roll snapshot whose next
review falls within `within_days` of today, overdue ones first; a household with neither a
review nor an enrolment date is overdue.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import sqlalchemy as sa

from engine.errors import NotFound, StoreError

from . import snapshots
from .db import Store
from .models import HouseholdReview, utcnow

__all__ = ["households", "record_review", "due"]


def _roll(store: Store) -> pl.LazyFrame:
    with store.read() as session:
        held = snapshots.latest(session)
    if "roll" not in held:
        raise StoreError("没有救助对象名册快照 (no roll snapshot is held): crosscheck ingest roll FILE --snapshot-date …")
    return snapshots.scan(store, held["roll"])


def households(store: Store) -> pl.DataFrame:
    """One row per household of the latest roll: region, programs, members, whether a member
    declares income, latest enrolment date."""
    roll = _roll(store)
    names = roll.collect_schema().names()
    income = pl.col("declared_income_monthly").cast(pl.Float64).fill_null(0.0) if "declared_income_monthly" in names \
        else pl.lit(0.0)
    enrolled = pl.col("enrolled_on").cast(pl.Date) if "enrolled_on" in names else pl.lit(None, pl.Date)
    return (
        roll.with_columns(income.alias("_income"), enrolled.alias("_enrolled"))
        .group_by("household_id")
        .agg(
            pl.col("region_code").first(),
            pl.col("program").unique().sort().str.join(",").alias("programs"),
            pl.col("id_number").n_unique().alias("members"),
            (pl.col("_income") > 0).any().alias("declares_income"),
            pl.col("_enrolled").max().alias("enrolled_on"),
        )
        .sort("household_id")
        .collect()
    )


def record_review(store: Store, household_id: str, reviewed_on: date, by: str, note: str | None = None,
                  now: datetime | None = None) -> HouseholdReview:
    """Record that `household_id` was reviewed on `reviewed_on`; the household must be on the
    latest roll."""
    if not by or not by.strip():
        raise StoreError("a review needs --by: who reviewed the household")
    known = households(store).filter(pl.col("household_id") == household_id)
    if known.is_empty():
        raise NotFound(f"家庭 {household_id} 不在最新名册中 (household {household_id} is not on the latest roll snapshot)")
    review = HouseholdReview(household_id=household_id, reviewed_on=reviewed_on, by=by.strip(), note=note,
                             recorded_at=now or utcnow())
    with store.write() as session:
        session.add(review)
    return review


def due(store: Store, today: date, within_days: int | None = None, region: str | None = None) -> pl.DataFrame:
    """Households due (next review within `within_days`) or overdue, overdue first."""
    settings = store.settings
    within = settings.review_within_days if within_days is None else within_days
    frame = households(store)
    with store.read() as session:
        reviews = session.execute(
            sa.select(HouseholdReview.household_id, sa.func.max(HouseholdReview.reviewed_on))
            .group_by(HouseholdReview.household_id)
        ).all()
    reviewed = pl.DataFrame(reviews, schema={"household_id": pl.String, "last_review": pl.Date}, orient="row")
    interval = pl.when(pl.col("declares_income")).then(settings.review_months_income).otherwise(settings.review_months)
    last = pl.coalesce("last_review", "enrolled_on")
    frame = (
        frame.join(reviewed, on="household_id", how="left")
        .with_columns(
            last.alias("last_reviewed"),
            pl.when(pl.col("last_review").is_not_null()).then(pl.lit("review"))
            .when(pl.col("enrolled_on").is_not_null()).then(pl.lit("enrolled")).otherwise(None).alias("basis"),
            interval.cast(pl.Int64).alias("interval_months"),
        )
        .with_columns(
            pl.col("last_reviewed").dt.offset_by(pl.format("{}mo", pl.col("interval_months"))).alias("due_on")
        )
        .with_columns(
            pl.when(pl.col("due_on").is_null() | (pl.col("due_on") < today)).then(pl.lit("overdue"))
            .otherwise(pl.lit("due")).alias("state"),
            (pl.lit(today) - pl.col("due_on")).dt.total_days().alias("days_overdue"),
        )
        .filter(pl.col("due_on").is_null() | (pl.col("due_on") <= today + timedelta(days=within)))
    )
    if region:
        frame = frame.filter(pl.col("region_code").str.starts_with(region))
    return frame.sort(["due_on", "household_id"], nulls_last=False).select(
        "household_id", "region_code", "programs", "members", "declares_income", "last_reviewed", "basis",
        "interval_months", "due_on", "state", "days_overdue",
    )
