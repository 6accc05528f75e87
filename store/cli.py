"""The `crosscheck` commands that use the store, registered onto engine.cli's `main` group.

    crosscheck ingest KEY FILE --snapshot-date YYYY-MM-DD
    crosscheck sources
    crosscheck runs start|list|show
    crosscheck flags list|show|review
    crosscheck report [--run ID] --out report.xlsx
    crosscheck schedule run-due
    crosscheck households due|review
    crosscheck db upgrade

Every command takes --data-dir and --database-url (over CROSSCHECK_DATA_DIR and
CROSSCHECK_DATABASE_URL). Errors are engine errors (CrosscheckError and its StoreError
branch), which `main` turns into a message and exit 2 in its one place; this module never
imports engine.cli, so either can be imported first.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import click

from engine.params import ISO_DATE
from schemas import CADENCES, SOURCES

__all__ = ["register", "COMMANDS"]

KEYS = ("roll", *SOURCES)
PROBLEMS_SHOWN = 20


# ---- plumbing -------------------------------------------------------------------------------


DATE = ISO_DATE  # the same strict YYYY-MM-DD as the engine's commands


def _store_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option("--database-url", default=None, metavar="URL",
                            help="数据库 SQLAlchemy URL, e.g. postgresql://user@host/db "
                                 "(CROSSCHECK_DATABASE_URL; default: SQLite in the data directory).")(function)
    return click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="数据目录 data directory for snapshots and the SQLite database "
                             "(CROSSCHECK_DATA_DIR; default ./crosscheck-data).")(function)


def _open(data_dir: Path | None, database_url: str | None) -> Any:
    from .db import Store
    from .settings import load_settings

    return Store.open(load_settings(data_dir=data_dir, database_url=database_url))


def _console() -> Any:
    from rich.console import Console

    console = Console(markup=False, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 240
    return console


def _table(title: str, headers: list[str], rows: list[list[Any]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    return table


def _split(values: tuple[str, ...]) -> list[str] | None:
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    return items or None


def _local(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _now(today: date | None) -> datetime:
    """Now, or the end of `today` when a date is given (reproducible listings)."""
    return datetime.now(UTC) if today is None else datetime.combine(today, time(23, 59, 59), UTC)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return os.environ.get("CROSSCHECK_USER") or getpass.getuser()
    except Exception:
        return ""


def _emit(frame: Any, fmt: str, title: str) -> None:
    """A polars frame as a table, JSON or CSV on stdout."""
    if fmt == "json":
        click.echo(json.dumps(frame.to_dicts(), ensure_ascii=False, default=str, indent=1))
    elif fmt == "csv":
        click.echo(frame.write_csv(), nl=False)
    else:
        _console().print(_table(title, frame.columns, [list(r) for r in frame.iter_rows()]))


FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                      show_default=True, help="输出格式 output format.")


# ---- ingest, sources ------------------------------------------------------------------------


@click.command("ingest")
@click.argument("key", type=click.Choice(KEYS))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--snapshot-date", required=True, type=DATE, help="数据截止日 the date the data describes, YYYY-MM-DD.")
@_store_options
@click.pass_context
def ingest_command(ctx: click.Context, key: str, file: Path, snapshot_date: date, data_dir: Path | None,
                   database_url: str | None) -> None:
    """导入数据快照 validate a source file (or the roll: KEY roll) and keep it as a snapshot.

    IDs are normalized once and the usable rows kept as Parquet in the data directory; rejected
    rows go beside it as .rejects.csv and are listed by file, row and column. The same file
    twice is a no-op. Exit 0 when every row was usable, 2 when rows were rejected (the rest is
    kept) or the file cannot be used (nothing is kept).
    """
    from .snapshots import ingest

    with _open(data_dir, database_url) as store:
        done = ingest(store, key, file, snapshot_date)
    s = done.snapshot
    if not done.new:
        click.echo(f"已存在，未重复导入 already held: snapshot #{s.id} {s.key} {s.snapshot_date} ({s.file_name}, "
                   f"{s.rows} rows, {s.rejects} rejected); nothing done")
        return
    click.echo(f"快照 snapshot #{s.id} {s.key} {s.snapshot_date}: {s.rows} 行可用 usable, {s.rejects} 行拒收 rejected"
               f" ← {file.name}")
    if done.warnings:
        click.echo(f"警告 {len(done.warnings)} warning(s) — rows kept:", err=True)
        for problem in done.warnings[:PROBLEMS_SHOWN]:
            click.echo(f"  警告 warning: {problem}", err=True)
    if done.problems:
        click.echo(f"错误 error: {s.rejects} 行无法使用，已写入 {done.rejects_file} "
                   f"({s.rejects} row(s) could not be used; written to {done.rejects_file}):", err=True)
        for problem in done.problems[:PROBLEMS_SHOWN]:
            click.echo(f"  问题 problem: {problem}", err=True)
        if len(done.problems) > PROBLEMS_SHOWN:
            click.echo(f"  … {len(done.problems) - PROBLEMS_SHOWN} more in {done.rejects_file}", err=True)
        ctx.exit(2)


@click.command("sources")
@click.option("--today", type=DATE, default=None, help="按此日期计算数据新旧 judge ages as of this date (default today).")
@FORMAT
@_store_options
def sources_command(today: date | None, fmt: str, data_dir: Path | None, database_url: str | None) -> None:
    """列出数据快照 what is held per source: latest snapshot, its age and whether it is stale for
    the source's cadence (monthly 31 days, quarterly 92, semiannual 184, annual 366)."""
    from .snapshots import held

    with _open(data_dir, database_url) as store:
        frame = held(store, today or date.today())
    if fmt != "table":
        _emit(frame, fmt, "")
        return
    state_zh = {"current": "正常 current", "stale": "已过期 stale", "missing": "缺失 missing"}
    rows = [[r["key"], r["zh"], r["cadence"], r["snapshot_id"], r["snapshot_date"], _local(r["received_at"]), r["rows"],
             r["rejects"], r["age_days"], state_zh[r["state"]], r["snapshots"]] for r in frame.iter_rows(named=True)]
    _console().print(_table("数据快照 snapshots held", ["key", "名称", "cadence", "#", "snapshot date", "received",
                                                        "rows", "rejected", "age (days)", "state", "held"], rows))


