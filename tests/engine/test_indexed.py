"""engine.indexed gives engine.run's result over keyed sources, sorted in memory or mapped from
the files engine.keyed writes: the same flags in the same order, the same resolutions; on a
generated city as bureaus deliver it and on one with heavy ID noise and decoys."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine import loaders
from engine.indexed import run_indexed
from engine.keyed import Keyed
from engine.policy import parse_policy
from engine.run import run
from fixtures.generator import generate
from fixtures.noise import NoiseModel, apply
from schemas import SOURCES


def _same(expected, got) -> None:
    assert got.ran == expected.ran
    assert got.skipped == expected.skipped
    assert_frame_equal(got.flags, expected.flags)
    assert_frame_equal(got.resolutions, expected.resolutions)


def _keyed(sources: dict[str, pl.DataFrame]) -> dict[str, Keyed]:
    return {key: Keyed.of(frame, names=key == "hukou") for key, frame in sources.items()}


def _written(sources: dict[str, pl.DataFrame], directory: Path) -> dict[str, Keyed]:
    """Keyed files as store.snapshots writes them (the contract's columns), read back mapped."""
    found = {}
    for key, frame in sources.items():
        path = directory / f"{key}.arrow"
        Keyed.of(frame.select(SOURCES[key].names), names=key == "hukou").write(path)
        found[key] = Keyed.read(path)
    return found


def test_indexed_run_equals_the_run(city: dict, tmp_path: Path) -> None:
    expected = run(city["roll"], city["sources"], city["as_of"], city["policy"])
    assert expected.resolutions.height > 0 and expected.flags.height > 30
    for sources in (_keyed(city["sources"]), _written(city["sources"], tmp_path)):
        _same(expected, run_indexed(city["roll"], sources, city["as_of"], city["policy"]))
    _same(expected, run_indexed(city["roll"].lazy(), _keyed(city["sources"]), city["as_of"], city["policy"]))


@pytest.mark.parametrize(
    ("rules", "cadences"),
    [(None, ["quarterly"]), (["duplicate_enrollment", "vehicle_owned", "income_over_standard"], None)],
)
def test_a_selection_of_rules(city: dict, rules, cadences) -> None:
    args = (city["roll"], city["sources"], city["as_of"], city["policy"], rules, cadences)
    _same(run(*args), run_indexed(args[0], _keyed(args[1]), *args[2:]))


def test_without_hukou_or_without_resolution(city: dict) -> None:
    no_hukou = {k: v for k, v in city["sources"].items() if k != "hukou"}
    _same(run(city["roll"], no_hukou, city["as_of"], city["policy"]),
          run_indexed(city["roll"], _keyed(no_hukou), city["as_of"], city["policy"]))
    _same(run(city["roll"], city["sources"], city["as_of"], city["policy"], resolve_ids=False),
          run_indexed(city["roll"], _keyed(city["sources"]), city["as_of"], city["policy"], resolve_ids=False))


_HEAVY = NoiseModel(typo=0.03, transposition=0.02, excel_sci=0.005, excel_000=0.01, legacy15=0.02,
                    spelling=0.02, homophone_name=0.03, missing_from_hukou=0.02, namesake_decoy=1.0,
                    twin_decoy=1.0, twin_hit=1.0)


def test_noisy_city(tmp_path: Path) -> None:
    generated = generate(1500, seed=5)
    city = apply(generated, _HEAVY, seed=5)
    as_of: date = city.as_of
    roll = loaders.load_frame(city.roll, "roll", "roll", as_of).frame
    sources = {k: loaders.load_frame(df, k, k, as_of).frame for k, df in city.sources.items()}
    policy = parse_policy(generated.policy_toml)
    expected = run(roll, sources, as_of, policy)
    assert expected.resolutions["resolution"].struct.field("status").eq("resolved").sum() > 20
    _same(expected, run_indexed(roll, _written(sources, tmp_path), as_of, policy))
