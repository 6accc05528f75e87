"""Build small inputs for rule tests the way users write them: string cells, through the loader.

    person(7) -> a valid ID, the same for the same number and birth date
    frames(roll_rows, sources) -> (roll frame, {key: frame}) typed by engine.loaders
    planted_city(directory, 300, seed=5) -> a generated city with every rule's cases, run from files
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from engine import ids
from engine.batch import run_files
from engine.loaders import load_frame, load_sources
from engine.policy import Policy, load_policy, parse_policy
from engine.run import RunResult, run
from fixtures.generator import generate
from fixtures.writing import write
from schemas import SOURCES, dataset

AS_OF = date(2026, 6, 30)
POLICY = parse_policy('[[region]]\nprefix = "320302"\ndibao_monthly = 880\n')


def person(number: int, born: str = "19600101", region: str = "320303") -> str:
    """A valid 18-character ID; `number` picks the sequence so different numbers differ."""
    first17 = f"{region}{born}{number % 1000:03d}"
    return first17 + ids.check_char(first17)


def roll_row(household: str, pid: str, program: str = "dibao", **cells: str) -> dict[str, str]:
    row = {
        "program": program,
        "household_id": household,
        "id_number": pid,
        "name": cells.pop("name", "张三"),
        "region_code": cells.pop("region_code", "320303001"),
        "benefit_monthly": cells.pop("benefit_monthly", "800"),
    }
    row.update(cells)
    return row


def _frame(rows: list[dict[str, str]], key: str) -> pl.DataFrame:
    columns: list[str] = [] if rows else list(dataset(key).names)
    for row in rows:
        columns += [c for c in row if c not in columns]
    return pl.DataFrame({c: [row.get(c) for row in rows] for c in columns}, schema={c: pl.String for c in columns})


def frames(
    roll: list[dict[str, str]], sources: dict[str, list[dict[str, str]]] | None = None, as_of: date = AS_OF
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    loaded_roll = load_frame(_frame(roll, "roll"), "roll", "roll.csv", as_of)
    assert not loaded_roll.problems, loaded_roll.problems
    loaded_sources = {}
    for key, rows in (sources or {}).items():
        loaded = load_frame(_frame(rows, key), key, f"{key}.csv", as_of)
        assert not loaded.problems, loaded.problems
        loaded_sources[key] = loaded.frame
    return loaded_roll.frame, loaded_sources


def run_case(
    roll: list[dict[str, str]],
    sources: dict[str, list[dict[str, str]]] | None = None,
    rules: list[str] | None = None,
    policy: Policy = POLICY,
    as_of: date = AS_OF,
) -> RunResult:
    roll_frame, source_frames = frames(roll, sources, as_of)
    return run(roll_frame, source_frames, as_of, policy, rules)


def flagged(result: RunResult, rule_id: str) -> set[str]:
    """Household ids flagged by `rule_id`."""
    return set(result.flags.filter(pl.col("rule_id") == rule_id)["household_id"].to_list())


@dataclass(frozen=True)
class PlantedCity:
    as_of: date
    roll: pl.DataFrame  # loaded
    sources: dict[str, pl.DataFrame]  # loaded
    policy: Policy
    full: RunResult  # the full run over them

    @property
    def households(self) -> list[str]:
        return self.roll["household_id"].unique(maintain_order=True).to_list()


def planted_city(directory: Path, households: int, seed: int) -> PlantedCity:
    """A generated city with every rule's cases planted and dirty IDs and names, written as
    files of mixed formats and run from them (engine.batch.run_files)."""
    generated = generate(households, seed=seed, case_fraction=1.0)
    paths = write(generated, directory, formats="mixed")
    full = run_files(paths["roll"], paths["sources"], generated.as_of, policy=paths["policy"])
    # Whole: a run from files keeps only the roll's people's source rows, and the checks and
    # resolutions compared with it look hukou over for others.
    loaded, _ = load_sources(paths["sources"], generated.as_of)
    sources = {key: item.frame.select(SOURCES[key].names) for key, item in loaded.items()}
    return PlantedCity(generated.as_of, full.loaded["roll"].frame, sources, load_policy(paths["policy"]), full.result)
