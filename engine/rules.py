"""The rule catalogue (CONTRACTS §3): one declaration per check.

Adding a rule is adding an entry: its id, labels, cadence, programs, level, severity, the
sources it needs, the evidence and metric columns it shows, and a plan built from one of the
shapes in engine.patterns (or, for the few that need it, a small function of joins, filters and
group-bys). Plans are compiled late, against the run's Context, into lazy expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

import narwhals as nw
import numpy as np
import polars as pl

from . import ids, names, screens
from .context import Context, year_before
from .errors import SelectionError
from .frames import rows_at, series
from .patterns import (
    Plan,
    household_total,
    member_records,
    person_absent,
    person_match,
    roll_rows_of,
)

__all__ = ["Rule", "CATALOGUE", "RULES", "rule", "select_rules"]

DIBAO_TEKUN = screens.DIBAO_TEKUN


@dataclass(frozen=True)
class Rule:
    id: str
    label_zh: str
    label_en: str
    cadence: Literal["monthly", "quarterly", "semiannual", "annual"]
    programs: tuple[str, ...] | None  # None: every program
    level: Literal["person", "household"]
    severity: Literal["high", "medium", "low"]
    sources: tuple[str, ...]  # all needed, unless any_source
    plan: Plan
    evidence: tuple[str, ...] = ()  # columns of each evidence record
    metrics: tuple[str, ...] = ()  # one value per finding (`overpayment` feeds the flag column)
    condition: str = ""  # the condition in words
    any_source: bool = False  # one of `sources` is enough
    optional_sources: tuple[str, ...] = ()  # used when present
    # Native post-step on the (small) collected hits, for text no expression can make: given
    # them and the as-of date, it gives them back annotated (engine.run, engine.fold_small).
    annotate: Callable[[pl.DataFrame, date], pl.DataFrame] | None = None
    # Person rules: columns of the flagged roll row shown in the evidence (engine.resolve's).
    roll_metrics: tuple[str, ...] = ()
    # A necessary condition over a check's few rows and records (engine.screens): False only where
    # the plan has no hits, so that engine.check_plan need not run it.
    screen: Callable[[screens.Few], bool] | None = None

    def missing_sources(self, available: set[str]) -> str | None:
        """Why the rule cannot run with `available` sources, or None when it can."""
        if not self.sources:
            return None
        present = [s for s in self.sources if s in available]
        if self.any_source and present:
            return None
        absent = [s for s in self.sources if s not in available]
        if not absent:
            return None
        joiner = " or " if self.any_source else " and "
        return f"source {joiner.join(absent)} not provided"

    def used_sources(self, available: set[str]) -> tuple[str, ...]:
        return tuple(s for s in (*self.sources, *self.optional_sources) if s in available)


# ---- helpers for the plans -------------------------------------------------------------

def _name_key(column: str) -> nw.Expr:
    """Names compared without white space and with the middle-dot variants folded: engine.names.
    key_expr but for its full-width fold, which Narwhals cannot spell (no per-character
    mapping). Names this key finds different are a superset of those key_expr does;
    `_same_names` drops the rest."""
    return nw.col(column).str.replace_all(names.SPACE, "").str.replace_all(names.DOTS, "·")


def _each(hits: pl.DataFrame, column: str, text_of: Callable[[str], str | None]) -> list[str | None]:
    """`text_of` of each value of a String column (null stays null), in Python: over a rule's
    few hits, cheaper than an expression that is costly to set up (key_expr's full-width fold
    builds a 94-pattern automaton each time it runs), and than any query (~60 µs)."""
    return [None if value is None else text_of(value) for value in hits.get_column(column).to_list()]


def _same_names(hits: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """name_mismatch's hits whose names are the same once full-width forms are folded too
    (ＪＯＨＮ and JOHN) are no mismatch: dropped in Python, on the few hits, for either engine
    (a null name compares as polars compares it: to nothing, so its row is dropped)."""
    kept = [roll is not None and held is not None and roll != held for roll, held in
            zip(_each(hits, "roll_name", names.key), _each(hits, "name", names.key), strict=True)]
    return hits if all(kept) else rows_at(hits, np.flatnonzero(np.array(kept, dtype=bool)))


def _in_window(ctx: Context, column: str) -> nw.Expr:
    return (nw.col(column) > nw.lit(year_before(ctx.as_of))) & (nw.col(column) <= nw.lit(ctx.as_of))


def _explain_id(hits: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Why each roll ID is invalid, at the as-of date (an ID born after it is invalid then)."""
    return hits.hstack([series("problem", _each(hits, "roll_id_number", lambda raw: ids.problem(raw, as_of)),
                               pl.String)])


