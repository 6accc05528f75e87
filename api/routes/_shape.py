"""Shaping engine frames and store rows into response models (shared by the routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from engine.errors import Problem
from store.lifecycle import EVENT_ZH, STATUS_ZH
from store.models import Flag, FlagEvent

from ..access import mask_evidence, masked, parse_evidence, sees_full_ids
from ..schemas import EventOut, FlagOut, ProblemOut, StoredFlagOut

__all__ = ["flag_rows", "stored_flag", "event_out", "problem_out"]

_FLAG_FIELDS = tuple(FlagOut.model_fields)


def flag_rows(flags: pl.DataFrame | list[dict[str, Any]], role: str) -> list[FlagOut]:
    """Engine flags (with flag_id when recorded; a frame or its rows) as FlagOut, IDs masked for `role`."""
    out = []
    for row in flags.iter_rows(named=True) if isinstance(flags, pl.DataFrame) else flags:
        row = masked(role, row)
        out.append(FlagOut(**{k: row.get(k) for k in _FLAG_FIELDS if k != "evidence"},
                           evidence=parse_evidence(row.get("evidence"))))
    return out


def stored_flag(flag: Flag, role: str, now: datetime, overdue_days: int, status: str | None = None) -> dict[str, Any]:
    """A stored flag as the fields of StoredFlagOut."""
    from store.lifecycle import NEEDS_PERSON, overdue_before
    from engine.rules import RULES

    rule = RULES.get(flag.rule_id)
    row = {c.name: getattr(flag, c.name) for c in Flag.__table__.columns}
    row = masked(role, row)
    status = status or flag.status
    return {
        **{k: row.get(k) for k in StoredFlagOut.model_fields if k in row and k != "evidence"},
        "evidence": parse_evidence(row.get("evidence")),
        "flag_id": flag.id,
        "rule_label_zh": rule.label_zh if rule else None,
        "rule_label_en": rule.label_en if rule else None,
        "status": status,
        "status_zh": STATUS_ZH.get(status, status),
        "days_open": max((now - flag.opened_at).days, 0),
        "overdue": status in NEEDS_PERSON and flag.opened_at < overdue_before(now, overdue_days),
    }


def event_out(event: FlagEvent, role: str) -> EventOut:
    detail = event.detail
    if isinstance(detail, dict) and "evidence" in detail:
        detail = {**detail, "evidence": parse_evidence(masked(role, {"evidence": detail["evidence"]})["evidence"])}
    return EventOut(id=event.id, kind=event.kind, kind_zh=EVENT_ZH.get(event.kind, event.kind), at=event.at,
                    by=event.by, run_id=event.run_id, detail=detail)


def problem_out(problem: Problem | dict[str, Any], role: str) -> ProblemOut:
    """A row's problem with its original value; an ID in it masked for `role` as everywhere."""
    data = problem.as_dict() if isinstance(problem, Problem) else problem
    out = ProblemOut(**{k: data.get(k) for k in ProblemOut.model_fields})
    if out.value is not None and not sees_full_ids(role):
        out.value = mask_evidence(out.value)
    return out
