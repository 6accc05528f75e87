"""Run the selected rules over a roll and its sources: frames in, a flags frame out.

    run(roll, sources, as_of, policy, rules, cadences) -> RunResult

0. when hukou is given, resolve dirty and wrong roll IDs against it (engine.resolve): every
   rule then sees the resolved ID, and the flags say how it was found (`match_method`);
1. prepare the roll once (row order, household size, region and head);
2. compile each selected rule's plan against the Context (rules whose sources are absent are
   skipped, with the reason);
3. collect every plan in one go, so polars shares the common scans and joins;
4. fold the hits of all rules in one pass (`fold`: a few operations in all, not a dozen per
   rule, which on a small roll cost more than the rules themselves) into one flag row per
   finding with its evidence as JSON, in the contract's column order, sorted deterministically.

The steps are public so that engine.check can compile them once and feed them one household.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import narwhals as nw
import polars as pl

from .context import HEAD_RELATION, Context, SharedContext
from .ids import PERSON, code_expr
from .policy import DEFAULT_POLICY, Policy
from .resolve import RESOLUTION, resolve
from .rules import Rule, select_rules

__all__ = [
    "RunResult",
    "run",
    "prepare_roll",
    "prepared",
    "annotated",
    "households_of",
    "select_ready",
    "context_of",
    "fold",
    "resolutions_of",
    "FLAG_COLUMNS",
    "RESOLUTION_COLUMNS",
    "empty_flags",
]

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


_NO_FLAGS = pl.DataFrame(schema=FLAG_COLUMNS)


def empty_flags() -> pl.DataFrame:
    return _NO_FLAGS.clear()


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
    return prepared(_lazy(roll)).collect()


def prepared(frame: pl.LazyFrame) -> pl.LazyFrame:
    """prepare_roll, as a plan."""
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
    )


def households_of(rows: nw.LazyFrame) -> nw.LazyFrame:
    """Size (distinct persons), head (户主, else the first row) and region (the head's row's: a
    household rule's flag names the head, and the standard it applied is the head's region's,
    whatever order the rows came in)."""
    first = rows.group_by("household_id").agg(
        nw.col("_order").min().alias("first_order"),
        nw.col("id_number").n_unique().alias("household_size"),
    )
    region = rows.select(nw.col("_order").alias("head_order"), nw.col("region_code").alias("household_region"))
    head = (
        rows.filter(nw.col("relation") == HEAD_RELATION)
        .group_by("household_id")
        .agg(nw.col("_order").min().alias("head_order"))
    )
    return (
        first.join(head, on="household_id", how="left")
        .with_columns(nw.coalesce(nw.col("head_order"), nw.col("first_order")).alias("head_order"))
        .drop("first_order")
        .join(region, on="head_order")
        .select("household_id", "household_size", "household_region", "head_order")
    )


_PERSON_COLUMNS = ("program", "household_id", "id_number", "roll_id_number", "name", "region_code",
                   "match_method", "match_score")
_HEAD_COLUMNS = [c for c in _PERSON_COLUMNS if c not in ("program", "household_id")]


def select_ready(rules: list[str] | None, cadences: list[str] | None,
                 available: set[str]) -> tuple[list[Rule], list[tuple[str, str]]]:
    """The selected rules whose sources are present, and (rule_id, reason) of the others."""
    selected: list[Rule] = []
    skipped: list[tuple[str, str]] = []
    for rule in select_rules(rules, cadences):
        reason = rule.missing_sources(available)
        if reason is None:
            selected.append(rule)
        else:
            skipped.append((rule.id, reason))
    return selected, skipped


def _body(columns: list[str]) -> pl.Expr:
    """A struct's JSON without its braces (`"a":1,"b":2`), to splice into a larger object."""
    return pl.struct(columns).struct.json_encode().str.slice(1).str.head(-1)


def _per_rank(ranked: dict[int, Any], otherwise: Any = None) -> pl.Expr:
    """One expression choosing, by `_rank`, the value declared for that rule."""
    expr = otherwise if isinstance(otherwise, pl.Expr) else pl.lit(otherwise)
    for rank, value in ranked.items():
        expr = pl.when(pl.col("_rank") == rank).then(value).otherwise(expr)
    return expr


