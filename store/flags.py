"""Reading flags: filtered lists (region prefix, rule, status, severity, overdue) and one flag
with its history. Writing them is store.lifecycle's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine.errors import NotFound, SelectionError
from engine.rules import RULES
from schemas import PROGRAMS

from .lifecycle import FOUND, NEEDS_PERSON, STATUS_ZH, derive_status, overdue_before
from .models import Flag, FlagEvent

__all__ = ["FlagFilter", "flag_query", "list_flags", "count_flags", "get_flag", "LIST_COLUMNS"]

SEVERITIES = ("high", "medium", "low")
LIST_COLUMNS = ("id", "rule_id", "status", "severity", "program", "household_id", "name", "id_number",
                "region_code", "opened_at", "days_open", "overdue", "assignee", "overpayment", "last_run_id")


@dataclass
class FlagFilter:
    region: str | None = None  # region_code prefix
    rules: list[str] | None = None
    statuses: list[str] | None = None
    severities: list[str] | None = None
    household: str | None = None
    overdue_days: int | None = None  # only flags needing a person opened longer ago than this
    programs: list[str] | None = None
    since: datetime | None = None  # changed (status_at) at or after
    run: int | None = None  # only what this run found: raised, seen again or reopened by it (a batch's run)

    def check(self) -> None:
        bad = [r for r in self.rules or [] if r not in RULES]
        if bad:
            raise SelectionError(f"unknown rule {', '.join(bad)}; known rules: {', '.join(RULES)}")
        bad = [s for s in self.statuses or [] if s not in STATUS_ZH]
        if bad:
            raise SelectionError(f"unknown status {', '.join(bad)}; known: {', '.join(STATUS_ZH)}")
        bad = [s for s in self.severities or [] if s not in SEVERITIES]
        if bad:
            raise SelectionError(f"unknown severity {', '.join(bad)}; known: {', '.join(SEVERITIES)}")
        bad = [p for p in self.programs or [] if p not in PROGRAMS]
        if bad:
            raise SelectionError(f"unknown program {', '.join(bad)}; known: {', '.join(PROGRAMS)}")
        if self.region is not None and not self.region.isdigit():
            raise SelectionError(f"--region is a region code prefix of digits, not {self.region!r}")


def _where(query: sa.Select, flt: FlagFilter, now: datetime) -> sa.Select:
    flt.check()
    if flt.region:
        query = query.where(Flag.region_code.startswith(flt.region, autoescape=True))
    if flt.rules:
        query = query.where(Flag.rule_id.in_(flt.rules))
    if flt.statuses:
        query = query.where(Flag.status.in_(flt.statuses))
    if flt.severities:
        query = query.where(Flag.severity.in_(flt.severities))
    if flt.household:
        query = query.where(Flag.household_id == flt.household)
    if flt.programs:
        query = query.where(Flag.program.in_(flt.programs))
    if flt.since is not None:
        query = query.where(Flag.status_at >= flt.since)
    if flt.overdue_days is not None:
        query = query.where(Flag.status.in_(NEEDS_PERSON), Flag.opened_at < overdue_before(now, flt.overdue_days))
    if flt.run is not None:
        # By the run's events, not Flag.last_run_id: a later run that finds a flag again moves
        # that on, and a batch's flags are still the batch's.
        found = sa.select(FlagEvent.flag_id).where(FlagEvent.run_id == flt.run, FlagEvent.kind.in_(FOUND))
        query = query.where(Flag.id.in_(found))
    return query


def flag_query(flt: FlagFilter, now: datetime) -> sa.Select:
    """SELECT of the Flag rows matching `flt` (checked first: SelectionError)."""
    return _where(sa.select(Flag), flt, now)


def count_flags(session: Session, flt: FlagFilter, now: datetime) -> int:
    return session.execute(_where(sa.select(sa.func.count(Flag.id)), flt, now)).scalar_one()


def list_flags(session: Session, flt: FlagFilter, now: datetime, overdue_days: int,
               limit: int | None = None) -> pl.DataFrame:
    """Matching flags, oldest open first within severity; `overdue` per `overdue_days`."""
    rank = sa.case({"high": 0, "medium": 1, "low": 2}, value=Flag.severity, else_=3)
    query = _where(
        sa.select(Flag.id, Flag.rule_id, Flag.status, Flag.severity, Flag.program, Flag.household_id, Flag.name,
                  Flag.id_number, Flag.region_code, Flag.opened_at, Flag.assignee, Flag.overpayment,
                  Flag.last_run_id),
        flt,
        now,
    ).order_by(rank, Flag.opened_at, Flag.id)
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query).all()
    cutoff = overdue_before(now, overdue_days)
    records = [
        {
            **row._asdict(),
            "days_open": (now - row.opened_at).days,
            "overdue": row.status in NEEDS_PERSON and row.opened_at < cutoff,
        }
        for row in rows
    ]
    schema = {
        "id": pl.Int64, "rule_id": pl.String, "status": pl.String, "severity": pl.String, "program": pl.String,
        "household_id": pl.String, "name": pl.String, "id_number": pl.String, "region_code": pl.String,
        "opened_at": pl.Datetime("us", "UTC"), "days_open": pl.Int64, "overdue": pl.Boolean, "assignee": pl.String,
        "overpayment": pl.Float64, "last_run_id": pl.Int64,
    }
    return pl.DataFrame(records, schema=schema).select(LIST_COLUMNS)


def get_flag(session: Session, flag_id: int) -> tuple[Flag, list[FlagEvent], str]:
    """A flag, its events in order and the status they imply (the events decide; the flag's
    `status` column is only their cache); raises NotFound."""
    flag = session.get(Flag, flag_id)
    if flag is None:
        raise NotFound(f"没有编号为 {flag_id} 的预警 (no flag {flag_id})")
    events = list(session.scalars(sa.select(FlagEvent).where(FlagEvent.flag_id == flag_id).order_by(FlagEvent.id)))
    return flag, events, derive_status(e.kind for e in events)