def _id_invalid(ctx: Context) -> nw.LazyFrame:
    # The roll ID's own validity: a resolved row still has the invalid spelling to correct.
    return ctx.rows.filter(~nw.col("roll_id_valid")).select("_order", "roll_id_number")


def _deceased(ctx: Context) -> nw.LazyFrame:
    parts = []
    if ctx.has("deaths"):
        parts.append(
            ctx.source("deaths").select(
                ctx.key, nw.lit("deaths").alias("record_source"), nw.col("death_date").alias("date")
            )
        )
    if ctx.has("hukou"):
        parts.append(
            ctx.source("hukou")
            .filter(nw.col("status") == "deceased")
            .select(ctx.key, nw.lit("hukou").alias("record_source"), nw.col("status_date").alias("date"))
        )
    records = ctx.reused(nw.concat(parts, how="vertical").filter(
        (nw.col("date") <= nw.lit(ctx.as_of)) | nw.col("date").is_null()
    ))
    earliest = records.group_by(ctx.key).agg(nw.col("date").min().alias("death_date"))
    rows = ctx.matchable().select("_order", ctx.key, "benefit_monthly")
    hits = rows.join(records, on=ctx.key).join(earliest, on=ctx.key)
    overpayment = (nw.col("benefit_monthly") * ctx.months_after(nw.col("death_date"))).round(2)
    return hits.select("_order", "record_source", "date", "death_date", overpayment.alias("overpayment"))


def _duplicate_enrollment(ctx: Context) -> nw.LazyFrame:
    rows = ctx.matchable()
    households = rows.group_by(ctx.key).agg(nw.col("household_id").n_unique().alias("households"))
    in_program = rows.group_by(ctx.key, "program").agg(nw.len().alias("rows_in_program"))
    flagged = ctx.reused(  # listed, and its metrics joined back
        rows.join(households, on=ctx.key)
        .join(in_program, on=[ctx.key, "program"])
        .filter((nw.col("households") > 1) | (nw.col("rows_in_program") > 1))
    )
    metrics = flagged.select("_order", "households", "rows_in_program")
    return roll_rows_of(ctx, flagged).join(metrics, on="_order")


def _program_conflict(ctx: Context) -> nw.LazyFrame:
    rows = ctx.matchable(DIBAO_TEKUN)
    both = rows.group_by(ctx.key).agg(nw.col("program").n_unique().alias("programs"))
    flagged = rows.join(both.filter(nw.col("programs") > 1), on=ctx.key, how="semi")
    return roll_rows_of(ctx, flagged)


def _elderly_underage(ctx: Context) -> nw.LazyFrame:
    born = nw.col("id_number").str.slice(6, 8)  # YYYYMMDD compares correctly as text
    as_of = ctx.as_of
    cutoff = screens.born_after(as_of, 80)
    birthday_ahead = (nw.col("id_number").str.slice(10, 4) > nw.lit(f"{as_of.month:02d}{as_of.day:02d}")).cast(
        nw.Int64
    )
    age = nw.lit(as_of.year) - nw.col("id_number").str.slice(6, 4).cast(nw.Int64) - birthday_ahead
    return (
        ctx.matchable(("elderly",))
        .filter(born > nw.lit(cutoff))
        .select(
            "_order",
            nw.concat_str([born.str.slice(0, 4), born.str.slice(4, 2), born.str.slice(6, 2)], separator="-")
            .alias("birth_date"),
            age.alias("age"),
        )
    )


def _disability_without_dibao(ctx: Context) -> nw.LazyFrame:
    supported = ctx.matchable(DIBAO_TEKUN).select(ctx.key)
    flagged = ctx.matchable(("disability_living",)).join(supported, on=ctx.key, how="anti")
    return roll_rows_of(ctx, flagged)


