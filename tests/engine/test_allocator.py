"""engine.allocator: `crosscheck run` keeps freed pages for 5 s (polars' allocator), set before
polars loads, and never over a setting the user made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from engine import allocator, cli

_WITHOUT = {k: v for k, v in os.environ.items() if k != allocator.VARIABLE}


def _python(code: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_set_before_polars_it_is_what_polars_hands_its_allocator_last():
    code = ("import os; from engine import allocator; assert allocator.for_batch(); import polars; "
            "print(os.environ[allocator.VARIABLE])")
    # polars puts its own setting first and the process's after it: the last one is used.
    assert _python(code, _WITHOUT).split(",")[-1] == allocator.BATCH


def test_once_polars_is_loaded_it_changes_nothing():
    code = ("import os, polars; from engine import allocator; "
            "print(allocator.for_batch(), os.environ[allocator.VARIABLE])")
    took, setting = _python(code, _WITHOUT).split(" ", 1)
    assert took == "False" and allocator.BATCH not in setting


def test_a_setting_the_user_made_is_kept():
    code = "import os; from engine import allocator; print(allocator.for_batch(), os.environ[allocator.VARIABLE])"
    assert _python(code, {**_WITHOUT, allocator.VARIABLE: "dirty_decay_ms:0"}) == "False dirty_decay_ms:0"


def test_crosscheck_run_sets_it(monkeypatch, tmp_path: Path):
    called: list[bool] = []
    monkeypatch.setattr(allocator, "for_batch", lambda: called.append(True) or True)
    (tmp_path / "sources").mkdir()
    (tmp_path / "roll.csv").write_text("", encoding="utf-8")
    CliRunner().invoke(cli.main, ["run", "--roll", str(tmp_path / "roll.csv"), "--sources", str(tmp_path / "sources"),
                                  "--as-of", "2026-06-30", "--out", str(tmp_path / "flags.csv")])
    assert called == [True]
