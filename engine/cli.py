"""The `crosscheck` command: a thin adapter over engine.batch and engine.output.

    crosscheck run --roll FILE --sources DIR --as-of YYYY-MM-DD --out FILE
                   [--policy FILE] [--rules ID,ID…] [--cadence monthly,quarterly,…]
    crosscheck rules [--format table|json|markdown]
    crosscheck validate FILE [--kind roll|<source key>] [--as-of YYYY-MM-DD]
    crosscheck demo [--out DIR] [--households N] [--seed S]

Exit codes (CONTRACTS §5, docs/design.md):
    0  success, with or without flags; every input row was usable
    2  unusable input: a bad option (click's usage errors), an engine error (CrosscheckError:
       unreadable file, wrong header, bad policy, unknown rule or cadence; nothing is run), or
       rows rejected by `run` (the rest was run, flags and `<out stem>.rejects.csv` written) or
       found by `validate`. Every problem is listed by file, row and column on stderr.
    1  a bug: an unexpected exception. The user sees one short message and the path of a log
       file holding the traceback (in the temporary directory), never the traceback itself;
       set CROSSCHECK_DEBUG=1 to let the traceback through instead.

Engine errors are mapped to messages and exit codes in one place, `_Group.invoke`, so that the
commands, `python -m engine` and click's test runner all behave the same.

Reports go to stdout, problems and warnings to stderr. Progress spinners are shown only when
stdout is a terminal: piped or logged output stays plain.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import date
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from schemas import CADENCES, SOURCES

from . import allocator
from .params import ISO_DATE
from .errors import CrosscheckError, InputError, Problem

__all__ = ["main"]

EXIT_OK, EXIT_BUG, EXIT_INPUT = 0, 1, 2
WARNINGS_SHOWN = 20  # `run` lists this many warnings; `validate` lists them all


# ---- plumbing -------------------------------------------------------------------------------


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("crosscheck")
    except Exception:  # running from a source tree that was never installed
        return "0+unknown"


def _console() -> Console:
    # Made per command, never at import: the test runner swaps sys.stdout for each call.
    # markup=False: file names and cells like "[dibao]" must print as they are.
    console = Console(markup=False, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 240  # a log file has no width; 80 would wrap every table
    return console


@contextmanager
def _progress(console: Console, text: str) -> Iterator[Callable[[str], None]]:
    """A transient spinner whose text the caller updates; nothing when not on a terminal."""
    if not console.is_terminal:
        yield lambda _: None
        return
    with console.status(text) as status:
        yield lambda message: status.update(message)


def _err(text: str = "") -> None:
    click.echo(text, err=True)


def _crash_log(error: BaseException) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"crosscheck-crash-{stamp}-{os.getpid()}.log"
    path.write_text(
        f"crosscheck {_version()}\npython {sys.version}\nargv: {sys.argv}\n\n{traceback.format_exc()}",
        encoding="utf-8",
    )
    return path


class _Group(click.Group):
    """The one place where engine errors become messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrosscheckError as error:
            _err(f"错误 error: {error}")
            ctx.exit(EXIT_INPUT)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors (exit 2), ctx.exit(), Ctrl-C
        except BrokenPipeError:
            # `crosscheck rules | head`: the reader left; not a bug. Silence the final flush
            # (as the Python docs advise) and stop.
            with suppress(OSError, ValueError, AttributeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(EXIT_BUG)
        except Exception as error:
            if os.environ.get("CROSSCHECK_DEBUG"):
                raise
            try:
                log: object = _crash_log(error)
            except OSError:  # no writable temporary directory: the traceback is all we have
                log = "\n" + traceback.format_exc()
            _err(
                f"内部错误 internal error: {type(error).__name__}: {error}\n"
                f"详细信息 details: {log}\n"
                "这是程序缺陷，请将该文件随问题一并报告 (this is a bug; please report it with that file)"
            )
            ctx.exit(EXIT_BUG)




def _split(values: tuple[str, ...]) -> list[str] | None:
    """`--rules a,b --rules c` → ['a', 'b', 'c']; nothing given → None (all)."""
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    return items or None


def _problem_lines(problems: list[Problem], label: str) -> None:
    for problem in problems:
        _err(f"  {label}: {problem}")


# ---- the group ------------------------------------------------------------------------------


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="crosscheck")
def main() -> None:
    """社会救助“三比对”核对引擎 — social-assistance eligibility cross-check.

    Compares a roll of assistance recipients (救助对象名册) with source data (户籍、死亡、车辆、
    房产…) and writes one flag per finding. Exit codes: 0 success; 2 unusable input (every
    problem listed by file, row and column); 1 internal error (details in a log file).
    """


