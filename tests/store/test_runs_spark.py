"""store.runs with `engine="spark"`: the README's command (`crosscheck runs start --engine spark`)
records the flags a run on polars records over the same snapshots, and switching engines re-runs
nothing. Skipped without PySpark or Java (`.ci/run` installs both and runs this file on its own)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from store.db import Store
from store.models import Flag
from store.runs import list_runs, start_run
from store.settings import Settings

from .conftest import AS_OF, Deliveries, env_for

pytest.importorskip("pyspark.sql", reason="PySpark is not installed: pip install -e '.[spark]'")
if shutil.which("java") is None:
    pytest.skip("Java is not installed: PySpark needs Java 17 or later", allow_module_level=True)

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _recorded(store: Store) -> list[tuple]:
    with store.read() as session:
        return sorted((f.rule_id, f.household_id, f.id_number, f.program, f.evidence, f.overpayment, f.status)
                      for f in session.scalars(sa.select(Flag)))


def test_the_readme_spark_run_records_the_flags_of_a_polars_run(tmp_path, settings, deliver, city, policy_file):
    """"On Spark"'s command as written, as a subprocess (its own Spark), on a store holding a city."""
    deliver.all(city)
    section = README.split("## On Spark", 1)[1]
    [line] = [line for line in re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1).splitlines() if line]
    words = shlex.split(line)
    assert words[:3] == ["crosscheck", "runs", "start"] and "spark" in words
    done = subprocess.run([sys.executable, "-m", "engine", *words[1:]], cwd=tmp_path, env=env_for(settings),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"

    with Store.open(settings) as store:
        assert list_runs(store)["status"].to_list() == ["completed"]
        on_spark = _recorded(store)
        assert {(rule_id, household) for rule_id, household, *_ in on_spark} == \
            set(city.truth.select("rule_id", "household_id").iter_rows())  # the planted ground truth
        # The engine is not an input: polars on the same snapshots has nothing new to apply.
        again = start_run(store, AS_OF)
        assert {r.outcome for r in again.rules} == {"unchanged"}

    with Store.open(Settings(data_dir=tmp_path / "polars", policy=policy_file)) as other:
        Deliveries(other, tmp_path / "polars-deliveries").all(city)
        start_run(other, AS_OF)
        assert _recorded(other) == on_spark
