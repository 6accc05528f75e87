"""The engine at province scale: narrow every source to the roll's people in streaming passes,
then run the rules (per partition of households, if asked).

    run_partitioned(roll, sources, as_of, policy, rules, cadences, *, parts=1) -> RunResult

Why. engine.run.run on lazy scans of snapshots materializes every projected source column it
joins (polars' in-memory engine builds its tables from whole columns), so its memory grows with
the sources: 6.2 GiB for a generated province (100M hukou rows, 277M source rows; see
benchmarks/HISTORY.md, where both paths take ~46 s). Yet a flag can only ever come from the
rows of the roll's own people, and from the hukou rows the resolver may offer as candidates: a
few percent of the data.
So the sources are narrowed first, by streaming filters (bounded memory, one pass over each
file; two over hukou), and the engine then runs on small in-memory frames. The result is the
unpartitioned run's, flag for flag (tests/engine/test_partition.py).

1. The roll is collected; `_row` is numbered over the whole roll when absent (as
   engine.run.prepare_roll would: a partition must not renumber it).
2. With hukou and `resolve_ids`, hukou is narrowed in two streaming passes (`narrow_hukou`):
   pass A, on the ID column, the rows of the roll's valid IDs (which tell who engine.resolve
   looks for: invalid IDs, valid IDs hukou lacks, valid IDs registered under another name) and
   the IDs one keying error from an invalid roll ID (`keying.neighbours`); pass B every other row
   that a block of engine.resolve can reach from those people: an ID one keying error away,
   the same first 14 characters, the same name key in the same township (by a hash of both),
   or a name written with spaces or dots whose key is one of those in one of those townships.
   IDs are tested by a hash of the whole text (a collision only keeps a row too many).
   engine.resolve finds candidates only through these blocks, so resolving the roll against
   the narrowed hukou gives the same resolution as against all of it (not an approximation; if
   a block is added to engine.resolve, it must be added here, and the test fails until it is).
3. The roll is resolved once, whole (it is small: 3M rows at province). Meanwhile, on polars'
   threads, every other source is narrowed by a filter on the IDs of the roll and of the
   narrowed hukou: a roll row keeps its ID or is resolved to a hukou candidate, so these are
   all the IDs the resolved roll can hold (rules join sources on `id_number` only, and only
   for roll people; a row of someone else is never joined).
4. With `parts` = 1, every rule runs once on the whole roll and the narrowed frames.
5. With `parts` > 1, rules that read no source (id_invalid, duplicate_enrollment,
   program_conflict, elderly_underage, disability_living_without_dibao) run once over the
   whole roll: three of them look across households (the same person in two households).
   Every rule that reads a source is per person or per household (engine.patterns), so it runs
   per partition of households (by a hash of household_id), on that partition's roll rows and
   on the sources' rows of its members only. A person in two households of different
   partitions has their source rows in both.
6. The flags are concatenated and sorted in the engine's order (rule, household, ID, program,
   evidence); `resolutions` come from the whole resolved roll, as run() makes them.

Memory: the streaming passes hold the roll's key sets (~3M IDs at province) and one batch of
each file; the runs hold the narrowed frames. `parts` > 1 bounds the rules' working set further
when the narrowed frames are large (they are a few percent of the sources).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import polars as pl

from . import ids, keying, names
from .policy import Policy
from .hukou_lookup import SPELLED_NAME
from .resolve import reading, resolve
from .rules import Rule, select_rules
from .run import FLAG_COLUMNS, RESOLUTION_COLUMNS, RunResult, empty_flags, prepare_roll, run

__all__ = ["run_partitioned", "narrow_hukou", "narrow", "roll_wide", "partition_of", "ENGINE"]

ENGINE = "streaming"  # polars' engine for the narrowing passes: bounded memory over big files
_HASH_SEED = 7


def _lazy(frame: Any) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def roll_wide(rule: Rule) -> bool:
    """True for rules that read only the roll: run once over all of it (some of them compare
    households with each other)."""
    return not rule.sources and not rule.optional_sources


def partition_of(household_id: pl.Expr, parts: int) -> pl.Expr:
    """The partition (0 .. parts-1) of each household."""
    return (household_id.hash(seed=_HASH_SEED) % parts).cast(pl.Int64)


def _town(region_code: pl.Expr) -> pl.Expr:
    return region_code.str.slice(0, 9)


def _name_town_hash(name: pl.Expr, region_code: pl.Expr) -> pl.Expr:
    """A hash of (name, township): equal pairs, equal hashes (a collision keeps a row too many).
    Two string hashes combined: cheaper than hashing a struct of the two."""
    return name.hash(seed=_HASH_SEED) ^ _town(region_code).hash(seed=_HASH_SEED + 1)


def _hashed(id_number: pl.Expr, wanted: pl.Series) -> pl.Expr:
    """True where the ID's hash is one of `wanted`'s (a hash collision keeps a row too many,
    never one too few): cheaper than comparing the text, or than parsing the first 17 digits
    as an int64 key, which the scan would have to do on every row."""
    return id_number.hash(seed=_HASH_SEED).is_in(wanted.unique().hash(seed=_HASH_SEED).implode())


def _born(id_number: pl.Expr, prefixes: set[str]) -> pl.Expr:
    """True where the ID starts with one of the 14-character `prefixes` (region and birth date)."""
    return id_number.str.slice(0, 14).is_in(pl.Series(sorted(prefixes), dtype=pl.String).implode())


def _blocks(rows: pl.DataFrame, as_of: date | None) -> tuple[set[str], set[str]]:
    """The `edit` and `born` keys engine.resolve._pairs derives for these sought rows: the valid
    IDs one keying error from an invalid or 15-character spelling; the first 14 characters."""
    edit: set[str] = set()
    born: set[str] = set()
    for id_number, raw_id, is_valid in rows.select("id_number", "_raw", "_valid").iter_rows():
        spelling = reading(raw_id)
        if not is_valid or len(spelling.text) == 15:
            edit |= keying.neighbours(spelling.text, as_of)
        key = id_number[:14] if is_valid and id_number else spelling.born14(as_of)
        if key:
            born.add(key)
    return edit, born


def narrow_hukou(roll: pl.DataFrame, hukou: pl.LazyFrame | pl.DataFrame, as_of: date | None) -> pl.DataFrame:
    """The hukou rows engine.resolve and the rules can touch for `roll` (see the module
    docstring, step 2), in hukou's order, every column. `roll` needs id_number, name,
    region_code; id_number_raw and id_valid are derived as engine.resolve derives them when
    absent. Exact for hukou as engine.loaders keeps it (every ID valid); on other text a row
    too many may be kept, never one too few."""
    hukou = _lazy(hukou).with_row_index("_hukou_row")
    raw = pl.col("id_number_raw") if "id_number_raw" in roll.columns else pl.col("id_number")
    valid = pl.col("id_valid") if "id_valid" in roll.columns else ids.valid_expr(pl.col("id_number"), as_of)
    people = roll.select("id_number", raw.alias("_raw"), valid.alias("_valid"), "name", "region_code")
    valid_ids = people.filter(pl.col("_valid"))["id_number"].unique()
    id_number = pl.col("id_number")

    # Pass A, on the ID column: the rows of the roll's valid IDs (the rules need them, and they
    # tell who is absent or named otherwise) and the edit block of the invalid IDs (whole IDs,
    # by their hash: cheaper than parsing a key; a collision only keeps a row too many). Their
    # born blocks (an ID prefix) go with pass B's.
    edit, born = _blocks(people.filter(~pl.col("_valid")).unique(), as_of)
    by_id = hukou.filter(_hashed(id_number, pl.concat([valid_ids, pl.Series(sorted(edit), dtype=pl.String)])))
    by_id = by_id.collect(engine=ENGINE)

    # Who else engine.resolve looks for: valid IDs hukou lacks or names otherwise (name keys
    # compared, as name_mismatch compares them); their edit and born blocks; everyone's names.
    found = by_id.select("id_number", pl.col("name").alias("_hukou_name")).join(
        valid_ids.to_frame(), on="id_number", how="semi")
    differs = names.key_expr(pl.col("_hukou_name")) != names.key_expr(pl.col("name"))
    sought = (
        people.join(found, on="id_number", how="left")
        .filter(~pl.col("_valid") | pl.col("_hukou_name").is_null() | differs)
        .select(people.columns)
        .unique()
    )
    valid_edit, valid_born = _blocks(sought.filter(pl.col("_valid")), as_of)
    named = sought.select(_name_town_hash(names.key_expr(pl.col("name")), pl.col("region_code")).alias("h"))["h"]

    # Pass B, on the ID, name and region columns: those blocks, the (name, township) pairs by
    # their hash, and loosely every name written with spaces or dots (its key, which is what
    # engine.resolve compares, is only worth computing on the few rows that pass).
    region = pl.col("region_code")
    near = _hashed(id_number, pl.Series(sorted(valid_edit), dtype=pl.String)) | _born(id_number, valid_born | born)
    named_here = _name_town_hash(pl.col("name"), region).is_in(named.implode())
    spelled = pl.col("name").str.contains(SPELLED_NAME)
    by_block = hukou.filter(near | named_here | spelled).collect(engine=ENGINE)
    by_block = by_block.filter(
        near | named_here | (spelled & _name_town_hash(names.key_expr(pl.col("name")), region).is_in(named.implode()))
    )
    return (
        pl.concat([by_id, by_block])
        .unique("_hukou_row", keep="first")
        .sort("_hukou_row")
        .drop("_hukou_row")
    )


def narrow(sources: dict[str, Any], people: pl.Series) -> dict[str, pl.DataFrame]:
    """Each source's rows whose id_number may be one of `people`, collected in one streaming
    pass: a row too many at worst (a hash collision, see `_hashed`), never one too few."""
    # A filter, not a semi-join: the scan tests the ID column first and decodes the other
    # columns only for the rows kept (a semi-join decodes every column of every row; 2x slower).
    wanted = _hashed(pl.col("id_number"), people)
    plans = [_lazy(frame).filter(wanted) for frame in sources.values()]
    return dict(zip(sources, pl.collect_all(plans, engine=ENGINE), strict=True))


def run_partitioned(
    roll: pl.LazyFrame | pl.DataFrame,
    sources: dict[str, pl.LazyFrame | pl.DataFrame],
    as_of: date,
    policy: Policy | None = None,
    rules: list[str] | None = None,
    cadences: list[str] | None = None,
    *,
    parts: int = 1,
    resolve_ids: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> RunResult:
    """engine.run.run's result, computed on narrowed sources and per partition of households
    (see the module docstring). `parts` >= 1."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    step = on_step or (lambda _: None)
    available = set(sources)
    selected = select_rules(rules, cadences)
    ran = [r for r in selected if r.missing_sources(available) is None]
    skipped = [(r.id, r.missing_sources(available)) for r in selected if r.missing_sources(available) is not None]

    frame = _lazy(roll).collect()
    if "_row" not in frame.columns:  # numbered over the whole roll, as prepare_roll would
        frame = frame.with_columns(pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias("_row"))
    resolving = resolve_ids and "hukou" in sources
    if resolving:
        step("缩小户籍范围 narrowing hukou to the roll's people and their candidates")
        hukou = narrow_hukou(frame, sources["hukou"], as_of)
        # A roll row keeps its ID or is resolved to a candidate, and every candidate is a row of
        # the narrowed hukou: so the other sources can be narrowed to those IDs now, on polars'
        # threads, while engine.resolve (much of it Python) resolves the roll.
        wanted = pl.concat([frame["id_number"], hukou["id_number"]]).drop_nulls()
        others = {key: value for key, value in sources.items() if key != "hukou"}
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(narrow, others, wanted)
            step("核对身份证号 resolving roll IDs against hukou")
            frame = resolve(frame, hukou, as_of)
            step("缩小数据源范围 narrowing sources to the roll's people (the rest of it, beside resolving)")
            narrowed = {**pending.result(), "hukou": hukou}
    else:
        step("缩小数据源范围 narrowing sources to the roll's people")
        narrowed = narrow(sources, frame["id_number"].drop_nulls())

    step(f"比对 running {len(ran)} rules")
    found: list[pl.DataFrame] = []
    whole = [r.id for r in ran if roll_wide(r)]
    per_part = [r.id for r in ran if not roll_wide(r)]
    if parts == 1 and ran:  # one run of every rule over the whole roll: the fixed costs once
        found.append(run(frame, narrowed, as_of, policy, rules=[r.id for r in ran], resolve_ids=False).flags)
        whole = per_part = []
    if whole:
        found.append(run(frame, {}, as_of, policy, rules=whole, resolve_ids=False).flags)
    if per_part:
        part_of = frame.select(partition_of(pl.col("household_id"), parts)).to_series() if parts > 1 else None
        for part in range(parts):
            rows = frame if part_of is None else frame.filter(part_of == part)
            if rows.is_empty():
                continue
            own = narrowed if part_of is None else narrow(narrowed, rows["id_number"].drop_nulls())
            found.append(run(rows, own, as_of, policy, rules=per_part, resolve_ids=False).flags)

    rank = {rule.id: index for index, rule in enumerate(ran)}
    flags = (
        pl.concat([empty_flags(), *found], how="vertical")
        .with_columns(pl.col("rule_id").replace_strict(rank, default=len(rank)).alias("_rank"))
        # Stable: flags that tie on the whole key (a person listed twice in one program of one
        # household) are of one household, hence of one run, which put them in roll order.
        .sort(["_rank", "household_id", "id_number", "program", "evidence"], nulls_last=True, maintain_order=True)
        .drop("_rank")
        .select(list(FLAG_COLUMNS))
    )
    resolutions = pl.DataFrame(schema=RESOLUTION_COLUMNS)
    if resolving:
        looked_for = prepare_roll(frame.filter(pl.col("resolution").is_not_null()))
        resolutions = looked_for.select(list(RESOLUTION_COLUMNS)).cast(RESOLUTION_COLUMNS)
    return RunResult(flags=flags, as_of=as_of, ran=[r.id for r in ran], skipped=skipped,  # type: ignore[arg-type]
                     resolutions=resolutions)