def _hits(rank: int | None, rule: Rule, hits: pl.LazyFrame) -> pl.LazyFrame:
    """A rule's hits in the shape all rules share: its rank (None: no `_rank` column), the
    finding's key, each record's evidence JSON and the finding's metrics JSON, in evidence order
    (how the records are listed)."""
    key = "_order" if rule.level == "person" else "household_id"
    evidence = list(rule.evidence)
    return hits.sort([key, *evidence], nulls_last=True).select(
        *([pl.lit(rank, pl.Int32).alias("_rank")] if rank is not None else []),
        pl.col(key).cast(pl.Int64 if key == "_order" else pl.String),
        (pl.struct(evidence).struct.json_encode() if evidence else pl.lit(None, pl.String)).alias("_record"),
        (_body(list(rule.metrics)) if rule.metrics else pl.lit(None, pl.String)).alias("_metrics"),
        (pl.col("overpayment") if "overpayment" in rule.metrics else pl.lit(None)).cast(pl.Float64)
        .alias("overpayment"),
    )


def _findings(ranked: list[tuple[int, Rule, pl.LazyFrame]], key: str) -> pl.LazyFrame:
    """One row per finding (rule, key): its records joined in order, the metrics of its first hit."""
    return pl.concat([_hits(rank, rule, hits) for rank, rule, hits in ranked]).group_by(
        "_rank", key, maintain_order=True
    ).agg(pl.col("_record").str.join(",").alias("_records"), pl.col("_metrics").first(),
          pl.col("overpayment").first())