# ---- runs -----------------------------------------------------------------------------------


@click.group("runs")
def runs_group() -> None:
    """比对记录 start a run over the latest snapshots, list runs, show one."""


def _print_run(store: Any, run_id: int) -> None:
    from engine.rules import CATALOGUE, RULES

    from .runs import get_run

    run, inputs, rules = get_run(store, run_id)
    console = _console()
    seconds = f"{(run.finished_at - run.started_at).total_seconds():.1f} s" if run.finished_at else ""
    console.print(f"比对 run {run.id}: {run.status}, trigger {run.trigger}, as of {run.as_of}, started "
                  f"{_local(run.started_at)} {seconds}")
    if run.error:
        console.print(f"  错误 error: {run.error}")
    for run_input, snapshot in inputs:
        console.print(f"  {run_input.key}: snapshot #{snapshot.id} of {snapshot.snapshot_date} ({snapshot.file_name}, "
                      f"{snapshot.rows} rows)")
    rank = {r.id: i for i, r in enumerate(CATALOGUE)}
    rows = [[r.rule_id, RULES[r.rule_id].label_zh if r.rule_id in RULES else "", r.outcome,
             "" if r.flags is None else r.flags, r.reason or ""]
            for r in sorted(rules, key=lambda r: rank.get(r.rule_id, len(rank)))]
    console.print(_table("规则 rules", ["rule_id", "规则名称", "outcome", "flags", "note"], rows))
    if run.status == "completed":
        console.print(f"预警 findings {run.found}: 新发现 raised {run.raised}, 重新打开 reopened {run.reopened} "
                      f"(new alerts {(run.raised or 0) + (run.reopened or 0)}); 再次发现 seen {run.seen}; "
                      f"自动消除 cleared {run.cleared}")


