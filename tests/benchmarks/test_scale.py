"""benchmarks/scale.py at a tiny scale, so that it does not rot: it generates, every step runs in
its child process, and the table comes out. No timing is asserted (benchmarks are never timed tests)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import polars as pl

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
    expected = {"ingest", "run", "run:monthly", "run:quarterly", "run:semiannual", "run:annual", "snapshots",
                "run:snapshots", "polars"}
    assert expected | ({"duckdb", "pandas"} if peers else set()) == set(results)
    assert all(r["wall"] >= 0 and r["peak_mib"] > 0 for r in results.values())
    # every peer joined the same rows
    joined = {s: results[s]["note"].split(", ")[1] for s in ("polars", "duckdb", "pandas") if s in results}
    assert len(set(joined.values())) == 1, joined


def test_background_ids_are_valid_distinct_and_off_the_roll() -> None:
    spec = importlib.util.spec_from_file_location("scale", SCRIPT)
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    from engine.ids import valid_expr

    ids = scale.background_ids(0, 50_000)
    assert ids.n_unique() == 50_000
    assert pl.select(valid_expr(pl.lit(ids)).all()).item()
    assert not ids.str.starts_with("3203").any()  # the generated city's IDs are 3203xx
