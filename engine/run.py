"""Run the selected rules over a roll and its sources: frames in, a flags frame out.

    run(roll, sources, as_of, policy, rules, cadences) -> RunResult

0. when hukou is given, resolve dirty and wrong roll IDs against it (engine.resolve): every
   rule then sees the resolved ID, and the flags say how it was found (`match_method`);
1. prepare the roll once (row order, household size, region and head);
2. compile each selected rule's plan against the Context (rules whose sources are absent are
   skipped, with the reason);
3. collect every plan in one go, so polars shares the common scans and joins;
4. fold each finding's hits into one flag row with its evidence as JSON, in the contract's
   column order, sorted deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import narwhals as nw
import polars as pl

from .context import Context
from .policy import DEFAULT_POLICY, Policy
from .resolve import RESOLUTION, resolve
from .rules import Rule, select_rules

__all__ = ["RunResult", "run", "prepare_roll", "FLAG_COLUMNS", "RESOLUTION_COLUMNS", "empty_flags"]

FLAG_COLUMNS: dict[str, Any] = {
    "rule_id": pl.String,
    "severity": pl.String,
    "cadence": pl.String,
    "program": pl.String,
    "household_id": pl.String,
    "id_number": pl.String,
    "roll_id_number": pl.String,
    "name": pl.String,
    "region_code": pl.String,
    "source": pl.String,
    "match_method": pl.String,
    "match_score": pl.Float64,
    "evidence": pl.String,
    "overpayment": pl.Float64,
    "as_of": pl.Date,
    # beyond the contract's columns, for people reading the flags
    "level": pl.String,
    "rule_label_zh": pl.String,
    "rule_label_en": pl.String,
}

HEAD_RELATION = "户主"

RESOLUTION_COLUMNS: dict[str, Any] = {
    "_row": pl.Int64,
    "household_id": pl.String,
    "program": pl.String,
    "roll_id_number": pl.String,
    "id_number": pl.String,
    "name": pl.String,
    "match_method": pl.String,
    "match_score": pl.Float64,
    "resolution": RESOLUTION,
}


@dataclass
class RunResult:
    flags: pl.DataFrame
    as_of: date
    ran: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rule_id, reason)
    # One row per roll row that was looked for in hukou (RESOLUTION_COLUMNS); empty without hukou.
    resolutions: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=RESOLUTION_COLUMNS))

    def counts(self) -> dict[str, int]:
        """Flags per rule, for every rule that ran (zero included)."""
        found = dict(self.flags.group_by("rule_id").len().iter_rows())
        return {rule_id: found.get(rule_id, 0) for rule_id in self.ran}


def empty_flags() -> pl.DataFrame:
    return pl.DataFrame(schema=FLAG_COLUMNS)


def _lazy(frame: Any) -> pl.LazyFrame:
    if isinstance(frame, pl.DataFrame):
        return frame.lazy()
    if isinstance(frame, pl.LazyFrame):
        return frame
    return nw.from_native(frame).lazy().collect().to_native().lazy()


def prepare_roll(roll: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Roll rows as every rule sees them: `_order` (file order), `roll_id_number` (as given),
    `roll_id_valid` (the roll ID's own validity), `match_method`, `match_score`, `resolution`
    (null unless engine.resolve ran), declared income defaulted to 0."""
    frame = _lazy(roll)
    names = list(frame.collect_schema().names())
    defaults = {
        "relation": pl.lit(None, pl.String),
        "declared_income_monthly": pl.lit(0.0),
        "id_number_raw": pl.col("id_number"),
        "id_method": pl.lit("exact"),
        "_row": pl.int_range(2, pl.len() + 2, dtype=pl.Int64),
    }
    frame = frame.with_columns(
        [expr.alias(name) for name, expr in defaults.items() if name not in names]
    )
    if "id_valid" not in names:
        from .ids import valid_expr

        frame = frame.with_columns(valid_expr(pl.col("id_number")).alias("id_valid"))
        names.append("id_valid")
    # A resolution step (engine.resolve) may already have set these.
    after = {"roll_id_valid": pl.col("id_valid"), "resolution": pl.lit(None, RESOLUTION)}
    frame = frame.with_columns([expr.alias(name) for name, expr in after.items() if name not in names])
    method = pl.col("match_method") if "match_method" in names else pl.col("id_method")
    score = pl.col("match_score").cast(pl.Float64) if "match_score" in names else pl.lit(100.0)
    return (
        frame.with_row_index("_order")
        .with_columns(
            pl.col("_order").cast(pl.Int64),
            pl.col("id_number_raw").alias("roll_id_number"),
            method.alias("match_method"),
            score.alias("match_score"),
            pl.col("declared_income_monthly").cast(pl.Float64).fill_null(0.0),
            pl.col("benefit_monthly").cast(pl.Float64),
        )
        .collect()
    )


def _households(rows: nw.LazyFrame) -> nw.LazyFrame:
    """Size (distinct persons), region (the first row's) and head (户主, else the first row)."""
    first = rows.group_by("household_id").agg(
        nw.col("_order").min().alias("first_order"),
        nw.col("id_number").n_unique().alias("household_size"),
    )
    region = rows.select(nw.col("_order").alias("first_order"), nw.col("region_code").alias("household_region"))
    head = (
        rows.filter(nw.col("relation") == HEAD_RELATION)
        .group_by("household_id")
        .agg(nw.col("_order").min().alias("head_order"))
    )
    return (
        first.join(region, on="first_order")
        .join(head, on="household_id", how="left")
        .with_columns(nw.coalesce(nw.col("head_order"), nw.col("first_order")).alias("head_order"))
        .drop("first_order")
    )


