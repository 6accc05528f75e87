"""engine.partition gives engine.run's result: the same flags, in the same order, the same
resolutions, whatever the number of partitions — on a generated city as bureaus deliver it, and
on a city with heavy ID noise and decoys for the hukou narrowing that resolution relies on."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine import loaders
from engine.partition import narrow_hukou, partition_of, run_partitioned
from engine.policy import parse_policy
from engine.resolve import resolve
from engine.run import run
from fixtures.generator import generate
from fixtures.noise import NoiseModel, apply


def _same(expected, got) -> None:
    assert got.ran == expected.ran
    assert got.skipped == expected.skipped
    assert_frame_equal(got.flags, expected.flags)  # the same flags in the same order
    assert_frame_equal(got.resolutions, expected.resolutions)


@pytest.fixture(scope="module")
def unpartitioned(city: dict):
    return run(city["roll"], city["sources"], city["as_of"], city["policy"])


@pytest.mark.parametrize("parts", [1, 2, 5])
def test_partitioned_run_equals_the_run(city: dict, unpartitioned, parts: int) -> None:
    got = run_partitioned(city["roll"], city["sources"], city["as_of"], city["policy"], parts=parts)
    _same(unpartitioned, got)
    assert unpartitioned.resolutions.height > 0  # the city has dirty IDs to resolve


def test_from_lazy_scans_of_parquet(city: dict, unpartitioned, tmp_path: Path) -> None:
    """The nightly path: lazy scans of snapshots, narrowed by streaming passes."""
    scans = {}
    for key, frame in city["sources"].items():
        frame.write_parquet(tmp_path / f"{key}.parquet")
        scans[key] = pl.scan_parquet(tmp_path / f"{key}.parquet")
    got = run_partitioned(city["roll"].lazy(), scans, city["as_of"], city["policy"], parts=3)
    _same(unpartitioned, got)


def test_a_person_in_households_of_two_partitions_is_still_found(city: dict, unpartitioned) -> None:
    duplicates = unpartitioned.flags.filter(pl.col("rule_id") == "duplicate_enrollment")
    across = (
        city["roll"].filter(pl.col("id_valid"))
        .group_by("id_number").agg(pl.col("household_id").unique())
        .filter(pl.col("household_id").list.len() > 1)
    )
    assert across.height > 0, "the fixture city has people enrolled in two households"
    # a number of partitions that puts someone's two households apart
    for parts in range(2, 9):
        split = across.with_columns(
            pl.col("household_id").list.eval(partition_of(pl.element(), parts)).list.n_unique().alias("n")
        ).filter(pl.col("n") > 1)
        if split.height:
            break
    assert split.height, "no partition count separates a duplicated person's households"
    got = run_partitioned(city["roll"], city["sources"], city["as_of"], city["policy"], parts=parts)
    found = got.flags.filter(pl.col("rule_id") == "duplicate_enrollment")
    assert set(split["id_number"]) <= set(found["id_number"])
    assert_frame_equal(found.sort(found.columns), duplicates.sort(duplicates.columns))


@pytest.mark.parametrize(
    ("rules", "cadences"),
    [(None, ["quarterly"]), (["duplicate_enrollment", "vehicle_owned", "income_over_standard"], None),
     (["id_invalid"], None), (["assets_over_limit"], None)],
)
def test_a_selection_of_rules(city: dict, rules, cadences) -> None:
    args = (city["roll"], city["sources"], city["as_of"], city["policy"], rules, cadences)
    _same(run(*args), run_partitioned(*args, parts=2))


def test_without_hukou_or_without_resolution(city: dict) -> None:
    no_hukou = {k: v for k, v in city["sources"].items() if k != "hukou"}
    _same(run(city["roll"], no_hukou, city["as_of"], city["policy"]),
          run_partitioned(city["roll"], no_hukou, city["as_of"], city["policy"], parts=2))
    _same(run(city["roll"], city["sources"], city["as_of"], city["policy"], resolve_ids=False),
          run_partitioned(city["roll"], city["sources"], city["as_of"], city["policy"], parts=2, resolve_ids=False))


def test_a_roll_without_row_numbers_keeps_its_own(city: dict) -> None:
    """An in-memory roll without `_row`: numbered over the whole roll, not per partition."""
    roll = city["roll"].drop("_row")
    _same(run(roll, city["sources"], city["as_of"], city["policy"]),
          run_partitioned(roll, city["sources"], city["as_of"], city["policy"], parts=3))


def test_parts_must_be_positive(city: dict) -> None:
    with pytest.raises(ValueError):
        run_partitioned(city["roll"], city["sources"], city["as_of"], parts=0)


# ---- the hukou narrowing under heavy noise ------------------------------------------------------

_HEAVY = NoiseModel(typo=0.03, transposition=0.02, excel_sci=0.005, excel_000=0.01, legacy15=0.02,
                    spelling=0.02, homophone_name=0.03, missing_from_hukou=0.02, namesake_decoy=1.0,
                    twin_decoy=1.0, twin_hit=1.0)


@pytest.fixture(scope="module")
def noisy() -> dict:
    generated = generate(1500, seed=5)
    city = apply(generated, _HEAVY, seed=5)
    as_of: date = city.as_of
    roll = loaders.load_frame(city.roll, "roll", "roll", as_of).frame
    sources = {k: loaders.load_frame(df, k, k, as_of).frame for k, df in city.sources.items()}
    return {"roll": roll, "sources": sources, "as_of": as_of, "policy": parse_policy(generated.policy_toml)}


def test_narrowed_hukou_resolves_exactly_as_all_of_it(noisy: dict) -> None:
    roll, hukou, as_of = noisy["roll"], noisy["sources"]["hukou"], noisy["as_of"]
    narrowed = narrow_hukou(roll, hukou.lazy(), as_of)
    assert narrowed.height < hukou.height / 3
    expected = resolve(roll, hukou, as_of)
    assert expected["resolution"].is_not_null().sum() > 100  # plenty looked for
    assert_frame_equal(resolve(roll, narrowed, as_of), expected)


def test_noisy_city_partitioned(noisy: dict) -> None:
    args = (noisy["roll"], noisy["sources"], noisy["as_of"], noisy["policy"])
    _same(run(*args), run_partitioned(*args, parts=4))