def _property_excess(ctx: Context) -> nw.LazyFrame:
    columns = ("id_number", "certificate_no", "usage", "area_m2", "status")
    records = member_records(ctx, "property", columns, lambda _: nw.col("status") == "normal")
    records = ctx.reused(records.join(ctx.households_in(DIBAO_TEKUN).select("household_id"), on="household_id",
                                      how="semi"))
    residential = nw.col("usage") == "residential"
    other_uses = records.filter(~residential).group_by("household_id").agg(nw.len().alias("non_residential"))
    # A co-owned flat appears once per owner: count its certificate and its area once.
    flats = (
        records.filter(residential)
        .group_by("household_id", "certificate_no")
        .agg(nw.col("area_m2").max())
        .group_by("household_id")
        .agg(nw.len().alias("residential_count"), nw.col("area_m2").sum().round(2).alias("residential_area"))
    )
    totals = (
        ctx.households.join(flats, on="household_id", how="left")
        .join(other_uses, on="household_id", how="left")
        .with_columns(
            nw.col("non_residential").fill_null(0),
            nw.col("residential_count").fill_null(0),
            nw.col("residential_area").fill_null(0.0),
        )
        .with_columns((nw.col("residential_area") / nw.col("household_size")).round(2).alias("area_per_capita"))
    )
    excess = (nw.col("non_residential") > 0) | (
        (nw.col("residential_count") > ctx.setting("residential_max_count"))
        & (nw.col("residential_area") / nw.col("household_size") > ctx.setting("residential_area_per_capita_max"))
    )
    flagged = totals.filter(excess).select(
        "household_id", "non_residential", "residential_count", "area_per_capita", "household_size"
    )
    return records.select("household_id", *columns).join(flagged, on="household_id")


def _income_over_standard(ctx: Context) -> nw.LazyFrame:
    amount = nw.col("amount").cast(nw.Float64)
    parts = [
        # Only positive amounts count (the filter below): the rows without one are left out
        # before grouping, not after (a city roll: 85k of 291k rows declare an income).
        ctx.rows.filter(nw.col("declared_income_monthly") > 0)
        .group_by("household_id", "id_number")
        .agg(nw.col("declared_income_monthly").max().alias("amount"))
        .select(
            "household_id",
            "id_number",
            nw.lit("declared_income").alias("component"),
            nw.lit(None, nw.String).alias("detail"),
            amount,
        )
    ]
    if ctx.has("pensions"):
        counted = ~ctx.in_setting("income_excluded_pension_types", nw.col("pension_type"))
        pensions = member_records(ctx, "pensions", ("pension_type", "monthly_amount"), lambda _: counted)
        parts.append(
            pensions.select(
                "household_id",
                "id_number",
                nw.lit("pension").alias("component"),
                nw.col("pension_type").alias("detail"),
                nw.col("monthly_amount").alias("amount").cast(nw.Float64),
            )
        )
    if ctx.has("payroll"):
        payroll = member_records(ctx, "payroll", ("employer", "monthly_salary"), None)
        parts.append(
            payroll.select(
                "household_id",
                "id_number",
                nw.lit("payroll").alias("component"),
                nw.col("employer").cast(nw.String).alias("detail"),
                nw.col("monthly_salary").alias("amount").cast(nw.Float64),
            )
        )
    incomes = ctx.reused(nw.concat(parts, how="vertical").filter(nw.col("amount") > 0))
    totals = (
        incomes.group_by("household_id")
        .agg(nw.col("amount").sum().round(2).alias("total"))
        .join(ctx.households_in(("dibao",)), on="household_id")
        .with_columns(
            (nw.col("total") / nw.col("household_size")).round(2).alias("per_capita"),
            ctx.setting("dibao_monthly").alias("standard"),
        )
        .filter(nw.col("total") / nw.col("household_size") > nw.col("standard"))
    )
    return incomes.join(
        totals.select("household_id", "total", "household_size", "per_capita", "standard"), on="household_id"
    )


# ---- the catalogue -----------------------------------------------------------------------

_HUKOU = ("name", "region_code", "status", "status_date")
_RESOLUTION = ("resolution",)  # engine.resolve: suggested ID, method, score, candidates
_ROLL_ROWS = ("enrolled_household_id", "enrolled_program", "roll_row")

