"""The few shapes every rule of the catalogue takes, as plan builders.

A plan is a function of the Context that returns a Narwhals LazyFrame of *hits*: one row per
piece of evidence, keyed by `_order` (a roll row, for person rules) or `household_id` (for
household rules), with the rule's evidence columns and its metric columns (one value per
finding). engine.run folds the hits of each finding into one flag.

Only joins, filters, group-bys and column expressions are used here, so the same plans run on
polars and on PySpark through Narwhals.

A shape whose every hit is an inner join with a source's records says so (`needs_records`):
over one household (engine.check), a rule whose source has no record of its persons cannot
fire, and is not run at all.
"""

from __future__ import annotations

from collections.abc import Callable

import narwhals as nw

from .context import Context

__all__ = [
    "Plan",
    "Where",
    "person_match",
    "person_absent",
    "household_total",
    "member_records",
    "roll_rows_of",
    "needs_records",
    "requires_records",
]

Plan = Callable[[Context], nw.LazyFrame]
Where = Callable[[Context], nw.Expr]
Having = Callable[[Context], nw.Expr]


def requires_records(*keys: str) -> Callable[[Plan], Plan]:
    """Declare that every hit of the decorated plan joins (inner) with a record of each of `keys`."""

    def declare(plan: Plan) -> Plan:
        plan.needs_records = keys  # type: ignore[attr-defined]
        return plan

    return declare


def needs_records(plan: Plan) -> tuple[str, ...]:
    """The sources without whose records `plan` has no hits (none when not declared)."""
    return tuple(getattr(plan, "needs_records", ()))


def _source_side(ctx: Context, key: str, columns: tuple[str, ...]) -> nw.LazyFrame:
    """The source's person key and `columns`; its id_number only when that is the key (else the
    roll side gives it: equal keys are equal IDs)."""
    return ctx.source(key).select(ctx.key, *[c for c in columns if c not in ("id_number", ctx.key)])


def person_match(
    key: str,
    evidence: tuple[str, ...],
    where: Where | None = None,
    programs: tuple[str, ...] | None = None,
    roll_columns: tuple[str, ...] = (),
    kept: tuple[str, ...] = (),
) -> Plan:
    """Roll rows whose person has a record in `key` satisfying `where`.

    `roll_columns` are roll values the condition compares against, renamed `roll_<name>` so
    they never clash with the source's columns of the same name; `kept`, hit columns beyond the
    evidence that the rule's native post-step (Rule.annotate) reads.
    """

    def plan(ctx: Context) -> nw.LazyFrame:
        rows = ctx.matchable(programs).select(
            "_order", ctx.key, *[nw.col(c).alias(f"roll_{c}") for c in roll_columns]
        )
        hits = rows.join(_source_side(ctx, key, evidence), on=ctx.key, how="inner")
        if where is not None:
            hits = hits.filter(where(ctx))
        return hits.select("_order", *evidence, *kept)

    return requires_records(key)(plan)


def person_absent(key: str, programs: tuple[str, ...] | None = None) -> Plan:
    """Roll rows whose valid ID has no record at all in `key`."""

    def plan(ctx: Context) -> nw.LazyFrame:
        rows = ctx.matchable(programs).select("_order", ctx.key)
        absent = rows.join(ctx.source(key).select(ctx.key), on=ctx.key, how="anti")
        return absent.select("_order", nw.lit(key).alias("searched_source"))

    return plan


def member_records(ctx: Context, key: str, columns: tuple[str, ...], where: Where | None) -> nw.LazyFrame:
    """The records of `key` that belong to household members, with the household's size and
    region (so that `where` can use per-region policy)."""
    records = ctx.members().join(_source_side(ctx, key, columns), on=ctx.key, how="inner")
    records = records.join(ctx.households, on="household_id", how="inner")
    if where is not None:
        records = records.filter(where(ctx))
    return records


def household_total(
    key: str,
    evidence: tuple[str, ...],
    programs: tuple[str, ...] | None,
    where: Where | None = None,
    amount: str | None = None,
    having: Having | None = None,
    metrics: Callable[[Context], list[nw.Expr]] | None = None,
) -> Plan:
    """Households whose members' records in `key` (filtered by `where`) exist, or whose total
    of `amount` satisfies `having`.

    `metrics` are computed per household beside `total`, `household_size` and
    `household_region`, and `having` may use all of them; the hits carry them as metrics.
    """

    def plan(ctx: Context) -> nw.LazyFrame:
        records = member_records(ctx, key, evidence, where)
        records = records.join(ctx.households_in(programs).select("household_id"), on="household_id", how="semi")
        if amount is None:
            return records.select("household_id", *evidence)
        records = ctx.reused(records)  # listed and totalled
        # Rounded to the fen: float sums in parallel group-bys vary in their last bits run to run.
        totals = records.group_by("household_id").agg(nw.col(amount).sum().round(2).alias("total"))
        totals = totals.join(ctx.households, on="household_id", how="inner")
        if metrics is not None:
            totals = totals.with_columns(*metrics(ctx))
        if having is not None:
            totals = totals.filter(having(ctx))
        return records.select("household_id", *evidence).join(
            totals.drop("household_region"), on="household_id", how="inner"
        )

    return requires_records(key)(plan)


def roll_rows_of(ctx: Context, flagged: nw.LazyFrame) -> nw.LazyFrame:
    """Evidence for roll-only rules: every roll row of each flagged person (household, program,
    spreadsheet row), so the caseworker sees where else the person is enrolled."""
    others = ctx.matchable().select(
        ctx.key,
        nw.col("household_id").alias("enrolled_household_id"),
        nw.col("program").alias("enrolled_program"),
        nw.col("_row").alias("roll_row"),
    )
    return flagged.select("_order", ctx.key).join(others, on=ctx.key, how="inner").drop(ctx.key)
