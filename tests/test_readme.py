"""Docs are tests: the README's set-up lines, its usage examples and its rule table."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main as cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _block_after(heading: str) -> list[str]:
    section = README.split(heading, 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no bash block after {heading}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_the_two_set_up_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert first_block == ["pip install -e . && crosscheck demo", "pip install -e '.[dev]' && python -m pytest"]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pip install -q -e '.[dev]' && python -m pytest" in ci


def test_usage_examples_run(tmp_path):
    for line in _block_after("## Usage"):
        words = shlex.split(line)
        assert words[0] == "crosscheck"
        completed = subprocess.run(
            [sys.executable, "-m", "engine", *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert completed.returncode == 0, f"{line}\n{completed.stdout}\n{completed.stderr}"
    assert (tmp_path / "demo-out" / "flags.parquet").exists()
    assert (tmp_path / "demo-out" / "monthly.csv").exists()


def test_rule_table_is_the_catalogue():
    table = CliRunner().invoke(cli, ["rules", "--format", "markdown"]).output.strip()
    block = README.split("<!-- rules:begin", 1)[1].split("-->", 1)[1].split("<!-- rules:end -->", 1)[0]
    assert block.strip() == table
