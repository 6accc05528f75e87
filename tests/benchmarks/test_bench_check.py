"""benchmarks/bench_check.py: the command end to end, and --screen, the bound a perfect screen
would reach, measured on checks whose flags are those of every rule."""

from __future__ import annotations

import re
import subprocess
import sys

import polars as pl
import pytest

from engine.check import CheckIndex
from tests.engine.casebook import planted_city

from . import SCRIPTS, script


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    c = planted_city(tmp_path_factory.mktemp("town"), 80, seed=7)
    batches = [c.roll.filter(pl.col("household_id").is_in(c.households[at:at + 8])) for at in range(0, 80, 8)]
    return c.as_of, CheckIndex(c.roll, c.sources, c.policy), batches, c.full


def _bench():
    return script("bench_check")


def test_the_bound_times_each_flagged_batch_and_counts_the_rules_that_flag_it(town):
    as_of, index, batches, full = town
    bound = _bench().screen_bound(index, batches, as_of)
    per_batch = [set(full.flags.filter(pl.col("household_id").is_in(batch["household_id"].implode()))["rule_id"])
                 for batch in batches]
    assert bound.batches == len(batches) and bound.selected == len(full.ran)
    assert len(bound.every) == len(bound.only) == sum(1 for rules in per_batch if rules) > 0
    assert sum(bound.flagging.values()) == sum(len(rules) for rules in per_batch)
    assert all(ms > 0 for ms in [*bound.every, *bound.only])
    assert "a perfect screen's bound" in bound.report(8)


def test_a_selection_that_flags_otherwise_is_an_error(town, monkeypatch):
    as_of, index, batches, _ = town
    checked = index.check

    def dropping(frame, as_of, rules=None, **options):
        result = checked(frame, as_of, rules=rules, **options)
        if rules is not None:  # the selection's check loses a flag
            result.flags = result.flags.head(result.flags.height - 1)
        return result

    monkeypatch.setattr(index, "check", dropping)
    with pytest.raises(AssertionError, match="otherwise than every rule"):
        _bench().screen_bound(index, batches, as_of)


def test_the_command_runs_from_a_fresh_install(tmp_path):
    """End to end, as RESULTS.md tells a reader to run it: with the project's own requirements
    only (it once imported psutil, which none of them provides)."""
    completed = subprocess.run([sys.executable, str(SCRIPTS / "bench_check.py"), "--households", "120", "--data",
                                str(tmp_path), "--checks", "5", "--batches", "2", "--batch-size", "3"],
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("check, ")]
    assert [row.split(",")[1].split(" x")[0].strip() for row in rows] == [
        "1 household", "1 household", "batch of 3", "batch of 3"]
    assert re.search(r"resident memory [0-9,]+ MiB with the frames -> [0-9,]+ MiB with the index", completed.stdout)