@runs_group.command("start")
@click.option("--as-of", "as_of", type=DATE, default=None, help="核对基准日 as-of date (default today).")
@click.option("--rules", "rule_ids", multiple=True, metavar="ID,ID…", help="只运行这些规则 only these rules.")
@click.option("--cadence", "cadences", multiple=True, metavar="CADENCE,…",
              help=f"只运行这些周期的规则 only rules of these cadences: {', '.join(CADENCES)}.")
@click.option("--policy", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="地方政策 policy TOML (default CROSSCHECK_POLICY, else the contract's defaults).")
@click.option("--engine", type=click.Choice(["polars", "spark"]), default=None,
              help="计算引擎 where the rules run: polars on this machine, or Spark (pip install -e '.[spark]'; "
                   "local mode, or the cluster spark-defaults.conf names). Default CROSSCHECK_ENGINE, else polars.")
@_store_options
def runs_start(as_of: date | None, rule_ids: tuple[str, ...], cadences: tuple[str, ...], policy: Path | None,
               engine: str | None, data_dir: Path | None, database_url: str | None) -> None:
    """运行比对 run the rules over the latest snapshots and record the run and its flags.

    Rules whose inputs are exactly those of the run that last applied them are reported as
    unchanged and change nothing; rules whose source has no snapshot are skipped.
    """
    from .runs import start_run

    with _open(data_dir, database_url) as store:
        outcome = start_run(store, as_of or date.today(), "cli", _split(rule_ids), _split(cadences), policy,
                            engine=engine)
        _print_run(store, outcome.run_id)


@runs_group.command("list")
@click.option("--limit", type=click.IntRange(1), default=30, show_default=True, help="最多显示 show at most this many.")
@FORMAT
@_store_options
def runs_list(limit: int, fmt: str, data_dir: Path | None, database_url: str | None) -> None:
    """列出比对 recent runs, newest first: status, as-of, rules ran / unchanged / skipped, counts."""
    from .runs import list_runs

    with _open(data_dir, database_url) as store:
        frame = list_runs(store, limit)
    if fmt != "table":
        _emit(frame, fmt, "")
        return
    rows = [[r["id"], r["trigger"], r["status"], r["as_of"], _local(r["started_at"]),
             "" if r["seconds"] is None else f"{r['seconds']:.1f}", r["ran"], r["unchanged"], r["skipped"], r["found"],
             r["raised"], r["reopened"], r["seen"], r["cleared"]] for r in frame.iter_rows(named=True)]
    _console().print(_table("比对记录 runs", ["run", "trigger", "status", "as of", "started", "s", "ran", "unchanged",
                                              "skipped", "found", "raised", "reopened", "seen", "cleared"], rows))


@runs_group.command("show")
@click.argument("run_id", type=int, required=False)
@_store_options
def runs_show(run_id: int | None, data_dir: Path | None, database_url: str | None) -> None:
    """查看比对 one run (default: the latest completed): inputs, rules, counts."""
    from .runs import get_run

    with _open(data_dir, database_url) as store:
        run, _, _ = get_run(store, run_id)
        _print_run(store, run.id)


# ---- flags ----------------------------------------------------------------------------------


@click.group("flags")
def flags_group() -> None:
    """预警 list flags, show one with its history, record a review."""


@flags_group.command("list")
@click.option("--region", default=None, metavar="PREFIX", help="行政区划代码前缀 region code prefix (e.g. a township).")
@click.option("--rule", "rule_ids", multiple=True, metavar="ID,…", help="规则 rule ids.")
@click.option("--status", "statuses", multiple=True, metavar="STATUS,…",
              help="状态 open, assigned, visited, confirmed, dismissed, appealed, resolved, cleared.")
@click.option("--severity", "severities", multiple=True, metavar="LEVEL,…", help="严重程度 high, medium, low.")
@click.option("--household", default=None, help="家庭编号 one household.")
@click.option("--overdue", is_flag=True, help="只列超期 only flags needing a person that are open longer than "
                                                "CROSSCHECK_OVERDUE_DAYS (or --overdue-days).")
