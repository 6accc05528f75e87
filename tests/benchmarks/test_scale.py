"""benchmarks/scale.py at a tiny scale, so that it does not rot: it generates, every step runs in
its child process, and the table comes out. No timing is asserted (benchmarks are never timed tests)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


def test_scale_smoke(tmp_path: Path) -> None:
    peers = all(importlib.util.find_spec(m) for m in ("duckdb", "pandas"))
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--scale", "300", "--data", str(tmp_path), "--json", str(out),
         *([] if peers else ["--no-peers"])],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| crosscheck full run, all rules |" in completed.stdout
    assert "equal to the ground truth: yes" in completed.stdout
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    expected = {"ingest", "ingest:hukou", "run", "run:monthly", "run:quarterly", "run:semiannual", "run:annual", "snapshots",
                "keyed", "run:indexed", "run:indexed:monthly", "run:indexed:quarterly", "run:indexed:semiannual",
                "run:indexed:annual", "run:snapshots", "run:partitioned", "polars", "polars:streaming"}
    assert expected | ({"duckdb", "pandas"} if peers else set()) == set(results)
    for step in ("run", "run:indexed", "run:snapshots", "run:partitioned"):
        assert "equal to the ground truth: yes" in results[step]["note"], (step, results[step]["note"])
    assert all(r["wall"] >= 0 and r["peak_mib"] > 0 for r in results.values())

    def flags(step: str) -> int:
        return int(results[step]["note"].split(" flags")[0].replace(",", ""))

    # A cadence on keyed snapshots (only its sources mapped) finds what it finds from the files.
    for cadence in ("monthly", "quarterly", "semiannual", "annual"):
        assert flags(f"run:indexed:{cadence}") == flags(f"run:{cadence}"), cadence
    assert sum(flags(f"run:indexed:{c}") for c in ("monthly", "quarterly", "semiannual", "annual")) == flags("run")
    hukou_rows = json.loads(next(tmp_path.glob("scale-300-*/done.json")).read_text())["rows"]["hukou"]
    assert results["ingest:hukou"]["note"].startswith(f"{hukou_rows:,} rows")

    # The same data through the store's command line (benchmarks/through_store.sh): the run
    # records the keyed run's flags; run again, it finds nothing new.
    scale_dir = next(p.parent for p in tmp_path.glob("scale-300-*/done.json"))
    through = subprocess.run(["bash", str(SCRIPT.parent / "through_store.sh"), str(scale_dir), str(tmp_path / "store")],
                             capture_output=True, text=True, check=False, timeout=600)
    assert through.returncode == 0, through.stdout + through.stderr
    first, again = through.stdout.split("runs start: ")
    assert f"findings {flags('run:indexed')}:" in first and "ingest hukou: " in first and "every delivery ingested" in first
    assert "findings 0:" in again and "runs start, again: " in again
    # every peer joined the same rows
    joined = {s: results[s]["note"].split(", ")[1] for s in ("polars", "polars:streaming", "duckdb", "pandas")
              if s in results}
    assert len(set(joined.values())) == 1, joined


def test_a_step_over_the_memory_limit_is_a_row_not_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--scale", "50", "--data", str(tmp_path), "--json", str(out),
         "--steps", "polars", "--max-rss-gib", "0.02"],  # below what importing polars takes
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    assert "did not complete" in completed.stdout
    assert "killed above 0.02 GiB" in json.loads(out.read_text(encoding="utf-8"))["results"]["polars"]["failed"]


def _scale():
    spec = importlib.util.spec_from_file_location("scale", SCRIPT)
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    return scale


def test_province_steps_are_known_and_skip_the_file_path() -> None:
    scale = _scale()
    assert set(scale.PROVINCE_STEPS) <= set(scale.LABELS)
    assert "run" not in scale.PROVINCE_STEPS and "run:partitioned" in scale.PROVINCE_STEPS
    assert scale.parse_scale("province") == ("province", 1_200_000, 10.0)


def test_background_ids_are_valid_distinct_and_off_the_roll() -> None:
    scale = _scale()
    from engine.ids import valid_expr

    ids = scale.background_ids(0, 50_000)
    assert ids.n_unique() == 50_000
    assert pl.select(valid_expr(pl.lit(ids)).all()).item()
    assert not ids.str.starts_with("3203").any()  # the generated city's IDs are 3203xx


_API_JSON = {
    "households": 300, "first_check_s": 0.8, "server_rss_mib": 400.0,
    "checks": [
        {"concurrency": 1, "requests": 200, "failures": 0, "p50_ms": 3.1, "p90_ms": 4.0, "p99_ms": 6.5,
         "max_ms": 9.0, "mean_ms": 3.3, "requests_per_s": 290.0},
        {"concurrency": 32, "requests": 200, "failures": 0, "p50_ms": 15.2, "p90_ms": 19.0, "p99_ms": 24.9,
         "max_ms": 30.0, "mean_ms": 15.9, "requests_per_s": 600.0, "gathered_mean": 14.5, "engine_ms_mean": 9.25},
    ],
    "xlsx_batch": {"rows": 700, "households": 300, "accepted_s": 0.05, "elapsed_s": 1.25, "status": "completed",
                   "flags": 40, "rejects": 0},
}


def test_bench_api_figures_become_rows_and_targets() -> None:
    scale = _scale()
    rows = scale.api_rows(_API_JSON, "this scale's data", 512.0)
    assert set(rows) == {"api:c1", "api:c32", "api:xlsx"}
    text = scale.table(rows)
    assert "p50 15.2 ms, p99 24.9 ms" in text and "| 1.25 |" in text
    assert "engine calls of 14.5 requests, 9.2 ms (means per check)" in rows["api:c32"]["note"]
    assert "engine calls" not in rows["api:c1"]["note"]  # figures from before the server reported them
    assert "CPU a request" not in rows["api:c32"]["note"]  # nor the processes' CPU
    lines = "\n".join(scale.targets("city", rows))
    assert "p99 ≤ 20 ms at concurrency 32: NOT met" in lines
    assert "XLSX batch, upload to flags, ≤ 3 s: met" in lines


def test_the_cpu_a_request_cost_each_process_is_in_the_note_with_the_throughput_it_allows(monkeypatch) -> None:
    scale = _scale()
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    found = json.loads(json.dumps(_API_JSON))
    for check in found["checks"]:
        check |= {"server_cpu_us": 330.0, "checker_cpu_us": 410.0, "client_cpu_us": 60.0, "checker_cores": None}
    rows = scale.api_rows(found, "this scale's data", 512.0)
    assert "CPU a request" not in rows["api:c1"]["note"]  # one client: nothing shares the cores
    note = rows["api:c32"]["note"]
    assert "CPU a request 800 µs (server 330, check process 410, load generator 60): 2 cores could answer at most " \
           "2,500 a second" in note
    found["checks"][1]["checker_cores"] = 1  # the check process kept to one core
    note = scale.api_rows(found, "this scale's data", 512.0)["api:c32"]["note"]
    assert "the check process's core could answer at most 2,439 a second, the other core at most 2,564; " \
           "the check process's binds" in note


def test_a_failing_api_benchmark_is_a_row_not_a_crash(tmp_path: Path) -> None:
    broken = tmp_path / "broken_bench_api.py"
    broken.write_text("import sys\nprint('the server did not start')\nsys.exit(1)\n", encoding="utf-8")
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--scale", "50", "--data", str(tmp_path), "--json", str(out),
         "--steps", "api", "--api-script", str(broken)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert set(results) == {"api:c1", "api:c32", "api:xlsx"}
    assert all("bench_api.py failed (exit 1): the server did not start" in r["failed"] for r in results.values())
    assert completed.stdout.count("did not complete") == 3
    assert "POST /checks p99 ≤ 20 ms at concurrency 32: NOT met" in completed.stdout


def _with_p99(found: dict, p99: float, xlsx_s: float) -> dict:
    copy = json.loads(json.dumps(found))
    copy["checks"][1]["p99_ms"] = p99
    copy["xlsx_batch"]["elapsed_s"] = xlsx_s
    return copy


def test_several_api_runs_show_every_p99_and_meet_the_target_only_if_each_does() -> None:
    scale = _scale()
    runs = [scale.api_rows(_with_p99(_API_JSON, p99, xlsx), "this scale's data", 512.0)
            for p99, xlsx in ((18.0, 1.0), (21.5, 2.5), (19.0, 1.5))]
    combined = scale.combined_api_runs(runs)
    assert combined["api:c32"]["p99_ms"] == 19.0  # the median run's row
    assert combined["api:c32"]["note"].startswith("3 runs, p99 18.0, 21.5, 19.0 ms; the median run: ")
    assert combined["api:xlsx"]["wall"] == 2.5  # the slowest: the target is a ceiling
    assert combined["api:xlsx"]["note"].startswith("3 runs, 1.00, 2.50, 1.50 s; the slowest: ")
    assert "| (3 runs) |" in scale.table(combined)
    lines = "\n".join(scale.targets("city", combined))
    assert "p99 ≤ 20 ms at concurrency 32: NOT met (≤ 20 ms in 2 of 3 runs)" in lines
    assert "XLSX batch, upload to flags, ≤ 3 s: met" in lines

    meeting = scale.combined_api_runs([runs[0], runs[2]])
    assert "p99 ≤ 20 ms at concurrency 32: met (≤ 20 ms in 2 of 2 runs)" in "\n".join(scale.targets("city", meeting))
    assert scale.combined_api_runs([runs[1]]) is runs[1]  # one run: its rows as they are

    refused = json.loads(json.dumps(_with_p99(_API_JSON, 17.0, 1.0)))
    refused["checks"][1]["failures"] = 3  # under 20 ms, but three answers were not 200
    some_refused = scale.combined_api_runs([runs[0], scale.api_rows(refused, "this scale's data", 512.0), runs[2]])
    assert some_refused["api:c32"]["failed_requests"] == 3
    assert "p99 ≤ 20 ms at concurrency 32: NOT met (≤ 20 ms in 3 of 3 runs; 3 answers not 200)" in "\n".join(scale.targets("city", some_refused))


def test_a_failed_api_run_among_several_does_not_meet_the_target() -> None:
    scale = _scale()
    good = scale.api_rows(_with_p99(_API_JSON, 15.0, 1.0), "this scale's data", 512.0)
    failed = {key: {"kind": "api", "failed": "bench_api.py killed after 3600 s", "wall": None, "peak_mib": 0.0,
                    "note": "bench_api.py killed after 3600 s"} for key in good}
    combined = scale.combined_api_runs([good, failed])
    assert combined["api:c32"]["note"].startswith("2 runs, p99 15.0, failed ms")
    assert "NOT met (≤ 20 ms in 1 of 2 runs)" in "\n".join(scale.targets("city", combined))
    assert "failed" in combined["api:xlsx"]  # the failed run's row, not the one that completed
    assert "XLSX batch, upload to flags, ≤ 3 s: NOT met" in "\n".join(scale.targets("city", combined))


def test_the_run_targets_say_which_run_they_are_read_against() -> None:
    scale = _scale()
    results = {"run": {"wall": 10.1, "peak_mib": 1900.0}, "run:indexed": {"wall": 1.2, "peak_mib": 1200.0},
               "duckdb": {"wall": 1.7, "peak_mib": 240.0}}
    first, files = scale.targets("city", results)
    assert first.startswith("city (meaningful at --scale city) targets for the crosscheck full run on keyed snapshots")
    assert "the run the targets are read against" in first
    assert first.endswith("≤ 5 s wall: met; ≤ 3 GB peak: met; no slower than DuckDB's exact joins: met")
    assert "crosscheck full run, all rules, also measured (ingest's validation" in files
    assert files.endswith("≤ 5 s wall: NOT met; ≤ 3 GB peak: met; no slower than DuckDB's exact joins: NOT met")
    assert set(scale.ROLES) <= set(scale.STEPS)


def test_each_api_run_carries_the_state_of_the_machine_it_ran_on(tmp_path: Path) -> None:
    scale = _scale()
    runs = [scale.with_machine(scale.api_rows(_with_p99(_API_JSON, p99, 1.0), "this scale's data", 512.0), idle)
            for p99, idle in ((18.0, 1.2), (24.0, 41.0), (19.0, None))]
    assert runs[0]["api:c32"]["note"].endswith("; a page untouched 0.5 s took 1.2 µs to touch (idle_pages.py)")
    assert runs[2]["api:xlsx"]["note"].endswith("took ? µs to touch (idle_pages.py)")
    combined = scale.combined_api_runs(runs)
    assert combined["api:c32"]["note"].startswith("3 runs, p99 18.0, 24.0, 19.0 ms (a page untouched 0.5 s: 1.2, 41.0, ? µs)")
    # measured in a child, by benchmarks/idle_pages.py itself; a script that fails gives no figure
    measured = scale.idle_page_us(megabytes=8)
    assert measured is not None and measured > 0
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit(1)\n", encoding="utf-8")
    assert scale.idle_page_us(megabytes=8, script=broken) is None


def test_the_api_pool_is_handed_to_bench_api(tmp_path: Path) -> None:
    """`--api-pool` (the distinct households the checks are drawn from) reaches bench_api.py."""
    seen = tmp_path / "argv.json"
    script = tmp_path / "recording_bench_api.py"
    script.write_text(f"import json, sys\nopen({str(seen)!r}, 'w').write(json.dumps(sys.argv[1:]))\nsys.exit(1)\n",
                      encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--scale", "50", "--data", str(tmp_path), "--steps", "api",
         "--api-script", str(script), "--api-pool", "77"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    argv = json.loads(seen.read_text(encoding="utf-8"))
    assert argv[argv.index("--pool") + 1] == "77"


def test_the_runs_from_files_get_the_allocator_setting_crosscheck_run_makes(monkeypatch, tmp_path: Path) -> None:
    """`crosscheck run` keeps polars' freed pages 5 s (engine.allocator); its steps here are
    measured with the same setting, the other steps with polars' own."""
    from engine import allocator

    scale = _scale()
    monkeypatch.setattr(scale, "_USER_ALLOCATOR", None)
    given: dict[str, object] = {}

    class Stopped(Exception):
        pass

    def popen(command, **kwargs):
        given[command[3]] = kwargs.get("env")
        raise Stopped

    monkeypatch.setattr(scale.subprocess, "Popen", popen)
    for step in ["run", "run:monthly", "run:indexed", "run:snapshots", "ingest"]:
        with pytest.raises(Stopped):
            scale.measure(step, tmp_path)
    assert {step: env[allocator.VARIABLE] for step, env in given.items() if env} == {
        "run": allocator.BATCH, "run:monthly": allocator.BATCH}
    monkeypatch.setattr(scale, "_USER_ALLOCATOR", "dirty_decay_ms:0")
    with pytest.raises(Stopped):
        scale.measure("run", tmp_path)
    assert given["run"][allocator.VARIABLE] == "dirty_decay_ms:0"