def annotated(rule: Rule, hits: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """The collected hits with the rule's native post-step applied, as `fold` takes them."""
    return hits if rule.annotate is None else rule.annotate(hits, as_of)


def fold(selected: list[Rule], hits: list[pl.LazyFrame], rows: pl.LazyFrame, households: pl.LazyFrame,
         available: set[str], as_of: date) -> pl.LazyFrame:
    """Every rule's hits (`annotated`) folded into flag rows, in one pass over all rules: one flag
    per finding, its evidence JSON = the records (evidence columns), the metrics and the flagged
    roll row's `roll_metrics`; person rules name the flagged row, household rules the head, once
    per program the household has (among the rule's). Sorted by catalogue order, household, ID,
    program (evidence, then roll order, settle the rest)."""
    if not selected:
        return empty_flags().lazy()
    ranked = list(zip(range(len(selected)), selected, hits, strict=True))
    # A flag names a program of the rule's: the flagged row's (person rules), or each of the
    # household's (household rules). engine.check relies on it to skip rules.
    programs_of = {rank: pl.col("program").is_in(list(rule.programs))
                   for rank, rule, _ in ranked if rule.programs is not None}
    in_programs = _per_rank(programs_of, True)
    columns = ["_rank", "_order", "_records", "_metrics", "_roll_metrics", "overpayment", *_PERSON_COLUMNS]
    parts = []
    person = [(rank, rule, h) for rank, rule, h in ranked if rule.level == "person"]
    if person:
        shown = {rank: rule.roll_metrics for rank, rule, _ in person if rule.roll_metrics}
        extra = sorted({c for shown_columns in shown.values() for c in shown_columns})
        found = _findings(person, "_order").join(rows.select("_order", *_PERSON_COLUMNS, *extra), on="_order")
        if any(rank in programs_of for rank, _, _ in person):  # else every row is in: no filter to run
            found = found.filter(in_programs)
        # One projection, not a with_columns then a select: over a few rows (engine.check) a node
        # costs its fixed overhead.
        roll_metrics = _per_rank({rank: _body(list(c)) for rank, c in shown.items()}).cast(pl.String)
        parts.append(found.select(*[roll_metrics.alias(c) if c == "_roll_metrics" else c for c in columns]))
    household = [(rank, rule, h) for rank, rule, h in ranked if rule.level == "household"]
    if household:
        found = _findings(household, "household_id").cache()  # read three times: computed once
        # Heads and programs of the flagged households only: over the whole roll they cost ~30 ms.
        flagged_households = found.select("household_id")
        heads = (households.join(flagged_households, on="household_id", how="semi")
                 .join(rows.select(pl.col("_order").alias("head_order"), *_HEAD_COLUMNS), on="head_order")
                 .select("household_id", *_HEAD_COLUMNS))
        programs = rows.select("household_id", "program").join(flagged_households, on="household_id",
                                                               how="semi").unique()
        nulls = {"_order": pl.lit(None, pl.Int64), "_roll_metrics": pl.lit(None, pl.String)}
        parts.append(
            found
            .join(programs, on="household_id")
            .filter(in_programs)
            .join(heads, on="household_id")
            .select(*[nulls[c].alias(c) if c in nulls else c for c in columns])
        )
    flagged = parts[0] if len(parts) == 1 else pl.concat(parts)

    def declared(value: Callable[[Rule], str]) -> pl.Expr:
        return pl.col("_rank").replace_strict(list(range(len(selected))), [value(r) for r in selected],
                                              return_dtype=pl.String)

    with_records = [rank for rank, rule, _ in ranked if rule.evidence]
    records = pl.when(pl.col("_rank").is_in(with_records)).then(
        pl.concat_str(pl.lit('"records":['), pl.col("_records"), pl.lit("]"))
    )
    evidence = pl.concat_str(
        pl.lit("{"),
        pl.concat_str(records, pl.col("_metrics"), pl.col("_roll_metrics"), separator=",", ignore_nulls=True),
        pl.lit("}"),
    )
    made = {
        "rule_id": declared(lambda r: r.id),
        "severity": declared(lambda r: r.severity),
        "cadence": declared(lambda r: r.cadence),
        "source": declared(lambda r: ",".join(r.used_sources(available)) or "roll"),
        "evidence": evidence,
        "as_of": pl.lit(as_of),
        "level": declared(lambda r: r.level),
        "rule_label_zh": declared(lambda r: r.label_zh),
        "rule_label_en": declared(lambda r: r.label_en),
    }
    return (
        # Each column cast as it is made: one projection (over a few rows a node costs its overhead).
        flagged.select(*[made.get(name, pl.col(name)).cast(dtype).alias(name) for name, dtype in FLAG_COLUMNS.items()],
                       "_rank", "_order")
        # The roll's row order settles a person listed twice in one program of one household.
        .sort(["_rank", "household_id", "id_number", "program", "evidence", "_order"], nulls_last=True)
        .drop("_rank", "_order")
    )


def resolutions_of(rows: pl.DataFrame) -> pl.DataFrame:
    """The roll rows that were looked for in hukou (RESOLUTION_COLUMNS)."""
    return rows.filter(pl.col("resolution").is_not_null()).select(list(RESOLUTION_COLUMNS)).cast(RESOLUTION_COLUMNS)


def context_of(rows: pl.LazyFrame, households: pl.LazyFrame, sources: dict[str, pl.LazyFrame], as_of: date,
               policy: Policy, context: type[Context] = Context, key: str = "id_number") -> Context:
    """The Context the rules are compiled against (`households` as households_of gives it)."""
    return context(
        rows=nw.from_native(rows),
        households=nw.from_native(households).select("household_id", "household_size", "household_region"),
        sources={name: nw.from_native(frame) for name, frame in sources.items()},
        as_of=as_of,
        policy=policy,
        key=key,
    )


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
    coded: bool = False,
) -> RunResult:
    """Flags for every selected rule whose sources are present (all rules by default).

    With hukou among the sources (and `resolve_ids`), dirty and wrong roll IDs are resolved
    first. `on_step` is told what is being done, for a progress display. `coded`: every source
    carries PERSON, its ID's code (engine.keyed's lookups give it), and the rules join on it."""
    policy = policy or DEFAULT_POLICY
    step = on_step or (lambda _: None)
    resolving = resolve_ids and "hukou" in sources
    if resolving:
        names = roll.columns if isinstance(roll, pl.DataFrame) else roll.collect_schema().names()
        if "roll_id_valid" not in names:  # else resolved already (engine.indexed): resolve keeps it
            step("核对身份证号 resolving roll IDs against hukou")
        roll = resolve(roll, _lazy(sources["hukou"]), as_of)
    rows = prepare_roll(roll)
    if coded:
        rows = rows.with_columns(code_expr(pl.col("id_number")).alias(PERSON))
    households = households_of(nw.from_native(rows.lazy())).to_native().collect()
    # Shared: the rules' common frames (matchable rows, members, ...) computed once, not per rule.
    context = context_of(rows.lazy(), households.lazy(), {k: _lazy(f) for k, f in sources.items()}, as_of, policy,
                         context=SharedContext, key=PERSON if coded else "id_number")
    available = set(sources)
    selected, skipped = select_ready(rules, cadences, available)

    step(f"比对 running {len(selected)} rules")
    plans = [rule.plan(context).to_native() for rule in selected]
    collected = pl.collect_all(plans) if plans else []
    hits = [annotated(rule, found, as_of).lazy() for rule, found in zip(selected, collected, strict=True)]
    flags = fold(selected, hits, rows.lazy(), households.lazy(), available, as_of).collect(engine="in-memory")
    resolutions = resolutions_of(rows) if resolving else pl.DataFrame(schema=RESOLUTION_COLUMNS)
    return RunResult(flags=flags, as_of=as_of, ran=[r.id for r in selected], skipped=skipped,
                     resolutions=resolutions)