# ---- run ------------------------------------------------------------------------------------


@main.command("run")
@click.option("--roll", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="救助对象名册 the roll (.csv, .xlsx, .xls or .parquet).")
@click.option("--sources", "sources_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="数据源目录 directory of <key>.csv|xlsx|xls|parquet source files (hukou, deaths, …).")
@click.option("--as-of", "as_of", required=True, type=ISO_DATE, help="核对基准日 as-of date, YYYY-MM-DD.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="预警输出文件 flags output: .parquet, .csv or .xlsx (for people). "
                   "Rejected rows go beside it as <stem>.rejects.csv.")
@click.option("--policy", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="地方政策 policy TOML (standards, limits, region prefixes); default: contract defaults.")
@click.option("--rules", "rule_ids", multiple=True, metavar="ID,ID…",
              help="只运行这些规则 run only these rule ids (comma-separated; see `crosscheck rules`).")
@click.option("--cadence", "cadences", multiple=True, metavar="CADENCE,…",
              help=f"只运行这些周期的规则 run only rules of these cadences: {', '.join(CADENCES)}.")
@click.pass_context
def run_command(ctx: click.Context, roll: Path, sources_dir: Path, as_of: date, out: Path,
                policy: Path | None, rule_ids: tuple[str, ...], cadences: tuple[str, ...]) -> None:
    """运行比对 run the cross-check and write the flags.

    Every rule whose sources are present runs (narrow with --rules / --cadence); rules whose
    source file is missing are skipped and listed. Exit 0 when every input row was usable;
    exit 2 when the roll is unusable (nothing is run), a source file is unusable (its rules are
    skipped, the others run) or rows were rejected (the rest is run, the flags written, the
    rejected rows written beside them).
    """
    allocator.for_batch()  # before polars loads (engine.allocator says why)
    from .batch import run_files
    from .output import check_format

    check_format(out)  # refuse a bad --out before loading anything
    console = _console()
    with _progress(console, "准备 preparing") as step:
        file_run = run_files(roll, sources_dir, as_of, policy, _split(rule_ids), _split(cadences), step)
        step(f"写入 writing {out.name}")
        rejects = _write_outputs(file_run, [out])
    _report_run(console, file_run, roll, as_of, policy, [out], rejects)
    ctx.exit(_finish(file_run, rejects))


def _write_outputs(file_run: Any, outs: list[Path]) -> Path | None:
    from .output import write_flags, write_rejects

    for out in outs:
        write_flags(file_run.result.flags, out)
    return write_rejects(file_run.rejects, outs[0])


def _report_run(console: Console, file_run: Any, roll: Path, as_of: date, policy: Path | None,
                outs: list[Path], rejects: Path | None) -> None:
    from .rules import RULES

    result, loaded = file_run.result, file_run.loaded
    console.print(f"核对基准日 as of {as_of.isoformat()}    政策 policy: {policy or '默认 contract defaults'}")
    for key, item in loaded.items():
        what = "名册 roll" if key == "roll" else f"{SOURCES[key].zh} {key}"
        rejected = f", {item.rejects.height} 行拒收 rejected" if item.rejects.height else ""
        console.print(f"  {what}: {item.file} — {item.usable_rows} 行可用 usable rows{rejected}")
    if file_run.missing_sources:
        console.print(f"  缺少数据源 missing sources: {', '.join(file_run.missing_sources)}")
    if file_run.unusable_sources:
        console.print(f"  无法使用的数据源 unusable sources (their rules skipped, see the problems): "
                      f"{', '.join(file_run.unusable_sources)}")
    if file_run.unused_sources:
        console.print(f"  未使用 present but not used by the selected rules: {', '.join(file_run.unused_sources)}")

    counts = result.counts()
    skipped = dict(result.skipped)
    table = Table(title=f"规则 rules: {len(result.ran)} 运行 ran, {len(skipped)} 跳过 skipped")
    table.add_column("rule_id")
    table.add_column("规则名称")
    table.add_column("预警 flags", justify="right")
    table.add_column("说明 note")
    for rule_id in [r for r in RULES if r in counts or r in skipped]:  # catalogue order
        rule = RULES[rule_id]
        if rule_id in counts:
            table.add_row(rule_id, rule.label_zh, str(counts[rule_id]), "")
        else:
            table.add_row(rule_id, rule.label_zh, "—", f"跳过 skipped: {skipped[rule_id]}")
    console.print(table)
    for out in outs:
        console.print(f"预警 flags: {result.flags.height} → {out}")
    if rejects is not None:
        console.print(f"拒收行 rejected rows: {file_run.rejects.height} → {rejects}")


def _finish(file_run: Any, rejects: Path | None) -> int:
    """Warnings and row problems on stderr; the exit code."""
    if file_run.warnings:
        shown = file_run.warnings[:WARNINGS_SHOWN]
        _err(f"警告 {len(file_run.warnings)} warning(s) — rows kept (invalid roll IDs are flagged as id_invalid; "
             "a bad optional roll cell is read as empty):")
        _problem_lines(shown, "警告 warning")
        if len(file_run.warnings) > len(shown):
            _err(f"  … {len(file_run.warnings) - len(shown)} more (crosscheck validate lists them all)")
    if not file_run.problems:
        return EXIT_OK
    if file_run.unusable_sources:
        files_named = ", ".join(file_run.unusable_sources)
        _err(f"错误 error: 数据源 {files_named} 的文件无法使用，其规则已跳过，其余已比对 "
             f"(source file(s) {files_named} cannot be used: their rules were skipped, the others ran)")
    if file_run.rejects.height:
        _err(
            f"错误 error: {file_run.rejects.height} 行无法使用，已写入 {rejects}，其余数据已处理 "
            f"({file_run.rejects.height} row(s) could not be used and were written to {rejects}; "
            "the rest was processed):"
        )
    _problem_lines(file_run.problems, "问题 problem")
    return EXIT_INPUT


# ---- rules ----------------------------------------------------------------------------------


def _catalogue_rows() -> list[dict[str, Any]]:
    from .rules import CATALOGUE

    rows = []
    for rule in CATALOGUE:
        joiner = " or " if rule.any_source else " + "
        sources = joiner.join(rule.sources) or "roll"
        if rule.optional_sources:
            sources += f" (+ {', '.join(rule.optional_sources)} if present)"
        rows.append(
            {
                "id": rule.id,
                "label_zh": rule.label_zh,
                "label_en": rule.label_en,
                "cadence": rule.cadence,
                "programs": list(rule.programs) if rule.programs is not None else None,
                "level": rule.level,
                "severity": rule.severity,
                "sources": list(rule.sources),
                "any_source": rule.any_source,
                "optional_sources": list(rule.optional_sources),
                "sources_text": sources,
                "condition": rule.condition,
            }
        )
    return rows


@main.command("rules")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table",
              show_default=True, help="输出格式 output format (markdown is what the README shows).")
