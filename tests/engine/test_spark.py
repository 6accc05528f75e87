"""engine.spark: the catalogue on PySpark gives engine.run's result, flag for flag, and resolves
IDs against a hukou on Spark exactly as against a polars one.

Needs PySpark (`pip install -e '.[spark]'`) and Java 17 or later; skipped without them. `.ci/run`
installs both and runs this file on its own.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine import loaders
from engine.resolve import resolve
from engine.run import run
from fixtures.generator import generate
from fixtures.noise import NoiseModel, apply

pyspark_sql = pytest.importorskip("pyspark.sql", reason="PySpark is not installed: pip install -e '.[spark]'")
if shutil.which("java") is None:
    pytest.skip("Java is not installed: PySpark needs Java 17 or later", allow_module_level=True)

from engine.spark import SparkLookup, run_spark, to_spark  # noqa: E402

# PySpark 4.3 warns that it does not yet support pandas 3 fully: nothing here goes through pandas.
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")


@pytest.fixture(scope="module")
def session():
    spark = (pyspark_sql.SparkSession.builder.master("local[2]").appName("crosscheck-tests")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()


def _same(expected, got) -> None:
    assert got.ran == expected.ran
    assert got.skipped == expected.skipped
    assert_frame_equal(got.flags, expected.flags)  # the same flags in the same order
    assert_frame_equal(got.resolutions, expected.resolutions)


def test_every_rule_on_spark_gives_the_polars_flags(city: dict, session, tmp_path: Path) -> None:
    """The sources as a bureau's Spark reads them: Parquet files as the store's snapshots are written."""
    expected = run(city["roll"], city["sources"], city["as_of"], city["policy"])
    on_spark = {}
    for key, frame in city["sources"].items():
        frame.write_parquet(tmp_path / f"{key}.parquet")
        on_spark[key] = session.read.parquet(str(tmp_path / f"{key}.parquet"))
    got = run_spark(city["roll"], on_spark, city["as_of"], city["policy"], session=session)
    _same(expected, got)
    assert len(got.ran) == 19 and expected.resolutions.height > 0
    # The city's hukou spells some names with an ideographic space (曾　萍): Java's \s alone
    # would keep it, and name_mismatch would flag them on Spark only.
    assert city["sources"]["hukou"]["name"].str.contains("\u3000").any()


def test_a_selection_of_rules_without_resolution(city: dict, session) -> None:
    """Polars sources are handed to Spark; the selected rules only, the roll's IDs as given."""
    args = (city["roll"], city["sources"], city["as_of"], city["policy"], ["deceased", "assets_over_limit"])
    _same(run(*args, cadences=["annual", "monthly"], resolve_ids=False),
          run_spark(*args, cadences=["annual", "monthly"], session=session, resolve_ids=False))


_HEAVY = NoiseModel(typo=0.03, transposition=0.02, excel_sci=0.005, excel_000=0.01, legacy15=0.02,
                    spelling=0.02, homophone_name=0.03, missing_from_hukou=0.02, namesake_decoy=1.0,
                    twin_decoy=1.0, twin_hit=1.0)


def test_ids_resolve_against_hukou_on_spark_as_against_polars(session) -> None:
    generated = generate(600, seed=5)
    noisy = apply(generated, _HEAVY, seed=5)
    as_of: date = noisy.as_of
    roll = loaders.load_frame(noisy.roll, "roll", "roll", as_of).frame
    hukou = loaders.load_frame(noisy.sources["hukou"], "hukou", "hukou", as_of).frame
    expected = resolve(roll, hukou, as_of)
    assert expected["resolution"].struct.field("status").eq("resolved").sum() > 20  # plenty resolved
    assert_frame_equal(resolve(roll, SparkLookup(to_spark(hukou, session), session), as_of), expected)


def test_to_spark_widens_what_spark_cannot_take(session) -> None:
    frame = pl.DataFrame({"count": pl.Series([1, 2], dtype=pl.UInt32),
                          "kind": pl.Series(["car", "truck"], dtype=pl.Enum(["car", "truck"])),
                          "nested": [{"a": 1}, {"a": 2}], "day": [date(2026, 1, 31), None]})
    got = pl.from_arrow(to_spark(frame, session).toArrow())
    assert got.schema == pl.Schema({"count": pl.Int64, "kind": pl.String, "day": pl.Date})
    assert got.to_dicts() == [{"count": 1, "kind": "car", "day": date(2026, 1, 31)},
                              {"count": 2, "kind": "truck", "day": None}]
