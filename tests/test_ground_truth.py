"""The whole engine against the generator's ground truth, through real files.

3,000 households with every dirty-spelling kind, written the way bureaus deliver them (a GBK CSV
roll with Chinese headers, an XLSX source, Parquet and CSV sources), loaded and run by
engine.batch.run_files: the flags must equal the expected (household_id, rule_id) pairs exactly,
the overpayments must match to the fen, and every wrongly spelled ID must be resolved (or not)
as its case declares.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from engine.batch import run_files
from fixtures.generator import generate
from fixtures.writing import write


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


def _flag_rows(file_run, rule_id: str) -> pl.DataFrame:
    flags = file_run.result.flags.filter(pl.col("rule_id") == rule_id)
    resolution = [json.loads(e)["resolution"] or {} for e in flags["evidence"]]
    return flags.with_columns(
        pl.Series("status", [r.get("status") for r in resolution], dtype=pl.String),
        pl.Series("suggested_id", [r.get("suggested_id") for r in resolution], dtype=pl.String),
    ).select("household_id", "roll_id_number", "id_number", "match_method", "status", "suggested_id").unique()


def test_wrong_ids_are_resolved_as_the_cases_declare(city):
    generated, file_run, _ = city
    invalid = _flag_rows(file_run, "id_invalid").join(
        generated.identities.select("household_id", "roll_id_number", pl.col("id_number").alias("true_id"),
                                    "resolves").unique(),
        on=["household_id", "roll_id_number"],
        how="left",
    )
    expected = set(generated.truth.filter(pl.col("rule_id") == "id_invalid")["household_id"])
    assert set(invalid["household_id"]) == expected and invalid["true_id"].null_count() == 0
    resolved = invalid.filter(pl.col("resolves").is_not_null())
    assert set(resolved["resolves"]) == {"repaired", "fuzzy"}
    assert (resolved["id_number"] == resolved["true_id"]).all()
    assert (resolved["match_method"] == resolved["resolves"]).all()
    assert (resolved["status"] == "resolved").all() and (resolved["suggested_id"] == resolved["true_id"]).all()
    kept = invalid.filter(pl.col("resolves").is_null())
    assert kept.height and (kept["status"] != "resolved").all()
    assert set(kept["match_method"]) <= {"exact", "legacy15"}


def test_an_id_mistyped_into_another_persons_suggests_the_right_one(city):
    generated, file_run, _ = city
    expected = generated.identities.filter(pl.col("suggest").is_not_null())
    found = _flag_rows(file_run, "name_mismatch").join(
        expected.select("household_id", "roll_id_number", "suggest").unique(), on=["household_id", "roll_id_number"]
    )
    assert found.height == expected.select("household_id", "roll_id_number").unique().height > 0
    assert (found["status"] == "suggested").all() and (found["suggested_id"] == found["suggest"]).all()
    assert (found["id_number"] == found["roll_id_number"]).all()  # the ID itself is kept
