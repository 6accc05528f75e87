"""主管看板: where the flags of the user's region concentrate (township × rule), the reviews that
are overdue, the overpayment to recover, and the flags each run found over time (an SVG drawn
here, no chart library). Also the run reports (store.report) for the user's region."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine.errors import AccessDenied, StoreError
from engine.rules import CATALOGUE
from store.lifecycle import FOUND, NEEDS_PERSON, overdue_before
from store.models import Flag, FlagEvent, Run, utcnow

from .. import access
from ..deps import AppState, Principal
from ..schemas import RowId
from .render import PageRoute, local_time, page, xlsx_download
from .session import PageUser, need

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TOWNSHIP = 9
RUNS_CHARTED = 24


def _state(request: Request) -> AppState:
    return request.app.state.crosscheck  # type: ignore[no-any-return]


def _in_region(region: str) -> Any:
    return Flag.region_code.startswith(region, autoescape=True)


def concentration(state: AppState, region: str) -> dict[str, Any]:
    """Open flags (needing a person) by township and rule, townships with the most first."""
    township = sa.func.substr(Flag.region_code, 1, TOWNSHIP)
    with state.store.read() as session:
        rows = session.execute(
            sa.select(township, Flag.rule_id, sa.func.count(Flag.id))
            .where(_in_region(region), Flag.status.in_(NEEDS_PERSON)).group_by(township, Flag.rule_id)
        ).all()
    cells: dict[str, dict[str, int]] = defaultdict(dict)
    for code, rule_id, count in rows:
        cells[code][rule_id] = count
    rules = [r for r in CATALOGUE if any(r.id in by_rule for by_rule in cells.values())]
    totals = {code: sum(by_rule.values()) for code, by_rule in cells.items()}
    townships = sorted(cells, key=lambda code: (-totals[code], code))
    peak = max((n for by_rule in cells.values() for n in by_rule.values()), default=0)
    return {"rules": rules, "townships": townships, "cells": cells, "totals": totals, "peak": peak,
            "rule_totals": {r.id: sum(cells[t].get(r.id, 0) for t in townships) for r in rules},
            "total": sum(totals.values())}


def overdue(state: AppState, region: str, days: int, limit: int = 15) -> dict[str, Any]:
    now = utcnow()
    where = (_in_region(region), Flag.status.in_(NEEDS_PERSON), Flag.opened_at < overdue_before(now, days))
    township = sa.func.substr(Flag.region_code, 1, TOWNSHIP)
    with state.store.read() as session:
        by_township = session.execute(sa.select(township, sa.func.count(Flag.id)).where(*where)
                                      .group_by(township).order_by(sa.func.count(Flag.id).desc(), township)).all()
        oldest = session.scalars(sa.select(Flag).where(*where).order_by(Flag.opened_at, Flag.id).limit(limit)).all()
    return {"days": days, "by_township": by_township, "total": sum(n for _, n in by_township),
            "oldest": [{"flag": f, "days_open": (now - f.opened_at).days} for f in oldest]}


def overpayment(state: AppState, region: str) -> dict[str, Any]:
    """Estimated overpayment of flags still to be reviewed, and the amounts confirmed for
    recovery (confirmed with action recover, not yet resolved), by township."""
    township = sa.func.substr(Flag.region_code, 1, TOWNSHIP)
    with state.store.read() as session:
        estimate = session.execute(
            sa.select(township, sa.func.sum(Flag.overpayment), sa.func.count(Flag.id))
            .where(_in_region(region), Flag.status.in_(NEEDS_PERSON), Flag.overpayment.is_not(None))
            .group_by(township)
        ).all()
        confirmations = session.execute(
            sa.select(Flag.id, Flag.region_code, Flag.overpayment, FlagEvent.detail)
            .join(FlagEvent, FlagEvent.flag_id == Flag.id)
            .where(_in_region(region), Flag.status == "confirmed", FlagEvent.kind == "confirmed")
            .order_by(FlagEvent.id)
        ).all()
    latest: dict[int, tuple[str, Any]] = {}
    for flag_id, code, _, detail in confirmations:  # the latest confirmation of each flag decides
        latest[flag_id] = (code, detail or {})
    table: dict[str, dict[str, float]] = defaultdict(lambda: {"estimate": 0.0, "flags": 0, "recover": 0.0,
                                                             "recover_flags": 0})
    for code, amount, count in estimate:
        table[code]["estimate"] += float(amount or 0)
        table[code]["flags"] += count
    for code, detail in latest.values():
        if detail.get("action") == "recover":
            table[(code or "")[:TOWNSHIP]]["recover"] += float(detail.get("amount") or 0)
            table[(code or "")[:TOWNSHIP]]["recover_flags"] += 1
    rows = sorted(table.items(), key=lambda item: (-(item[1]["recover"] + item[1]["estimate"]), item[0]))
    return {"rows": rows, "estimate": sum(v["estimate"] for v in table.values()),
            "recover": sum(v["recover"] for v in table.values())}


def events_by_run(state: AppState, region: str) -> dict[int, dict[str, int]]:
    """{run id: {event kind: count}} of the runs' events on flags within `region` (what a run
    found there, and cleared): the region's own numbers, never the whole city's."""
    with state.store.read() as session:
        counts = session.execute(
            sa.select(FlagEvent.run_id, FlagEvent.kind, sa.func.count(FlagEvent.id))
            .join(Flag, Flag.id == FlagEvent.flag_id)
            .where(_in_region(region), FlagEvent.kind.in_((*FOUND, "cleared")), FlagEvent.run_id.is_not(None))
            .group_by(FlagEvent.run_id, FlagEvent.kind)
        ).all()
    by_run: dict[int, dict[str, int]] = defaultdict(dict)
    for run_id, kind, count in counts:
        by_run[run_id][kind] = count
    return by_run


def runs_chart(state: AppState, by_run: dict[int, dict[str, int]], width: int = 960,
               height: int = 260) -> dict[str, Any]:
    """Flags each run found (新发现: raised or reopened; 再次发现: seen), the last RUNS_CHARTED
    runs that found any, as bar geometry for the SVG."""
    ids = sorted(i for i, kinds in by_run.items() if any(kinds.get(k) for k in FOUND))[-RUNS_CHARTED:]
    with state.store.read() as session:
        runs = {r.id: r for r in session.scalars(sa.select(Run).where(Run.id.in_(ids)))}
    left, right, top, bottom = 48, 12, 16, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((sum(by_run[i].get(k, 0) for k in FOUND) for i in ids), default=0)
    scale_max = max(_nice(peak), 1)
    slot = plot_w / max(len(ids), 1)
    bar_w = max(min(slot * 0.6, 48), 4)
    bars = []
    for n, run_id in enumerate(ids):
        new = by_run[run_id].get("raised", 0) + by_run[run_id].get("reopened", 0)
        again = by_run[run_id].get("seen", 0)
        x = left + slot * n + (slot - bar_w) / 2
        h_new, h_again = plot_h * new / scale_max, plot_h * again / scale_max
        run = runs.get(run_id)
        day = local_time(run.started_at, with_time=False) if run else ""
        bars.append({"run_id": run_id, "new": new, "again": again, "x": round(x, 1), "w": round(bar_w, 1),
                     "y_new": round(top + plot_h - h_new, 1), "h_new": round(h_new, 1),
                     "y_again": round(top + plot_h - h_new - h_again, 1), "h_again": round(h_again, 1),
                     "label_x": round(x + bar_w / 2, 1), "day": day[5:], "date": day,
                     "trigger": run.trigger if run else "", "as_of": run.as_of if run else None})
    ticks = [{"value": v, "y": round(top + plot_h - plot_h * v / scale_max, 1)}
             for v in sorted({0, scale_max // 2, scale_max})]
    return {"bars": bars, "ticks": ticks, "width": width, "height": height, "left": left, "right": width - right,
            "top": top, "bottom": top + plot_h}


def _nice(value: int) -> int:
    """The smallest 1-2-5 × 10^k at or above `value` (an axis maximum people read at once)."""
    if value <= 0:
        return 0
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def due_households(state: AppState, region: str, limit: int = 10) -> dict[str, Any] | None:
    """Households overdue for their periodic re-review (动态管理), when a roll snapshot is held."""
    from store.households import due

    try:
        frame = due(state.store, date.today(), within_days=0, region=region)
    except StoreError:
        return None
    late = frame.filter(frame["state"] == "overdue")
    return {"total": late.height, "rows": late.head(limit).to_dicts()}


def recent_runs(state: AppState, by_run: dict[int, dict[str, int]], limit: int = 8) -> list[dict[str, Any]]:
    """The latest completed runs with what they found and cleared within the region: the runs of
    the roll, and batches and stored checks that touched the region (another township's upload
    is not the user's to see, nor to push theirs off the list)."""
    from store.schedule import PARTIAL_TRIGGERS

    mine = Run.trigger.not_in(PARTIAL_TRIGGERS) | Run.id.in_(list(by_run))
    with state.store.read() as session:
        runs = session.scalars(sa.select(Run).where(Run.status == "completed", mine)
                               .order_by(Run.id.desc()).limit(limit))
        return [{"run": run, "found": sum(by_run.get(run.id, {}).get(k, 0) for k in FOUND),
                 "new": by_run.get(run.id, {}).get("raised", 0) + by_run.get(run.id, {}).get("reopened", 0),
                 "cleared": by_run.get(run.id, {}).get("cleared", 0)} for run in runs]


def may_download_report(user: Principal) -> bool:
    # The report names people in full: for the roles that see IDs in full (not an auditor).
    return access.allowed(user.role, "runs:read") and access.sees_full_ids(user.role)


@router.get("/dashboard")
def dashboard(request: Request, user: PageUser) -> Response:
    need(user, "flags:read")
    state = _state(request)
    by_run = events_by_run(state, user.region)
    return page(request, user, "dashboard.html", heat=concentration(state, user.region),
                late=overdue(state, user.region, state.settings.overdue_days), money=overpayment(state, user.region),
                chart=runs_chart(state, by_run), due=due_households(state, user.region),
                runs=recent_runs(state, by_run) if access.allowed(user.role, "runs:read") else [],
                reports=may_download_report(user))


@router.get("/runs/{run_id}/report.xlsx")
def run_report(request: Request, user: PageUser, run_id: RowId) -> Response:
    """report.xlsx of a run (store.report), narrowed to the user's region."""
    need(user, "runs:read")
    if not may_download_report(user):
        raise AccessDenied("比对报告含完整身份证号，审计角色请使用预警列表下载 (the report names people in full)")
    from store.report import write_report

    state = _state(request)
    return xlsx_download(state.settings.data_dir,
                         lambda path: write_report(state.store, path, run_id, region=user.region),
                         f"比对报告-{run_id}-{user.region}.xlsx")
