"""The `crosscheck` command: exit codes and messages (CONTRACTS §5), through click's runner
and, for the real thing, through a subprocess of `python -m engine`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from engine import ids
from engine.cli import main
from engine.rules import CATALOGUE

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2026-06-30"


def person(n: int, born: str = "19800101") -> str:
    first17 = f"320302{born}{n:03d}"
    return first17 + ids.check_char(first17)


A, B, C = person(1), person(2), person(3, "19500303")
ROLL_HEADER = "救助类别,家庭编号,身份证号,姓名,行政区划代码,月保障金额,与户主关系"
ROLL_ROWS = [
    f"低保,H001,{A},张三,320302001001,800,户主",
    f"低保,H001,{B},李四,320302001001,800,配偶",
    f"高龄津贴,H002,{C},王五,320302002001,100,户主",
]


def write_inputs(base: Path, roll_rows: list[str] | None = None, roll_header: str = ROLL_HEADER,
                 deaths: list[str] | None = None) -> tuple[Path, Path]:
    """roll.csv (UTF-8, Chinese headers) and sources/ with a GBK deaths.csv and a hukou.csv."""
    roll = base / "roll.csv"
    roll.write_text("\n".join([roll_header, *(roll_rows or ROLL_ROWS)]) + "\n", encoding="utf-8")
    sources = base / "sources"
    sources.mkdir()
    (sources / "deaths.csv").write_text(
        "\n".join(["身份证号,姓名,死亡日期", *(deaths or [f"{A},张三,2026-03-15"])]) + "\n", encoding="gbk"
    )
    (sources / "hukou.csv").write_text(
        "id_number,name,region_code,status\n"
        + "".join(f"{p},{n},320302001001,normal\n" for p, n in ((A, "张三"), (B, "李四"), (C, "王五"))),
        encoding="utf-8-sig",
    )
    return roll, sources


def invoke(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def run_args(roll: Path, sources: Path, out: Path, *extra: object) -> list[object]:
    return ["run", "--roll", roll, "--sources", sources, "--as-of", AS_OF, "--out", out, *extra]


# ---- run ------------------------------------------------------------------------------------


def test_run_counts_every_usable_source_row(tmp_path: Path) -> None:
    """The run keeps only the roll's people's source rows; it still reports how many were usable."""
    roll, sources = write_inputs(tmp_path)
    with open(sources / "hukou.csv", "a", encoding="utf-8") as hukou:
        hukou.write("".join(f"{person(n)},赵{n},320302001001,normal\n" for n in range(10, 14)))
    result = invoke(*run_args(roll, sources, tmp_path / "flags.csv"))
    assert result.exit_code == 0, result.output
    assert "hukou.csv — 7 行可用 usable rows" in result.stdout
    assert "deaths.csv — 1 行可用 usable rows" in result.stdout


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_run_success_writes_flags(tmp_path: Path, suffix: str) -> None:
    roll, sources = write_inputs(tmp_path)
    out = tmp_path / "out" / f"flags{suffix}"
    result = invoke(*run_args(roll, sources, out))
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert not (tmp_path / "out" / "flags.rejects.csv").exists()
    assert "deceased" in result.stdout and "vehicles not provided" in result.stdout
    if suffix == ".csv":
        flags = pl.read_csv(out, infer_schema=False)
        assert set(flags["rule_id"]) == {"deceased", "elderly_underage"}
        dead = flags.filter(pl.col("rule_id") == "deceased")
        assert dead["id_number"].to_list() == [A] and dead["overpayment"].to_list() == ["2400.0"]


def test_run_selection(tmp_path: Path) -> None:
    roll, sources = write_inputs(tmp_path)
    out = tmp_path / "flags.csv"
    result = invoke(*run_args(roll, sources, out, "--rules", "deceased,id_invalid"))
    assert result.exit_code == 0, result.output
    assert set(pl.read_csv(out)["rule_id"]) == {"deceased"}
    result = invoke(*run_args(roll, sources, out, "--cadence", "quarterly"))
    assert result.exit_code == 0, result.output
    assert pl.read_csv(out).height == 0
    assert "prisoners not provided" in result.stdout


def test_missing_required_column_lists_accepted_headers(tmp_path: Path) -> None:
    header = "救助类别,家庭编号,证件类型,姓名,行政区划代码,月保障金额,与户主关系"
    roll, sources = write_inputs(tmp_path, roll_header=header)
    out = tmp_path / "flags.csv"
    result = invoke(*run_args(roll, sources, out))
    assert result.exit_code == 2
    assert "roll.csv" in result.stderr and "id_number" in result.stderr
    for accepted in ("身份证号", "公民身份号码", "身份证号码", "证件号码"):
        assert accepted in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing is run


def test_every_unusable_file_is_reported_together(tmp_path: Path) -> None:
    header = "救助类别,家庭编号,身份证号,姓名,行政区划代码,与户主关系"  # no 月保障金额
    roll, sources = write_inputs(tmp_path, roll_header=header, roll_rows=["低保,H1,x,张三,320302,户主"])
    (sources / "deaths.csv").write_text("身份证号,姓名\n1,2\n", encoding="utf-8")  # no 死亡日期
    result = invoke(*run_args(roll, sources, tmp_path / "flags.csv"))
    assert result.exit_code == 2
    assert "benefit_monthly" in result.stderr and "death_date" in result.stderr
    assert "roll.csv" in result.stderr and "deaths.csv" in result.stderr


def test_an_unusable_source_file_skips_its_rules_and_the_others_run(tmp_path: Path) -> None:
    """A broken vehicles file is as good as missing (CONTRACTS §5: the rest is processed): the
    other rules run and their flags are written, the file's problems listed, exit 2."""
    roll, sources = write_inputs(tmp_path)
    (sources / "vehicles.csv").write_text("身份证号,号牌号码\n1,苏C1\n", encoding="utf-8")  # no 车辆类型
    out = tmp_path / "flags.csv"
    result = invoke(*run_args(roll, sources, out))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "vehicles.csv" in result.stderr and "vehicle_type" in result.stderr
    assert "vehicle_owned" in result.stdout and "cannot be used" in result.stdout
    flags = pl.read_csv(out, infer_schema=False)
    assert "deceased" in flags.get_column("rule_id").to_list()  # the deaths file was fine