def rules_command(fmt: str) -> None:
    """列出规则目录 list the rule catalogue (id, 中文名称, label, cadence, programs, level, severity, sources)."""
    rows = _catalogue_rows()
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    programs = {r["id"]: ", ".join(r["programs"]) if r["programs"] else "all" for r in rows}
    if fmt == "markdown":
        click.echo("| rule_id | 中文名称 | label | cadence | programs | level | severity | sources | fires when |")
        click.echo("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            cells = [f"`{r['id']}`", r["label_zh"], r["label_en"], r["cadence"], programs[r["id"]],
                     r["level"], r["severity"], r["sources_text"], r["condition"]]
            click.echo("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return
    table = Table(title=f"规则目录 rule catalogue ({len(rows)})")
    for header in ("rule_id", "中文名称", "label", "cadence", "programs", "level", "severity", "sources"):
        table.add_column(header)
    for r in rows:
        table.add_row(r["id"], r["label_zh"], r["label_en"], r["cadence"], programs[r["id"]],
                      r["level"], r["severity"], r["sources_text"])
    _console().print(table)


# ---- validate -------------------------------------------------------------------------------


@main.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(["roll", *SOURCES]), default=None,
              help="数据集 dataset of the file: roll or a source key; default: from the file name (hukou.csv → hukou).")
@click.option("--as-of", "as_of", type=ISO_DATE, default=None,
              help="核对基准日 as-of date for ID birth dates, YYYY-MM-DD; default: today.")