_PERSON_COLUMNS = ("program", "household_id", "id_number", "roll_id_number", "name", "region_code",
                   "match_method", "match_score")


def _fold(rule: Rule, hits: pl.DataFrame, rows: pl.DataFrame, households: pl.DataFrame,
          source_label: str, as_of: date) -> pl.DataFrame:
    """One flag per finding: the hits of a finding become its evidence JSON."""
    if rule.annotate is not None:
        hits = rule.annotate(hits)
    key = "_order" if rule.level == "person" else "household_id"
    evidence = list(rule.evidence)
    hits = hits.sort([key, *evidence], nulls_last=True)
    shown = (["records"] if evidence else []) + list(rule.metrics)
    aggregations = [pl.struct(evidence).alias("records")] if evidence else []
    aggregations += [pl.col(m).first() for m in rule.metrics]
    findings = hits.group_by(key, maintain_order=True).agg(aggregations or [pl.len()])
    if rule.roll_metrics:  # person rules: values of the flagged roll row itself
        findings = findings.join(rows.select("_order", *rule.roll_metrics), on="_order", how="left",
                                 maintain_order="left")
        shown += list(rule.roll_metrics)
    findings = findings.with_columns(pl.struct(shown).struct.json_encode().alias("evidence"))
    if rule.level == "person":
        flagged = findings.join(rows.select("_order", *_PERSON_COLUMNS), on="_order")
    else:
        programs = rows.select("household_id", "program").unique()
        if rule.programs is not None:
            programs = programs.filter(pl.col("program").is_in(list(rule.programs)))
        heads = households.join(
            rows.select(pl.col("_order").alias("head_order"), *[c for c in _PERSON_COLUMNS if c not in ("program", "household_id")]),
            on="head_order",
        ).select("household_id", *[c for c in _PERSON_COLUMNS if c not in ("program", "household_id")])
        flagged = findings.join(programs, on="household_id").join(heads, on="household_id")
    overpayment = pl.col("overpayment") if "overpayment" in rule.metrics else pl.lit(None, pl.Float64)
    return flagged.select(
        pl.lit(rule.id).alias("rule_id"),
        pl.lit(rule.severity).alias("severity"),
        pl.lit(rule.cadence).alias("cadence"),
        "program",
        "household_id",
        "id_number",
        "roll_id_number",
        "name",
        "region_code",
        pl.lit(source_label).alias("source"),
        "match_method",
        "match_score",
        "evidence",
        overpayment.cast(pl.Float64).alias("overpayment"),
        pl.lit(as_of).alias("as_of"),
        pl.lit(rule.level).alias("level"),
        pl.lit(rule.label_zh).alias("rule_label_zh"),
        pl.lit(rule.label_en).alias("rule_label_en"),
    ).cast(FLAG_COLUMNS)  # type: ignore[arg-type]


def run(
    roll: pl.LazyFrame | pl.DataFrame,
    sources: dict[str, pl.LazyFrame | pl.DataFrame],
    as_of: date,
    policy: Policy | None = None,
    rules: list[str] | None = None,
    cadences: list[str] | None = None,
    *,
    resolve_ids: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> RunResult:
    """Flags for every selected rule whose sources are present (all rules by default).

    With hukou among the sources (and `resolve_ids`), dirty and wrong roll IDs are resolved
    first. `on_step` is told what is being done, for a progress display."""
    policy = policy or DEFAULT_POLICY
    step = on_step or (lambda _: None)
    resolving = resolve_ids and "hukou" in sources
    if resolving:
        step("核对身份证号 resolving roll IDs against hukou")
        roll = resolve(roll, _lazy(sources["hukou"]), as_of)
    rows = prepare_roll(roll)
    nw_rows = nw.from_native(rows.lazy())
    households = _households(nw_rows).collect()
    context = Context(
        rows=nw_rows,
        households=nw.from_native(households.to_native().lazy()).select(
            "household_id", "household_size", "household_region"
        ),
        sources={key: nw.from_native(_lazy(frame)) for key, frame in sources.items()},
        as_of=as_of,
        policy=policy,
    )
    available = set(sources)
    selected: list[Rule] = []
    skipped: list[tuple[str, str]] = []
    for rule in select_rules(rules, cadences):
        reason = rule.missing_sources(available)
        if reason is None:
            selected.append(rule)
        else:
            skipped.append((rule.id, reason))

    step(f"比对 running {len(selected)} rules")
    plans = [rule.plan(context).to_native() for rule in selected]
    collected = pl.collect_all(plans) if plans else []
    rank = {rule.id: index for index, rule in enumerate(selected)}
    folded = [
        _fold(rule, hits, rows, households.to_native(), ",".join(rule.used_sources(available)) or "roll", as_of)
        for rule, hits in zip(selected, collected, strict=True)
    ]
    flags = pl.concat([empty_flags(), *folded], how="vertical") if folded else empty_flags()
    flags = (
        flags.with_columns(pl.col("rule_id").replace_strict(rank, default=len(rank)).alias("_rank"))
        .sort(["_rank", "household_id", "id_number", "program", "evidence"], nulls_last=True)
        .drop("_rank")
    )
    resolutions = (
        rows.filter(pl.col("resolution").is_not_null()).select(list(RESOLUTION_COLUMNS)).cast(RESOLUTION_COLUMNS)
        if resolving
        else pl.DataFrame(schema=RESOLUTION_COLUMNS)
    )
    return RunResult(flags=flags, as_of=as_of, ran=[r.id for r in selected], skipped=skipped,
                     resolutions=resolutions)
