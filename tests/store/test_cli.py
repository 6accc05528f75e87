"""The store's commands through `crosscheck` (click's runner, and the README's examples as a
subprocess): exit codes, messages, help text."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from engine.cli import main
from store.cli import COMMANDS

from .conftest import AS_OF, env_for

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def cli(settings):
    """Invoke `crosscheck` on the test's store: --data-dir and --database-url as a user gives them."""

    def invoke(*args: object, store_flags: bool = True):
        words = [str(a) for a in args]
        if store_flags:
            words += ["--data-dir", str(settings.data_dir)]
            if settings.database_url:
                words += ["--database-url", settings.database_url]
        return CliRunner().invoke(main, words, env={"CROSSCHECK_POLICY": str(settings.policy)})

    return invoke


@pytest.fixture
def files(tmp_path, city):
    folder = tmp_path / "files"
    folder.mkdir()
    paths = {}
    for key, frame in [("roll", city.roll), *city.sources.items()]:
        paths[key] = folder / f"{key}.parquet"
        frame.write_parquet(paths[key])
    return paths


@pytest.fixture
def loaded(cli, files):
    for key, path in files.items():
        result = cli("ingest", key, path, "--snapshot-date", AS_OF)
        assert result.exit_code == 0, result.output
    return files


def test_every_store_command_has_help(cli):
    groups = {c.name: c for c in COMMANDS}
    for name, command in groups.items():
        result = cli(name, "--help", store_flags=False)
        assert result.exit_code == 0 and (command.help or "").split()[0] in result.output
        for sub in getattr(command, "commands", {}):
            result = cli(name, sub, "--help", store_flags=False)
            assert result.exit_code == 0 and len(result.output) > 100, (name, sub)
    listed = cli("--help", store_flags=False).output
    assert all(name in listed for name in groups)


def test_ingest_reports_new_no_op_and_rejects(cli, files, tmp_path):
    first = cli("ingest", "roll", files["roll"], "--snapshot-date", AS_OF)
    assert first.exit_code == 0 and "snapshot #1 roll 2026-06-30" in first.output
    again = cli("ingest", "roll", files["roll"], "--snapshot-date", AS_OF)
    assert again.exit_code == 0 and "already held: snapshot #1" in again.output
    bad = tmp_path / "deaths.csv"
    bad.write_text("id_number,name,death_date\n123,赵六,2026-01-02\n", encoding="utf-8")
    rejected = cli("ingest", "deaths", bad, "--snapshot-date", AS_OF)
    assert rejected.exit_code == 2 and "deaths.csv, row 2, column id_number" in rejected.output
    unusable = tmp_path / "vehicles.csv"
    unusable.write_text("a,b\n1,2\n", encoding="utf-8")
    refused = cli("ingest", "vehicles", unusable, "--snapshot-date", AS_OF)
    assert refused.exit_code == 2 and "vehicles.csv" in refused.output and "Traceback" not in refused.output
    assert cli("ingest", "weather", bad, "--snapshot-date", AS_OF).exit_code == 2
    assert cli("ingest", "roll", files["roll"], "--snapshot-date", "30/06/2026").exit_code == 2