@click.option("--overdue-days", type=click.IntRange(0), default=None, help="超期天数 override CROSSCHECK_OVERDUE_DAYS.")
@click.option("--today", type=DATE, default=None, help="按此日期计算超期 judge overdue as of this date.")
@click.option("--run", "run_id", type=click.IntRange(1), default=None,
              help="只列该次比对发现的 only what this run found (a batch's: its run id).")
@click.option("--limit", type=click.IntRange(1), default=200, show_default=True, help="最多显示 show at most this many.")
@FORMAT
@_store_options
def flags_list(region: str | None, rule_ids: tuple[str, ...], statuses: tuple[str, ...], severities: tuple[str, ...],
               household: str | None, overdue: bool, overdue_days: int | None, today: date | None, run_id: int | None,
               limit: int, fmt: str, data_dir: Path | None, database_url: str | None) -> None:
    """列出预警 flags by severity, oldest first; `overdue` marks those open too long."""
    from .flags import FlagFilter, count_flags, list_flags
    from .lifecycle import STATUS_ZH

    with _open(data_dir, database_url) as store:
        days = store.settings.overdue_days if overdue_days is None else overdue_days
        flt = FlagFilter(region, _split(rule_ids), _split(statuses), _split(severities), household,
                         days if overdue else None, run=run_id)
        now = _now(today)
        with store.read() as session:
            total = count_flags(session, flt, now)
            frame = list_flags(session, flt, now, days, limit)
    if fmt != "table":
        _emit(frame, fmt, "")
        return
    rows = [[r["id"], r["rule_id"], STATUS_ZH[r["status"]] + " " + r["status"], r["severity"], r["program"],
             r["household_id"], r["name"], r["id_number"], r["region_code"], _local(r["opened_at"]), r["days_open"],
             "超期 overdue" if r["overdue"] else "", r["assignee"]] for r in frame.iter_rows(named=True)]
    _console().print(_table(f"预警 flags: {total}" + (f" (showing {frame.height})" if total > frame.height else ""),
                            ["flag", "rule_id", "status", "severity", "program", "household", "name", "id_number",
                             "region", "opened", "days", "", "assignee"], rows))


