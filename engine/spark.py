"""The rule catalogue on Spark, for a bureau whose sources outgrow one machine.

    run_spark(roll, sources, as_of, policy, rules, cadences, *, session) -> RunResult

`sources` are PySpark DataFrames of loaded sources (say `spark.read.parquet` of the snapshots
`crosscheck ingest` writes), or polars frames, which are handed to Spark. `roll` is a loaded
roll as a polars frame: a city's 300,000 rows or a province's 3M fit the driver; it is the
sources that do not. The rules' plans are Narwhals over the Context (engine.context), so the
catalogue compiles against PySpark DataFrames unchanged. What is small runs on the driver, in
polars, exactly as engine.run.run runs it:

1. with hukou among the sources, the roll's IDs are resolved (engine.resolve): `SparkLookup`
   asks Spark for the hukou records the resolver's blocks can reach (the holders of the roll's
   IDs; the records by ID, birth and name block), and they are scored on the driver;
2. the prepared roll and its households are handed to Spark through Arrow;
3. each source is narrowed to the roll's people once (a broadcast semi-join, cached: a flag can
   only come from their rows), then each rule's plan runs on Spark over the narrowed sources,
   and its hits (a few rows a finding) come back through Arrow;
4. the rules' native post-steps and the fold into flag rows (engine.run.fold) run in polars.

The flags are engine.run.run's, row for row (tests/engine/test_spark.py). PySpark is optional:
`pip install -e '.[spark]'`; it needs Java 17 or later.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import narwhals as nw
import polars as pl

from .context import Context
from .errors import SelectionError
from .hukou_lookup import SPELLED_NAME
from .names import DOTS, FULL_WIDTH, HALF_WIDTH, SPACE
from .policy import DEFAULT_POLICY, Policy
from .resolve import resolve
from .run import (
    RESOLUTION_COLUMNS,
    RunResult,
    annotated,
    context_of,
    fold,
    households_of,
    prepare_roll,
    resolutions_of,
    select_ready,
)

__all__ = ["run_spark", "SparkLookup", "to_spark", "session"]

# Arrow types Spark refuses: unsigned integers (polars' counts and row numbers are UInt32), Enum and
# Categorical (dictionary arrays). Small integers are widened too (one integer type on both sides);
# structs (the resolution) are left to the driver.
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
_WIDENED = (pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Int8, pl.Int16)


def to_spark(frame: pl.DataFrame | pl.LazyFrame, session: Any) -> Any:
    """A polars frame as a PySpark DataFrame, through Arrow; nested columns are left out (no
    rule reads them: engine.run.fold takes the roll's from the polars rows)."""
    frame = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    casts: dict[str, Any] = {}
    kept = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, (pl.Struct, pl.List, pl.Array)):
            continue
        kept.append(name)
        if dtype in _WIDENED:
            casts[name] = pl.Int64
        elif isinstance(dtype, (pl.Enum, pl.Categorical)):
            casts[name] = pl.String
    return session.createDataFrame(frame.select(kept).cast(casts).to_arrow())