def test_a_month_of_work_through_the_command_line(cli, loaded, tmp_path):
    sources = cli("sources", "--today", "2026-07-01", "--format", "json")
    assert sources.exit_code == 0 and all(r["state"] == "current" for r in json.loads(sources.output))
    started = cli("runs", "start", "--as-of", AS_OF)
    assert started.exit_code == 0 and "run 1: completed" in started.output, started.output
    again = cli("runs", "start", "--as-of", AS_OF)
    assert "new alerts 0" in again.output and "unchanged" in again.output
    listed = json.loads(cli("runs", "list", "--format", "json").output)
    assert [r["id"] for r in listed] == [2, 1] and listed[1]["raised"] > 0 and listed[0]["unchanged"] == 19
    assert cli("runs", "show").exit_code == 0 and cli("runs", "show", 99).exit_code == 2
    # What each run found: the first everything it raised, the second (inputs unchanged) nothing.
    by_run = json.loads(cli("flags", "list", "--run", "1", "--limit", "100000", "--format", "json").output)
    assert len(by_run) == listed[1]["raised"]
    assert json.loads(cli("flags", "list", "--run", "2", "--format", "json").output) == []
    assert cli("flags", "list", "--run", "0").exit_code == 2

    flags = json.loads(cli("flags", "list", "--severity", "high", "--format", "json").output)
    assert flags and all(f["severity"] == "high" for f in flags)
    township = flags[0]["region_code"][:9]
    narrowed = json.loads(cli("flags", "list", "--region", township, "--format", "json").output)
    assert narrowed and all(f["region_code"].startswith(township) for f in narrowed)
    target = flags[0]["id"]
    assert cli("flags", "review", target, "assign", "--to", "王芳", "--by", "李科长").exit_code == 0
    visit = cli("flags", "review", target, "visit", "--income", "600", "--living", "两间平房", "--by", "王芳")
    assert visit.exit_code == 0 and "已入户核查" in visit.output
    refused = cli("flags", "review", target, "resolve", "--by", "王芳")
    assert refused.exit_code == 2 and "resolve applies only to flags that are confirmed" in refused.output
    dismissed = cli("flags", "review", target, "dismiss", "--reason", "核实无误", "--by", "王芳")
    assert dismissed.exit_code == 0
    shown = json.loads(cli("flags", "show", target, "--format", "json").output)
    assert shown["status"] == "dismissed"
    assert [e["kind"] for e in shown["events"]] == ["raised", "assigned", "visited", "dismissed"]
    assert "核实无误" in cli("flags", "show", target).output
    only = json.loads(cli("flags", "list", "--status", "dismissed", "--format", "json").output)
    assert [f["id"] for f in only] == [target]
    assert cli("flags", "list", "--status", "lost").exit_code == 2
    assert cli("flags", "list", "--rule", "no_such_rule").exit_code == 2
    overdue = json.loads(cli("flags", "list", "--overdue", "--today", "2027-06-30", "--format", "json").output)
    assert overdue and target not in [f["id"] for f in overdue] and all(f["overdue"] for f in overdue)
    assert cli("flags", "show", 99999).exit_code == 2

    report = cli("report", "--out", tmp_path / "report.xlsx")
    assert report.exit_code == 0 and (tmp_path / "report.xlsx").exists()
    due = cli("schedule", "run-due", "--today", "2026-07-01")
    assert due.exit_code == 0 and "run 3: completed" in due.output and "trigger schedule" in due.output
    nothing = cli("schedule", "run-due", "--today", "2026-07-02")
    assert nothing.exit_code == 0 and "nothing is due" in nothing.output

    households = json.loads(cli("households", "due", "--today", "2026-07-01", "--format", "json").output)
    first = households[0]["household_id"]
    assert cli("households", "review", first, "--on", "2026-07-01", "--by", "王芳").exit_code == 0
    after = json.loads(cli("households", "due", "--today", "2026-07-01", "--format", "json").output)
    assert first not in [h["household_id"] for h in after]
    assert cli("households", "review", "nobody", "--on", "2026-07-01", "--by", "王芳").exit_code == 2
    assert "nothing to do" in cli("db", "upgrade").output


def test_csv_output_is_a_table(cli, loaded):
    cli("runs", "start", "--as-of", AS_OF)
    frame = pl.read_csv(cli("flags", "list", "--format", "csv").output.encode())
    assert frame.columns[:3] == ["id", "rule_id", "status"] and frame.height > 0


def test_the_readme_store_examples_run(tmp_path, settings):
    section = README.split("## Store and schedule", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    env = env_for(settings, CROSSCHECK_DATA_DIR=str(tmp_path / "crosscheck-data"))
    env.pop("CROSSCHECK_POLICY")
    for line in [line for line in block.splitlines() if line.strip()]:
        words = shlex.split(line)
        command = [sys.executable, "-m", "fixtures", *words[3:]] if words[:3] == ["python", "-m", "fixtures"] \
            else [sys.executable, "-m", "engine", *words[1:]]
        assert words[0] in ("crosscheck", "python"), line
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "report.xlsx").exists()


def test_runs_on_spark_without_pyspark_exit_2_saying_what_to_install(cli, loaded, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as where it is not installed
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    result = cli("runs", "start", "--as-of", AS_OF, "--engine", "spark")
    assert result.exit_code == 2
    assert "pip install -e '.[spark]'" in result.output and "Traceback" not in result.output
    assert cli("runs", "start", "--as-of", AS_OF, "--engine", "duckdb").exit_code == 2  # click's choice
