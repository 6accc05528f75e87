"""store.runs with `engine="spark"`: the snapshots' Parquet read by Spark give the flags the
default engine records, and the run is recorded the same way. Skipped without PySpark or Java
(`.ci/run` installs both and runs this file on its own)."""

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
from store.runs import start_run
from store.settings import Settings

from .conftest import AS_OF, Deliveries, env_for

pytest.importorskip("pyspark.sql", reason="PySpark is not installed: pip install -e '.[spark]'")
if shutil.which("java") is None:
    pytest.skip("Java is not installed: PySpark needs Java 17 or later", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _recorded(store: Store) -> list[tuple]:
    with store.read() as session:
        return sorted((f.rule_id, f.household_id, f.id_number, f.program, f.evidence, f.overpayment, f.status)
                      for f in session.scalars(sa.select(Flag)))


def test_a_run_on_spark_records_the_flags_of_a_run_on_polars(store, deliver, city, tmp_path, policy_file):
    deliver.all(city)
    outcome = start_run(store, AS_OF, engine="spark")
    assert outcome.status == "completed" and {r.outcome for r in outcome.rules} == {"ran"}
    found = {(rule_id, household_id) for rule_id, household_id, *_ in _recorded(store)}
    assert found == set(city.truth.select("rule_id", "household_id").iter_rows())  # the planted truth
    # The engine is not an input: polars on the same snapshots has nothing new to apply.
    again = start_run(store, AS_OF)
    assert {r.outcome for r in again.rules} == {"unchanged"}

    with Store.open(Settings(data_dir=tmp_path / "polars", policy=policy_file)) as other:
        Deliveries(other, tmp_path / "polars-deliveries").all(city)
        start_run(other, AS_OF)
        assert _recorded(other) == _recorded(store)


def test_the_readme_spark_command_runs(tmp_path, settings, deliver, city):
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
        assert {(rule_id, household) for rule_id, household, *_ in _recorded(store)} == \
            set(city.truth.select("rule_id", "household_id").iter_rows())