def session() -> Any:
    """The SparkSession a run uses: `SparkSession.builder.getOrCreate()`, so local mode on this
    machine, or the cluster that spark-submit, `spark-defaults.conf` or PYSPARK_SUBMIT_ARGS
    names. SelectionError when PySpark or Java is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise SelectionError("the spark engine needs PySpark: pip install -e '.[spark]' "
                             f"(and Java 17 or later) ({error})") from error
    try:
        spark = SparkSession.builder.appName("crosscheck").getOrCreate()
    except Exception as error:  # PySpark's own errors: no Java, a cluster that cannot be reached
        raise SelectionError(f"Spark could not be started (it needs Java 17 or later): {error}") from error
    context = spark.sparkContext
    if context.master.startswith("local") and not context.getConf().contains(SHUFFLE_PARTITIONS):
        # Spark's 200 shuffle partitions suit a cluster's data; on one machine each task costs more
        # than its rows (the city's rules: ~170 s with 200, ~80 s with 8 on two cores).
        spark.conf.set(SHUFFLE_PARTITIONS, str(4 * context.defaultParallelism))
    return spark


def _collected(plan: nw.LazyFrame) -> pl.DataFrame:
    return plan.collect(backend="polars").to_native()


class SparkLookup:
    """engine.resolve's HukouLookup over a hukou on Spark: the few records its blocks can reach,
    found by semi-joins with the (small) sought keys, collected to the driver. Its records are
    the ones ScanLookup finds over the same hukou."""

    in_memory = True  # its answers are frames at hand: engine.hukou_lookup.collect takes them as they are

    def __init__(self, hukou: Any, session: Any) -> None:
        self.hukou = nw.from_native(hukou)
        self.session = session

    def _keys(self, frame: pl.DataFrame) -> nw.LazyFrame:
        return nw.from_native(to_spark(frame, self.session))

    def holders(self, ids: pl.Series) -> pl.DataFrame:
        wanted = self._keys(ids.unique().to_frame("id_number"))
        return _collected(self.hukou.join(wanted, on="id_number", how="semi").select("id_number", "name"))

    def near(self, edit_ids: pl.Series, born14: pl.Series, named: pl.DataFrame) -> pl.DataFrame:
        records = self.hukou.select("id_number", "name", "region_code")
        town = nw.col("region_code").str.slice(0, 9).alias("town")
        by_id = records.join(self._keys(edit_ids.unique().to_frame("id_number")), on="id_number", how="semi")
        by_birth = (records.with_columns(nw.col("id_number").str.slice(0, 14).alias("born14"))
                    .join(self._keys(born14.unique().to_frame("born14")), on="born14", how="semi")
                    .drop("born14"))
        wanted = self._keys(named.select("name_key", "town").unique())
        # As ScanLookup: by name and township as written, and by key among names written with
        # spaces or dots.
        by_name = (records.with_columns(nw.col("name").alias("name_key"), town)
                   .join(wanted, on=["name_key", "town"], how="semi").select("id_number", "name", "region_code"))
        by_key = (_name_keyed(records.filter(nw.col("name").str.contains(SPELLED_NAME))).with_columns(town)
                  .join(wanted, on=["name_key", "town"], how="semi").select("id_number", "name", "region_code"))
        return _collected(nw.concat([by_id, by_birth, by_name, by_key], how="vertical"))


def _name_keyed(records: nw.LazyFrame) -> nw.LazyFrame:
    """`records` with engine.names.key_expr's `name_key`, in Spark SQL: Narwhals has no
    per-character mapping for the full-width fold, Spark has translate()."""
    from pyspark.sql import functions as F

    halved = F.translate(F.col("name"), FULL_WIDTH, HALF_WIDTH)
    key = F.regexp_replace(F.regexp_replace(halved, SPACE, ""), DOTS, "·")
    return nw.from_native(nw.to_native(records).withColumn("name_key", key))


def _narrowed(sources: dict[str, Any], rows: pl.DataFrame, session: Any) -> dict[str, Any]:
    """Each source's rows of the roll's people, kept in Spark's memory. A flag can only come from
    those rows (the argument of engine.partition, whose tests hold it), so one broadcast
    semi-join per source spares every rule's plan a scan of the whole source (the city's 28M
    rows: 303 s on two cores without it)."""
    from pyspark.sql.functions import broadcast

    people = broadcast(to_spark(rows.select("id_number").drop_nulls().unique(), session))
    return {key: _kept(frame.join(people, on="id_number", how="left_semi")) for key, frame in sources.items()}


def _kept(frame: Any) -> Any:
    """The frame cached, and made now, once: not by whichever rule reads it first."""
    frame = frame.cache()
    frame.count()
    return frame


def run_spark(
    roll: pl.DataFrame | pl.LazyFrame,
    sources: dict[str, Any],
    as_of: date,
    policy: Policy | None = None,
    rules: list[str] | None = None,
    cadences: list[str] | None = None,
    *,
    session: Any,
    resolve_ids: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> RunResult:
    """engine.run.run with the sources on Spark (`session`: a SparkSession). A polars source is
    handed to Spark first."""
    policy = policy or DEFAULT_POLICY
    step = on_step or (lambda _: None)
    on_spark = {key: to_spark(frame, session) if isinstance(frame, (pl.DataFrame, pl.LazyFrame)) else frame
                for key, frame in sources.items()}
    resolving = resolve_ids and "hukou" in on_spark
    if resolving:
        step("核对身份证号 resolving roll IDs against hukou")
        roll = resolve(roll, SparkLookup(on_spark["hukou"], session), as_of)
    rows = prepare_roll(roll)
    households = households_of(nw.from_native(rows.lazy())).to_native().collect()
    available = set(sources)
    selected, skipped = select_ready(rules, cadences, available)
    step("缩小数据源范围 narrowing sources to the roll's people")
    narrowed = _narrowed(on_spark, rows, session)
    # The roll and its households cached too: handed over from the driver, each is a local
    # relation that every plan would otherwise scan again, in one partition.
    roll_rows, roll_households = _kept(to_spark(rows, session)), _kept(to_spark(households, session))
    # engine.run.context_of's Context, its frames on Spark; Context, not SharedContext, whose
    # shared frames are polars' cache nodes.
    context = context_of(roll_rows, roll_households, narrowed, as_of, policy, context=Context)
    step(f"比对 running {len(selected)} rules on Spark")
    try:
        hits = [annotated(rule, _collected(rule.plan(context)), as_of).lazy() for rule in selected]
    finally:
        for frame in [*narrowed.values(), roll_rows, roll_households]:
            frame.unpersist()
    flags = fold(selected, hits, rows.lazy(), households.lazy(), available, as_of).collect()
    resolutions = resolutions_of(rows) if resolving else pl.DataFrame(schema=RESOLUTION_COLUMNS)
    return RunResult(flags=flags, as_of=as_of, ran=[r.id for r in selected], skipped=skipped,
                     resolutions=resolutions)