def test_rejected_rows_go_beside_the_output(tmp_path: Path) -> None:
    rows = [*ROLL_ROWS[:1], f"低保,H001,{B},李四,320302001001,abc,配偶", ROLL_ROWS[2]]
    roll, sources = write_inputs(tmp_path, roll_rows=rows,
                                 deaths=[f"{A},张三,2026-03-15", f"{C},王五,2026-13-01"])
    out = tmp_path / "flags.xlsx"
    result = invoke(*run_args(roll, sources, out))
    assert result.exit_code == 2
    assert out.exists()  # the rest was processed
    rejects = tmp_path / "flags.rejects.csv"
    back = pl.read_csv(rejects, infer_schema=False)
    assert back.select("file", "row").rows() == [("roll.csv", "3"), ("deaths.csv", "3")]
    assert back.filter(pl.col("file") == "roll.csv")["benefit_monthly"].to_list() == ["abc"]
    assert "roll.csv, row 3, column benefit_monthly (月保障金额), value 'abc'" in result.stderr
    assert "deaths.csv, row 3, column death_date (死亡日期), value '2026-13-01'" in result.stderr
    assert str(rejects) in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rules", "deceased,nope"], "unknown rule 'nope'"),
        (["--cadence", "weekly"], "unknown cadence weekly"),
        (["--rules", "elderly_underage", "--cadence", "annual"], "no rule"),
    ],
)
def test_bad_selection(tmp_path: Path, extra: list[str], message: str) -> None:
    roll, sources = write_inputs(tmp_path)
    result = invoke(*run_args(roll, sources, tmp_path / "flags.csv", *extra))
    assert result.exit_code == 2
    assert message in result.stderr


def test_bad_as_of_policy_and_out(tmp_path: Path) -> None:
    roll, sources = write_inputs(tmp_path)
    out = tmp_path / "flags.csv"
    for bad in ("2026-02-30", "20260630", "yesterday"):
        result = invoke("run", "--roll", roll, "--sources", sources, "--as-of", bad, "--out", out)
        assert result.exit_code == 2 and "YYYY-MM-DD" in result.stderr
    policy = tmp_path / "policy.toml"
    policy.write_text("[defaults]\ndibao_monthyl = 900\n", encoding="utf-8")
    result = invoke(*run_args(roll, sources, out, "--policy", policy))
    assert result.exit_code == 2 and "dibao_monthyl" in result.stderr
    result = invoke(*run_args(roll, sources, tmp_path / "flags.json"))
    assert result.exit_code == 2 and ".xlsx" in result.stderr
    result = invoke(*run_args(roll, tmp_path / "nowhere", out))
    assert result.exit_code == 2
    assert not out.exists()
    # A directory that cannot be made (here a file stands in its way) is the user's to fix.
    (tmp_path / "taken").write_text("a file")
    result = invoke(*run_args(roll, sources, tmp_path / "taken" / "flags.csv"))
    assert result.exit_code == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr


def test_unexpected_error_is_exit_1_with_a_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.batch

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.batch, "run_files", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.delenv("CROSSCHECK_DEBUG", raising=False)
    roll, sources = write_inputs(tmp_path)
    result = invoke(*run_args(roll, sources, tmp_path / "flags.csv"))
    assert result.exit_code == 1
    assert "internal error: RuntimeError: boom" in result.stderr
    assert "Traceback" not in result.output
    logs = list(tmp_path.glob("crosscheck-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in result.stderr
    assert "RuntimeError: boom" in logs[0].read_text(encoding="utf-8")


# ---- rules, validate, help --------------------------------------------------------------------


def test_rules_markdown_lists_every_rule() -> None:
    result = invoke("rules", "--format", "markdown")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("| `")]
    assert len(lines) == len(CATALOGUE) == 19
    for rule in CATALOGUE:
        assert f"| `{rule.id}` | {rule.label_zh} |" in result.stdout


def test_rules_json_and_table() -> None:
    data = json.loads(invoke("rules", "--format", "json").stdout)
    assert [r["id"] for r in data] == [r.id for r in CATALOGUE]
    assert {"label_zh", "label_en", "cadence", "programs", "level", "severity", "sources"} <= set(data[0])
    table = invoke("rules")
    assert table.exit_code == 0
    assert all(r.id in table.stdout for r in CATALOGUE)


def test_validate_gbk_file_with_a_bad_date(tmp_path: Path) -> None:
    path = tmp_path / "deaths.csv"
    path.write_text(f"身份证号,姓名,死亡日期\n{A},张三,2026-03-15\n{B},李四,2026-13-01\n", encoding="gbk")
    result = invoke("validate", path, "--as-of", AS_OF)
    assert result.exit_code == 2
    assert "deaths.csv, row 3, column death_date (死亡日期), value '2026-13-01'" in result.stdout


def test_validate_clean_file_and_roll_warnings(tmp_path: Path) -> None:
    roll = tmp_path / "名册.csv"
    roll.write_text("\n".join([ROLL_HEADER, *ROLL_ROWS, "低保,H3,3.20302E+17,赵六,320302,500,户主"]) + "\n",
                    encoding="utf-8")
    result = invoke("validate", roll, "--kind", "roll", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output  # an invalid roll ID is a warning: the row is kept
    assert "warning: 名册.csv, row 5, column id_number" in result.stdout
    assert "Excel" in result.stdout
    result = invoke("validate", roll)  # the kind cannot be told from this name
    assert result.exit_code == 2 and "--kind" in result.stderr


def test_validate_reads_a_large_file_in_pieces_with_a_whole_readings_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import batch, pieces

    path = tmp_path / "deaths.csv"
    rows = [f"{A if n % 7 else A[:17] + 'Y'},张{n},2026-0{1 + n % 12 if n % 12 < 9 else 9}-15" for n in range(600)]
    path.write_text("身份证号,姓名,死亡日期\n" + "\n".join(rows) + "\n", encoding="gbk")
    whole = invoke("validate", path, "--as-of", AS_OF)
    monkeypatch.setattr(batch, "RUN_PIECE_BYTES", 1_000)
    read = []
    load_pieces = pieces.load_pieces
    monkeypatch.setattr(pieces, "load_pieces", lambda *args: (read.append(piece) or piece for piece in load_pieces(*args)))
    in_pieces = invoke("validate", path, "--as-of", AS_OF)
    assert len(read) > 10
    assert whole.exit_code == in_pieces.exit_code == 2
    assert (in_pieces.stdout, in_pieces.stderr) == (whole.stdout, whole.stderr)
    assert "514 行可用 usable, 86 行拒收 rejected, 86 problem(s)" in whole.stderr


def test_validate_unusable_file(tmp_path: Path) -> None:
    path = tmp_path / "hukou.csv"
    path.write_bytes(b"")
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert "hukou.csv" in result.stdout


def test_every_command_has_help() -> None:
    assert invoke("--help").exit_code == 0
    for name, command in main.commands.items():
        result = invoke(name, "--help")
        assert result.exit_code == 0, name
        assert command.help and "Usage:" in result.stdout
        for param in command.params:
            if isinstance(param, __import__("click").Option):
                assert param.help, f"{name} {param.opts}"


# ---- the real command ---------------------------------------------------------------------------


def _python_m(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120,
    )


def test_python_m_engine_run(tmp_path: Path) -> None:
    roll, sources = write_inputs(tmp_path)
    out = tmp_path / "flags.parquet"
    done = _python_m(*run_args(roll, sources, out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pl.read_parquet(out)["rule_id"].to_list() == ["deceased", "elderly_underage"]
    assert "\x1b[" not in done.stdout  # not a terminal: no colours, no spinner

    bad = _python_m(*run_args(roll, sources, out, "--rules", "nope"), cwd=tmp_path)
    assert bad.returncode == 2
    assert "unknown rule 'nope'" in bad.stderr and "Traceback" not in bad.stderr


# ---- demo ---------------------------------------------------------------------------------------


def test_demo_small(tmp_path: Path) -> None:
    pytest.importorskip("fixtures.generator")
    out = tmp_path / "demo"
    result = invoke("demo", "--out", out, "--households", 30, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert (out / "flags.xlsx").exists() and (out / "flags.csv").exists()
    assert "township" in result.stdout
