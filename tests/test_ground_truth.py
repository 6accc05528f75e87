"""The whole engine against the generator's ground truth, through real files.

3,000 households with every dirty-spelling kind, written the way bureaus deliver them (a GBK CSV
roll with Chinese headers, an XLSX source, Parquet and CSV sources), loaded and run by
engine.batch.run_files: the flags must equal the expected (household_id, rule_id) pairs exactly,
and the overpayments must match to the fen.
"""

from __future__ import annotations

import polars as pl
import pytest

from engine.batch import run_files
from fixtures.generator import generate, write


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    generated = generate(3000, seed=7)
    paths = write(generated, tmp_path_factory.mktemp("city"), formats="mixed")
    file_run = run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"])
    return generated, file_run, paths


def _pairs(frame: pl.DataFrame) -> set[tuple[str, str]]:
    return set(frame.select("household_id", "rule_id").iter_rows())


def test_every_input_row_is_usable(city):
    _, file_run, _ = city
    assert file_run.problems == []
    assert file_run.missing_sources == []


def test_flags_equal_the_ground_truth(city):
    generated, file_run, _ = city
    found, expected = _pairs(file_run.result.flags), _pairs(generated.truth)
    assert sorted(expected - found) == [], "expected but not flagged"
    assert sorted(found - expected) == [], "flagged but not expected"


def test_every_rule_is_exercised(city):
    generated, file_run, _ = city
    assert set(generated.truth["rule_id"]) == set(file_run.result.ran)


def test_overpayments_match_to_the_fen(city):
    generated, file_run, _ = city
    key = ["household_id", "id_number", "program"]
    found = (
        file_run.result.flags.filter(pl.col("rule_id") == "deceased")
        .select(*key, (pl.col("overpayment") * 100).round(0).cast(pl.Int64).alias("fen"))
        .sort(key)
    )
    expected = generated.overpayments.select(
        *key, (pl.col("overpayment") * 100).round(0).cast(pl.Int64).alias("fen")
    ).sort(key)
    assert found.to_dicts() == expected.to_dicts()


def test_running_twice_gives_identical_flags(city):
    generated, file_run, paths = city
    again = run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"])
    assert again.result.flags.equals(file_run.result.flags)
