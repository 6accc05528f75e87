"""benchmarks/idle_pages.py: the cost of touching pages again after a pause, as a table. What the
times are depends on the machine; what is checked is that each pause gets its row, that the
pages read are distinct pages of the memory filled, and that reading them faults nothing in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "idle_pages.py"


def test_each_pause_gets_its_row_with_times_and_faults():
    rows = script("idle_pages").measure(megabytes=8, pages=50, repeat=2, spin=False, pauses=(0.0, 0.02))
    assert [row["pause_s"] for row in rows] == [0.0, 0.02]
    for row in rows:
        assert row["cold_us"] > 0 and row["warm_us"] > 0
        assert row["faults"] >= 0


def test_the_read_touches_each_chosen_page_once(monkeypatch):
    module = script("idle_pages")
    seen = []
    monkeypatch.setattr(module, "_timed_read", lambda memory, offsets: seen.append(offsets) or 1e-6)
    module.measure(megabytes=4, pages=30, repeat=1, spin=True, pauses=(0.0,))
    cold, warm = seen
    assert np.array_equal(cold, warm)  # the warm read reads the same bytes again
    pages = cold // module.PAGE
    assert len(set(pages.tolist())) == 30 and pages.max() < (4 << 20) // module.PAGE


def test_the_command_prints_a_table():
    completed = subprocess.run([sys.executable, str(SCRIPT), "--megabytes", "8", "--pages", "20", "--repeat", "1"],
                               capture_output=True, text=True, check=True, timeout=120)
    lines = completed.stdout.splitlines()
    assert lines[1].startswith("| untouched for |")
    assert len([line for line in lines if line.startswith("| ") and " s |" in line]) == 7


def test_the_command_gives_chosen_pauses_as_json():
    completed = subprocess.run([sys.executable, str(SCRIPT), "--megabytes", "8", "--pages", "20", "--repeat", "1",
                                "--pauses", "0", "0.05", "--json"], capture_output=True, text=True, check=True, timeout=120)
    rows = json.loads(completed.stdout)
    assert [row["pause_s"] for row in rows] == [0.0, 0.05]
    assert all(row["cold_us"] > 0 and row["warm_us"] > 0 for row in rows)
