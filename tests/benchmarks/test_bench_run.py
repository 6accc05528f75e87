"""benchmarks/bench_run.py: where a run from files spends its time, from its step messages."""

from __future__ import annotations

import pytest

from . import script

bench_run = script("bench_run")


@pytest.mark.parametrize(
    ("description", "steps", "expected"),
    [
        (
            "hukou read, the roll resolved, the other sources read, the rules run",
            [("读取名册 reading roll.parquet", 0.0), ("读取数据源 reading hukou.parquet", 1.0),
             ("核对身份证号 resolving roll IDs against hukou", 4.0), ("读取数据源 reading deaths.parquet", 6.0),
             ("比对 running 19 rules", 9.0)],
            (7.0, 2.0, 1.0),
        ),
        (
            "no hukou: nothing resolved",
            [("读取名册 reading roll.parquet", 0.0), ("读取数据源 reading deaths.parquet", 1.0),
             ("比对 running 3 rules", 3.0)],
            (3.0, 0.0, 7.0),
        ),
        ("no step at all", [], (10.0, 0.0, 0.0)),
    ],
)
def test_phases(description: str, steps: list[tuple[str, float]], expected: tuple[float, float, float]) -> None:
    assert bench_run.phases(steps, 0.0, 10.0) == pytest.approx(expected), description
