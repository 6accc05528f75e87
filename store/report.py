"""report.xlsx of a run: what it found, for people.

Sheets (Chinese headers; engine.output writes the first two exactly as for a file run):
    预警明细   the flags the run found (for a rule the run found unchanged, those of the run that
              last applied it), with their evidence, current status, first-found date
    汇总       per rule and township: flags, households, estimated overpayment
    追缴       overpayment to recover: every flag of the run with an estimate or a confirmed
              recovery, with both amounts, and the total
    处理状态   per rule: how many of its flags are in each status
    比对信息   the run: as-of, trigger, times, the snapshot of each input, rules skipped and why
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from engine.output import check_format, write_flags
from engine.rules import CATALOGUE, RULES
from engine.run import FLAG_COLUMNS
from schemas import PROGRAMS

from . import runs
from .db import Store
from .lifecycle import EVENT_ZH, FOUND, STATUS_ZH
from .models import Flag, FlagEvent

__all__ = ["run_flags", "write_report"]

_OUTCOME_ZH = {"ran": "已运行", "unchanged": "输入未变化（沿用上次结果）", "skipped": "跳过"}


def run_flags(store: Store, run_id: int | None = None) -> tuple[Any, pl.DataFrame]:
    """The run and the flags it found: the engine's flag columns (latest evidence) plus
    flag_id, status, found_as (raised / seen / reopened), first_found, assignee."""
    run, _, rules = runs.get_run(store, run_id)
    source_runs: dict[int, list[str]] = {}
    for rule in rules:
        if rule.outcome == "ran":
            source_runs.setdefault(run.id, []).append(rule.rule_id)
        elif rule.outcome == "unchanged" and rule.same_as_run_id is not None:
            source_runs.setdefault(rule.same_as_run_id, []).append(rule.rule_id)
    records: list[dict[str, Any]] = []
    with store.read() as session:
        for source_run, rule_ids in source_runs.items():
            rows = session.execute(
                sa.select(Flag, FlagEvent.kind)
                .join(FlagEvent, FlagEvent.flag_id == Flag.id)
                .where(FlagEvent.run_id == source_run, FlagEvent.kind.in_(FOUND), Flag.rule_id.in_(rule_ids))
            ).all()
            first = dict(session.execute(
                sa.select(FlagEvent.flag_id, sa.func.min(FlagEvent.at))
                .where(FlagEvent.flag_id.in_([flag.id for flag, _ in rows]), FlagEvent.kind == "raised")
                .group_by(FlagEvent.flag_id)
            ).all()) if rows else {}
            for flag, kind in rows:
                rule = RULES.get(flag.rule_id)
                records.append({
                    **{c: getattr(flag, c) for c in FLAG_COLUMNS if hasattr(Flag, c)},
                    "rule_label_zh": rule.label_zh if rule else None,
                    "rule_label_en": rule.label_en if rule else None,
                    "flag_id": flag.id, "status": flag.status, "found_as": kind,
                    "first_found": first.get(flag.id), "assignee": flag.assignee,
                })
    schema = {**FLAG_COLUMNS, "flag_id": pl.Int64, "status": pl.String, "found_as": pl.String,
              "first_found": pl.Datetime("us", "UTC"), "assignee": pl.String}
    frame = pl.DataFrame(records, schema=schema, orient="row") if records else pl.DataFrame(schema=schema)
    rank = {r.id: i for i, r in enumerate(CATALOGUE)}
    frame = frame.with_columns(pl.col("rule_id").replace_strict(rank, default=len(rank), return_dtype=pl.Int64)
                               .alias("_rank")).sort("_rank", "household_id", "id_number", "program",
                                                     "flag_id").drop("_rank")
    return run, frame


def _recoveries(store: Store, flag_ids: list[int]) -> dict[int, tuple[float | None, str, datetime]]:
    """flag_id → (amount, by, at) of its latest confirmation with action recover."""
    if not flag_ids:
        return {}
    with store.read() as session:
        events = session.scalars(
            sa.select(FlagEvent).where(FlagEvent.flag_id.in_(flag_ids), FlagEvent.kind == "confirmed")
            .order_by(FlagEvent.id)
        ).all()
    return {e.flag_id: ((e.detail or {}).get("amount"), e.by, e.at) for e in events
            if (e.detail or {}).get("action") == "recover"}


def write_report(store: Store, out: Path, run_id: int | None = None, region: str | None = None) -> Path:
    """Write the report of run `run_id` (the latest completed run by default) to `out` (.xlsx);
    with `region`, only the flags whose region_code starts with it (a township's report)."""
    out = Path(out)
    if check_format(out) != ".xlsx":
        from engine.errors import CrosscheckError

        raise CrosscheckError(f"the report is a workbook: write it to a .xlsx file, not {out.name}")
    run, flags = run_flags(store, run_id)
    if region:
        flags = flags.filter(pl.col("region_code").str.starts_with(region))
    _, inputs, rules = runs.get_run(store, run.id)
    status_zh = flags.get_column("status").replace_strict(STATUS_ZH, default=None, return_dtype=pl.String)
    found_zh = flags.get_column("found_as").replace_strict(EVENT_ZH, default=None, return_dtype=pl.String)
    detail = flags.select(*FLAG_COLUMNS).with_columns(
        flags.get_column("flag_id").alias("预警编号"),
        status_zh.alias("处理状态"),
        found_zh.alias("本次比对"),
        flags.get_column("first_found").dt.date().alias("首次发现日期"),
        flags.get_column("assignee").alias("核查人"),
    )
    sheets = {
        "追缴": _recovery_sheet(store, flags),
        "处理状态": _status_sheet(flags),
        "比对信息": _run_sheet(run, inputs, rules, _counts(store, run, region)),
    }
    return write_flags(detail, out, summary_by="township", extra_sheets=sheets, data_sheet=False)


def _recovery_sheet(store: Store, flags: pl.DataFrame) -> pl.DataFrame:
    recover = _recoveries(store, flags.get_column("flag_id").to_list())
    rows = []
    for flag in flags.iter_rows(named=True):
        confirmed = recover.get(flag["flag_id"])
        if flag["overpayment"] is None and confirmed is None:
            continue
        rows.append({
            "预警编号": flag["flag_id"], "规则编号": flag["rule_id"], "规则名称": flag["rule_label_zh"],
            "家庭编号": flag["household_id"], "姓名": flag["name"], "身份证号": flag["id_number"],
            "救助类别": PROGRAMS.get(flag["program"], flag["program"]), "乡镇(街道)代码": (flag["region_code"] or "")[:9],
            "估算多发金额（元）": flag["overpayment"], "确认追缴金额（元）": confirmed[0] if confirmed else None,
            "处理状态": STATUS_ZH.get(flag["status"], flag["status"]),
            "确认人": confirmed[1] if confirmed else None,
            "确认日期": confirmed[2].date() if confirmed else None,
        })
    schema = {"预警编号": pl.Int64, "规则编号": pl.String, "规则名称": pl.String, "家庭编号": pl.String, "姓名": pl.String,
              "身份证号": pl.String, "救助类别": pl.String, "乡镇(街道)代码": pl.String, "估算多发金额（元）": pl.Float64,
              "确认追缴金额（元）": pl.Float64, "处理状态": pl.String, "确认人": pl.String, "确认日期": pl.Date}
    table = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    total = pl.DataFrame({"规则编号": ["合计"],
                          "估算多发金额（元）": [round(float(table["估算多发金额（元）"].fill_null(0).sum()), 2)],
                          "确认追缴金额（元）": [round(float(table["确认追缴金额（元）"].fill_null(0).sum()), 2)]})
    return pl.concat([table, total], how="diagonal_relaxed")


def _status_sheet(flags: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for rule in CATALOGUE:
        of_rule = flags.filter(pl.col("rule_id") == rule.id)
        if of_rule.is_empty():
            continue
        counts = dict(of_rule.group_by("status").len().iter_rows())
        rows.append({"规则编号": rule.id, "规则名称": rule.label_zh, "预警数": of_rule.height,
                     **{STATUS_ZH[s]: counts.get(s, 0) for s in STATUS_ZH}})
    schema = {"规则编号": pl.String, "规则名称": pl.String, "预警数": pl.Int64, **{z: pl.Int64 for z in STATUS_ZH.values()}}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def _counts(store: Store, run: Any, region: str | None) -> dict[str, int]:
    """What the run raised, reopened, saw again and cleared: within `region` when the report is
    narrowed to it (a township's report does not count the others' flags)."""
    if not region:
        return {"raised": run.raised or 0, "reopened": run.reopened or 0, "seen": run.seen or 0,
                "cleared": run.cleared or 0}
    with store.read() as session:
        rows = session.execute(
            sa.select(FlagEvent.kind, sa.func.count()).join(Flag, Flag.id == FlagEvent.flag_id)
            .where(FlagEvent.run_id == run.id, Flag.region_code.startswith(region, autoescape=True))
            .group_by(FlagEvent.kind)).all()
    found = dict(rows)
    return {kind: int(found.get(kind, 0)) for kind in ("raised", "reopened", "seen", "cleared")}


def _run_sheet(run: Any, inputs: list[Any], rules: list[Any], counts: dict[str, int]) -> pl.DataFrame:
    lines: list[tuple[str, str]] = [
        ("比对编号", str(run.id)), ("核对基准日", run.as_of.isoformat()), ("触发方式", run.trigger),
        ("状态", run.status), ("开始时间 (UTC)", f"{run.started_at:%Y-%m-%d %H:%M:%S}"),
        ("结束时间 (UTC)", f"{run.finished_at:%Y-%m-%d %H:%M:%S}" if run.finished_at else ""),
        ("新发现", str(counts["raised"])), ("重新打开", str(counts["reopened"])), ("再次发现", str(counts["seen"])),
        ("自动消除", str(counts["cleared"])),
    ]
    for run_input, snapshot in inputs:
        held = f"#{snapshot.id} {snapshot.snapshot_date} {snapshot.file_name} ({snapshot.rows} 行, {snapshot.rejects} 行拒收)"
        lines.append((f"数据快照 {run_input.key}", held))
    rank = {r.id: i for i, r in enumerate(CATALOGUE)}
    for rule in sorted(rules, key=lambda r: rank.get(r.rule_id, len(rank))):
        text = _OUTCOME_ZH.get(rule.outcome, rule.outcome)
        if rule.reason:
            text += f": {rule.reason}"
        lines.append((f"规则 {rule.rule_id}", text))
    return pl.DataFrame(lines, schema={"项目": pl.String, "内容": pl.String}, orient="row")