CATALOGUE: tuple[Rule, ...] = (
    Rule("id_invalid", "身份证号无效", "Invalid ID number", "monthly", None, "person", "medium", (),
         _id_invalid, ("roll_id_number", "problem"), annotate=_explain_id, roll_metrics=_RESOLUTION,
         condition="the roll ID is invalid after normalization (evidence: the ID it was resolved to, if "
                   "any, and the candidates considered)",
         screen=screens.id_invalid),
    Rule("hukou_not_found", "户籍库中查无此人", "Not found in household registration", "monthly", None,
         "person", "medium", ("hukou",), person_absent("hukou"), metrics=("searched_source",),
         roll_metrics=_RESOLUTION,
         condition="valid ID absent from hukou (a valid ID is never re-pointed; candidates are listed)",
         screen=screens.hukou_not_found),
    Rule("name_mismatch", "姓名与户籍不符", "Name differs from household registration", "monthly", None,
         "person", "low", ("hukou",),
         person_match("hukou", _HUKOU, lambda _: _name_key("roll_name") != _name_key("name"),
                      roll_columns=("name",), kept=("roll_name",)),
         _HUKOU, roll_metrics=_RESOLUTION, annotate=_same_names,
         condition="ID found in hukou, names differ after normalization (evidence: the likely right person)",
         screen=screens.name_mismatch),
    Rule("moved_out", "户籍已迁出", "Registration moved out", "monthly", None, "person", "medium", ("hukou",),
         person_match("hukou", _HUKOU,
                      lambda _: (nw.col("status") == "moved_out")
                      | (nw.col("region_code").str.slice(0, 6) != nw.col("roll_region_code").str.slice(0, 6)),
                      roll_columns=("region_code",)),
         _HUKOU, condition="hukou status moved_out, or hukou region's first 6 digits differ",
         screen=screens.moved_out),
    Rule("deceased", "已死亡仍在享受待遇", "Deceased", "monthly", None, "person", "high", ("deaths", "hukou"),
         _deceased, ("record_source", "date"), ("death_date", "overpayment"), any_source=True,
         condition="a death record, or hukou status deceased, dated on or before as-of",
         screen=screens.deceased),
    Rule("duplicate_enrollment", "重复享受", "Enrolled more than once", "monthly", None, "person", "high", (),
         _duplicate_enrollment, _ROLL_ROWS, ("households", "rows_in_program"),
         condition="the same person in more than one household, or twice in one program",
         screen=screens.duplicate_enrollment),
    Rule("program_conflict", "低保特困重复享受", "Both dibao and tekun", "monthly", DIBAO_TEKUN, "person",
         "high", (), _program_conflict, _ROLL_ROWS, condition="the same person in both dibao and tekun",
         screen=screens.program_conflict),
    Rule("elderly_underage", "高龄津贴对象未满80周岁", "Elderly allowance under age 80", "monthly", ("elderly",),
         "person", "high", (), _elderly_underage, (), ("birth_date", "age"), condition="age < 80",
         screen=screens.elderly_underage),
    Rule("disability_living_without_dibao", "残疾人生活补贴对象非低保特困", "Disability living subsidy without dibao",
         "monthly", ("disability_living",), "person", "medium", (), _disability_without_dibao, _ROLL_ROWS,
         condition="the person is not in dibao or tekun",
         screen=screens.disability_living_without_dibao),
    Rule("medical_hardship", "大额医疗支出（可能符合救助条件）", "Large medical costs (may qualify)", "monthly",
         ("edge",), "household", "low", ("medical",),
         household_total("medical", ("id_number", "settled_on", "out_of_pocket"), ("edge",),
                         lambda ctx: _in_window(ctx, "settled_on"), amount="out_of_pocket",
                         metrics=lambda ctx: [ctx.setting("medical_hardship_out_of_pocket").alias("threshold")],
                         having=lambda ctx: nw.col("total") >= nw.col("threshold")),
         ("id_number", "settled_on", "out_of_pocket"), ("total", "threshold"),
         condition="members' out_of_pocket in the 12 months up to as-of ≥ threshold",
         screen=screens.medical_hardship),
    Rule("vehicle_owned", "家庭成员名下有车辆", "Household owns a vehicle", "quarterly", DIBAO_TEKUN, "household",
         "high", ("vehicles",),
         household_total("vehicles", ("id_number", "plate", "vehicle_type", "purchase_price", "status"),
                         DIBAO_TEKUN,
                         lambda ctx: (nw.col("status") == "normal")
                         & ~ctx.in_setting("vehicle_exempt_types", nw.col("vehicle_type"))),
         ("id_number", "plate", "vehicle_type", "purchase_price", "status"),
         condition="a member owns a normal vehicle of a non-exempt type",
         screen=screens.vehicle_owned),
    Rule("machinery_owned", "家庭成员名下有大型农机具", "Household owns large farm machinery", "quarterly",
         DIBAO_TEKUN, "household", "medium", ("farm_machinery",),
         household_total("farm_machinery", ("id_number", "machine_type", "purchase_price"), DIBAO_TEKUN),
         ("id_number", "machine_type", "purchase_price"), condition="a member owns large farm machinery",
         screen=screens.machinery_owned),
    Rule("property_excess", "房产超标", "Property over the limit", "quarterly", DIBAO_TEKUN, "household", "high",
         ("property",), _property_excess, ("id_number", "certificate_no", "usage", "area_m2", "status"),
         ("non_residential", "residential_count", "area_per_capita", "household_size"),
         condition="any non-residential property, or too many dwellings with too much area per capita",
         screen=screens.property_excess),
    Rule("housing_fund_active", "正在缴存住房公积金", "Paying into the housing provident fund", "quarterly",
         DIBAO_TEKUN, "household", "medium", ("housing_fund",),
         household_total("housing_fund", ("id_number", "employer", "last_paid_month", "monthly_contribution"),
                         DIBAO_TEKUN,
                         # A month after as-of (a delivery made later) is paying still: it fires too.
                         lambda ctx: ctx.months_after(nw.col("last_paid_month"))
                         < ctx.setting("housing_fund_lookback_months")),
         ("id_number", "employer", "last_paid_month", "monthly_contribution"),
         condition="last_paid_month within the lookback months (as-of month counts as the first), "
                   "or later",
         screen=screens.housing_fund_active),
    Rule("incarcerated", "正在服刑", "In prison", "quarterly", None, "person", "high", ("prisoners",),
         person_match("prisoners", ("admitted_on", "released_on"),
                      lambda ctx: (nw.col("admitted_on") <= nw.lit(ctx.as_of))
                      & (nw.col("released_on").is_null() | (nw.col("released_on") > nw.lit(ctx.as_of)))),
         ("admitted_on", "released_on"), condition="admitted on or before as-of and not released by then",
         screen=screens.incarcerated),
    Rule("cadre_relative", "村(居)干部近亲属", "Relative of a village cadre", "quarterly",
         ("dibao", "tekun", "edge", "temp"), "person", "medium", ("cadre_relatives",),
         person_match("cadre_relatives", ("cadre_id_number", "cadre_name", "relation"),
                      programs=("dibao", "tekun", "edge", "temp")),
         ("cadre_id_number", "cadre_name", "relation"), condition="a declared relative of a cadre",
         screen=screens.cadre_relative),
    Rule("public_payroll", "家庭成员为财政供养人员", "Member on government payroll", "semiannual", DIBAO_TEKUN,
         "household", "medium", ("payroll",),
         household_total("payroll", ("id_number", "employer", "monthly_salary"), DIBAO_TEKUN),
         ("id_number", "employer", "monthly_salary"),
         condition="a member is on government payroll (review, not automatic exclusion)",
         screen=screens.public_payroll),
    Rule("income_over_standard", "家庭人均收入超过低保标准", "Income per capita over the standard", "semiannual",
         ("dibao",), "household", "high", (), _income_over_standard,
         ("id_number", "component", "detail", "amount"), ("total", "household_size", "per_capita", "standard"),
         optional_sources=("pensions", "payroll"),
         condition="(declared income + counted pensions + payroll) ÷ size > dibao standard",
         screen=screens.income_over_standard),
    Rule("assets_over_limit", "家庭存款超过限额", "Deposits over the limit", "annual", DIBAO_TEKUN, "household",
         "high", ("deposits",),
         household_total("deposits", ("id_number", "bank", "balance"), DIBAO_TEKUN, amount="balance",
                         metrics=lambda ctx: [(ctx.setting("dibao_monthly") * nw.col("household_size")
                                               * ctx.setting("deposit_limit_months")).alias("limit")],
                         having=lambda _: nw.col("total") > nw.col("limit")),
         ("id_number", "bank", "balance"), ("total", "limit"),
         condition="Σ members' deposits > dibao × size × deposit_limit_months",
         screen=screens.assets_over_limit),
)

RULES: dict[str, Rule] = {r.id: r for r in CATALOGUE}


def rule(rule_id: str) -> Rule:
    try:
        return RULES[rule_id]
    except KeyError:
        raise SelectionError(f"unknown rule {rule_id!r}; known rules: {', '.join(RULES)}") from None


def select_rules(rule_ids: list[str] | None = None, cadences: list[str] | None = None) -> list[Rule]:
    """The catalogue entries asked for, in catalogue order; unknown ids or cadences are errors."""
    known_cadences = {"monthly", "quarterly", "semiannual", "annual"}
    bad = [c for c in cadences or [] if c not in known_cadences]
    if bad:
        raise SelectionError(f"unknown cadence {', '.join(bad)}; known: {', '.join(sorted(known_cadences))}")
    wanted = {rule(r).id for r in rule_ids} if rule_ids else None
    return [
        r
        for r in CATALOGUE
        if (wanted is None or r.id in wanted) and (not cadences or r.cadence in cadences)
    ]