@flags_group.command("show")
@click.argument("flag_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="输出格式 output format.")
@_store_options
def flags_show(flag_id: int, fmt: str, data_dir: Path | None, database_url: str | None) -> None:
    """查看预警 one flag: the finding, its evidence and its full history."""
    from .flags import get_flag
    from .lifecycle import EVENT_ZH, STATUS_ZH

    with _open(data_dir, database_url) as store, store.read() as session:
        flag, events, status = get_flag(session, flag_id)
    if fmt == "json":
        fields = {c: getattr(flag, c) for c in ("id", "key", "rule_id", "household_id", "program", "person",
                                                "identity", "severity", "id_number", "name", "region_code",
                                                "overpayment", "as_of", "assignee", "opened_at")}
        fields.update(status=status, evidence=json.loads(flag.evidence),
                      events=[{"kind": e.kind, "at": e.at, "by": e.by, "run_id": e.run_id, "detail": e.detail}
                              for e in events])
        click.echo(json.dumps(fields, ensure_ascii=False, default=str, indent=1))
        return
    console = _console()
    console.print(f"预警 flag {flag.id}: {flag.rule_id} — {STATUS_ZH[status]} ({status}), severity {flag.severity}")
    console.print(f"  家庭 household {flag.household_id}, {flag.program}; {flag.name} {flag.id_number}; "
                  f"region {flag.region_code}; opened {_local(flag.opened_at)}"
                  + (f"; assigned to {flag.assignee}" if flag.assignee else ""))
    if flag.identity:
        console.print(f"  标识 identifying evidence: {json.dumps(flag.identity, ensure_ascii=False)}")
    if flag.overpayment is not None:
        console.print(f"  估算多发 estimated overpayment: {flag.overpayment:,.2f} 元 (as of {flag.as_of})")
    console.print(f"  证据 evidence: {json.dumps(json.loads(flag.evidence), ensure_ascii=False)}")
    rows = [[_local(e.at), f"{EVENT_ZH[e.kind]} {e.kind}", e.by, e.run_id or "",
             _shown(e.detail)] for e in events]
    console.print(_table("处理记录 history", ["when", "event", "by", "run", "detail"], rows))


def _shown(detail: dict[str, Any] | None) -> str:
    """An event's detail for a table: the evidence itself is shown above, once."""
    rest = {k: v for k, v in (detail or {}).items() if k not in ("evidence", "previous_fingerprint")}
    return json.dumps(rest, ensure_ascii=False) if rest else ""


@flags_group.command("review")
@click.argument("flag_id", type=int)
@click.argument("action", type=click.Choice(["assign", "visit", "confirm", "dismiss", "appeal", "resolve", "reopen"]))
@click.option("--by", default=None, help="操作人 who (default CROSSCHECK_USER, else the login name).")
@click.option("--to", default=None, help="assign: 核查人 the caseworker.")
@click.option("--income", default=None, help="visit: 核实月收入 verified monthly income, yuan.")
@click.option("--expenditure", default=None, help="visit: 核实月支出 verified monthly expenditure, yuan.")
@click.option("--living", default=None, help="visit: 居住生活状况 living conditions seen.")
@click.option("--action", "confirm_action", type=click.Choice(["stop", "reduce", "recover"]), default=None,
              help="confirm: 处理方式 stop (停发), reduce (减发) or recover (追缴).")
@click.option("--amount", default=None, help="confirm/resolve: 金额 amount in yuan (recover: default the estimate).")
@click.option("--reason", default=None, help="dismiss/reopen: 理由 the reason.")
@click.option("--note", default=None, help="说明 free text.")
@_store_options
def flags_review(flag_id: int, action: str, by: str | None, to: str | None, income: str | None,
                 expenditure: str | None, living: str | None, confirm_action: str | None, amount: str | None,
                 reason: str | None, note: str | None, data_dir: Path | None, database_url: str | None) -> None:
    """记录核查 record a review of a flag: assign, visit (三核查), confirm, dismiss, appeal,
    resolve or reopen. Only what the flag's status allows is accepted (exit 2 otherwise)."""
    from .lifecycle import EVENT_ZH, STATUS_ZH, review
    from .models import Flag, utcnow

    with _open(data_dir, database_url) as store, store.write(lock=f"review of flag {flag_id}") as session:
        event = review(session, flag_id, action, _who(by), utcnow(), to=to, income=income, expenditure=expenditure,
                       living=living, action=confirm_action, amount=amount, reason=reason, note=note)
        status = session.get(Flag, flag_id).status
    click.echo(f"预警 flag {flag_id}: {EVENT_ZH[event.kind]} {event.kind} by {event.by} → "
               f"{STATUS_ZH[status]} ({status})")


# ---- report, schedule, households, db ---------------------------------------------------------


@click.command("report")
@click.option("--run", "run_id", type=int, default=None, help="比对编号 run id (default: the latest completed run).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="输出 report .xlsx.")
@_store_options
def report_command(run_id: int | None, out: Path, data_dir: Path | None, database_url: str | None) -> None:
    """比对报告 write a run's report.xlsx: flags with evidence and status, summary by rule and
    township, overpayment to recover, status counts, the run's inputs (Chinese headers)."""
    from .report import write_report

    with _open(data_dir, database_url) as store:
        path = write_report(store, out, run_id)
    click.echo(f"报告 report → {path}")


@click.group("schedule")
def schedule_group() -> None:
    """定时比对 run what is due (for cron or a systemd timer)."""


@schedule_group.command("run-due")
@click.option("--today", type=DATE, default=None, help="按此日期判断 decide as of this date (default today).")
@click.option("--as-of", "as_of", type=DATE, default=None, help="核对基准日 of the run (default: --today).")
@click.option("--dry-run", is_flag=True, help="只显示 only show what is due; run nothing.")
@_store_options
def schedule_run_due(today: date | None, as_of: date | None, dry_run: bool, data_dir: Path | None,
                     database_url: str | None) -> None:
    """运行到期规则 the nightly job: run every rule whose cadence period has come round (on the
    configured day, CROSSCHECK_DAY_<CADENCE>) or whose inputs have a newer snapshot; print what
    ran, what was skipped and why."""
    from .schedule import run_due

    with _open(data_dir, database_url) as store:
        decisions, outcome = run_due(store, today, as_of or today, dry_run)
        rows = [[d.rule_id, d.cadence, "到期 due" if d.due else "—", d.last_run_id or "", d.last_as_of or "",
                 "; ".join(d.reasons)] for d in decisions]
        _console().print(_table("到期规则 due rules", ["rule_id", "cadence", "due", "last run", "last as of", "why"], rows))
        if outcome is not None:
            _print_run(store, outcome.run_id)
        elif dry_run:
            click.echo(f"试运行 dry run: {sum(d.due for d in decisions)} rule(s) due, nothing run")
        else:
            click.echo("没有到期规则 nothing is due; no run")


@click.group("households")
def households_group() -> None:
    """家庭动态管理 household review dates and households due for re-review."""


@households_group.command("due")
@click.option("--today", type=DATE, default=None, help="按此日期判断 as of this date (default today).")
@click.option("--within", type=click.IntRange(0), default=None,
              help="天内到期 also list reviews due within this many days (CROSSCHECK_REVIEW_WITHIN_DAYS, 30).")
@click.option("--region", default=None, metavar="PREFIX", help="行政区划代码前缀 region code prefix.")
@FORMAT
@_store_options
def households_due(today: date | None, within: int | None, region: str | None, fmt: str, data_dir: Path | None,
                   database_url: str | None) -> None:
    """到期复核家庭 households of the latest roll due or overdue for re-review: yearly, every six
    months where a member declares income (CROSSCHECK_REVIEW_MONTHS[_INCOME])."""
    from .households import due

    with _open(data_dir, database_url) as store:
        frame = due(store, today or date.today(), within, region)
    if fmt != "table":
        _emit(frame, fmt, "")
        return
    state_zh = {"overdue": "已超期 overdue", "due": "即将到期 due"}
    rows = [[r["household_id"], r["region_code"], r["programs"], r["members"], "是" if r["declares_income"] else "",
             r["last_reviewed"] or "从未 never", r["basis"] or "", r["interval_months"], r["due_on"] or "",
             state_zh[r["state"]]] for r in frame.iter_rows(named=True)]
    _console().print(_table(f"到期复核家庭 households due: {frame.height}",
                            ["household", "region", "programs", "members", "income", "last review", "from",
                             "every (months)", "due on", "state"], rows))


@households_group.command("review")
@click.argument("household_id")
@click.option("--on", "reviewed_on", type=DATE, required=True, help="复核日期 date of the review.")
@click.option("--by", default=None, help="复核人 who (default CROSSCHECK_USER, else the login name).")
@click.option("--note", default=None, help="说明 free text.")
@_store_options
def households_review(household_id: str, reviewed_on: date, by: str | None, note: str | None, data_dir: Path | None,
                      database_url: str | None) -> None:
    """记录复核 record that a household was re-reviewed on a date."""
    from .households import record_review

    with _open(data_dir, database_url) as store:
        review = record_review(store, household_id, reviewed_on, _who(by), note)
    click.echo(f"家庭 household {review.household_id}: reviewed {review.reviewed_on} by {review.by}")


@click.group("db")
def db_group() -> None:
    """数据库 the store's schema."""


@db_group.command("upgrade")
@_store_options
def db_upgrade(data_dir: Path | None, database_url: str | None) -> None:
    """升级数据库 apply the schema migrations the store lacks (also done on first use)."""
    from .db import Store, upgrade
    from .settings import load_settings

    with Store.open(load_settings(data_dir=data_dir, database_url=database_url), migrate=False) as store:
        before, now = upgrade(store)
        label = store.label
    click.echo(f"{label}: " + (f"at revision {now}, nothing to do" if before == now
                               else f"upgraded {before or 'empty'} → {now}"))


COMMANDS = (ingest_command, sources_command, runs_group, flags_group, report_command, schedule_group,
            households_group, db_group)


def register(group: click.Group) -> None:
    """Add the store's commands to `group` (engine.cli's `main`)."""
    for command in COMMANDS:
        group.add_command(command)