@click.pass_context
def validate_command(ctx: click.Context, file: Path, kind: str | None, as_of: date | None) -> None:
    """检查一个输入文件 check one input file; print its problems and warnings.

    Problems (rows that would be rejected, or a file that cannot be used) go to stdout, one per
    line with file, row and column; a one-line summary goes to stderr. Exit 0 when there is no
    problem (warnings such as invalid roll IDs do not count: those rows are kept), 2 otherwise.
    """
    from .batch import RUN_PIECE_BYTES
    from .pieces import load_joined

    if kind is None:
        kind = file.stem.lower()
        if kind not in ("roll", *SOURCES):
            raise click.UsageError(
                f"cannot tell the dataset from the name {file.name!r}; give --kind "
                f"(roll, {', '.join(SOURCES)})"
            )
    try:
        # A piece at a time, keeping only the row numbers: a delivery of any size is checked
        # in the working memory of one piece (engine.pieces), with a whole reading's report.
        loaded = load_joined(file, kind, as_of or date.today(), RUN_PIECE_BYTES, columns=["_row"])
    except InputError as error:
        for problem in error.problems or [Problem(file.name, error.message)]:
            click.echo(f"问题 problem: {problem}")
        _err(f"{file.name}: 文件无法使用 (file cannot be used as {kind})")
        ctx.exit(EXIT_INPUT)
    for problem in loaded.problems:
        click.echo(f"问题 problem: {problem}")
    for warning in loaded.warnings:
        click.echo(f"警告 warning: {warning}")
    _err(
        f"{file.name} ({kind}): {loaded.frame.height} 行可用 usable, {loaded.rejects.height} 行拒收 rejected, "
        f"{len(loaded.problems)} problem(s), {len(loaded.warnings)} warning(s)"
    )
    ctx.exit(EXIT_INPUT if loaded.problems else EXIT_OK)


# ---- demo -----------------------------------------------------------------------------------


@main.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="输出目录 directory for the demo data and flags.")
@click.option("--households", type=click.IntRange(1, 1_000_000), default=300, show_default=True,
              help="家庭数 number of synthetic households.")
@click.option("--seed", type=int, default=0, show_default=True, help="随机种子 seed: same seed, same data.")
def demo_command(out_dir: Path, households: int, seed: int) -> None:
    """演示 generate a synthetic city, run every rule, and show the results.

    Writes the inputs as an office would send them (GBK CSV roll, XLSX and CSV sources, some
    dirty rows), then <out>/flags.xlsx, <out>/flags.csv and the rejected rows beside them.
    The dirty rows are the point of the demo, so it exits 0 although rows were rejected.
    """
    from fixtures.generator import generate
    from fixtures.writing import write

    from .batch import run_files
    from .output import summary

    console = _console()
    with _progress(console, "生成演示数据 generating demo data") as step:
        generated = generate(households, seed=seed)
        paths = write(generated, out_dir, formats="mixed")
        file_run = run_files(paths["roll"], paths["sources"], generated.as_of, paths.get("policy"),
                             on_step=step)
        step("写入 writing flags")
        outs = [out_dir / "flags.xlsx", out_dir / "flags.csv"]
        rejects = _write_outputs(file_run, outs)
    _report_run(console, file_run, paths["roll"], generated.as_of, paths.get("policy"), outs, rejects)

    grouped = summary(file_run.result.flags)
    table = Table(title="按规则和乡镇汇总 flags by rule and township")
    for header, justify in (("rule_id", "left"), ("规则名称", "left"), ("乡镇 township", "left"),
                            ("预警 flags", "right"), ("家庭 households", "right"), ("多发 overpayment", "right")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for rule_id, label, township, count, families, overpayment in grouped.iter_rows():
        table.add_row(rule_id, label or "", township or "", str(count), str(families),
                      "" if overpayment is None else f"{overpayment:,.2f}")
    console.print(table)
    truth = getattr(generated, "truth", None)
    if truth is not None and {"household_id", "rule_id"} <= set(truth.columns):
        # The generator knows which findings it planted: show that the engine finds exactly those.
        ran = list(file_run.result.ran)
        pairs = ["household_id", "rule_id"]
        expected = set(truth.filter(truth["rule_id"].is_in(ran)).select(pairs).iter_rows())
        found = set(file_run.result.flags.select(pairs).iter_rows())
        console.print(
            f"对照预置答案 vs the planted ground truth: {len(found & expected)}/{len(expected)} "
            f"(household, rule) findings found, {len(found - expected)} unexpected"
        )
    if file_run.problems:
        console.print(f"演示数据含有故意的脏数据 the demo data is dirty on purpose: "
                      f"{len(file_run.problems)} problem(s), see {rejects}")
    console.print(f"演示文件 demo files: {out_dir.resolve()}")
    console.print(
        "再次运行 run it yourself: crosscheck run "
        f"--roll {paths['roll']} --sources {paths['sources']} --as-of {generated.as_of.isoformat()} "
        + (f"--policy {paths['policy']} " if paths.get("policy") else "")
        + f"--out {out_dir / 'flags.xlsx'}"
    )


# ---- the store's commands -------------------------------------------------------------------
# ingest, sources, runs, flags, report, schedule, households, db: defined in store/cli.py (which
# never imports this module), added here so that `main` maps their errors like every other's.
from store.cli import register as _register_store_commands  # noqa: E402

_register_store_commands(main)

# serve and users: defined in api/cli.py, imported lazily there (uvicorn only when serving).
from api.cli import register as _register_api_commands  # noqa: E402

_register_api_commands(main)
