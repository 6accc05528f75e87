"""Flags of the user's region: the list in priority order, one flag with its history, and the
review actions (三核查 and the decision)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request

from engine.errors import AccessDenied, NotFound
from store.flags import FlagFilter, flag_query
from store.lifecycle import review
from store.models import Flag, FlagEvent, utcnow

from .. import access
from ..deps import Allowed, StateDep
from ..schemas import (
    AUTH_ERRORS,
    EventIn,
    EventOut,
    FlagDetailOut,
    FlagPage,
    IsoDateTime,
    Program,
    RowId,
    RuleId,
    Severity,
    Status,
    StoredFlagOut,
    error_responses,
)
from ._shape import event_out, stored_flag

router = APIRouter(tags=["flags 预警"], responses=AUTH_ERRORS)

_SEVERITY_RANK = sa.case({"high": 0, "medium": 1, "low": 2}, value=Flag.severity, else_=3)


def _visible(state: StateDep, flag_id: int, region: str) -> Flag:
    with state.store.read() as session:
        flag = session.get(Flag, flag_id)
    if flag is None or not access.in_scope(region, flag.region_code):
        raise NotFound(f"没有编号为 {flag_id} 的预警 (no flag {flag_id})")  # outside: as if it did not exist
    return flag


@router.get("/flags", response_model=FlagPage, summary="预警列表 flags of your region, by priority")
def list_flags(
    state: StateDep,
    user: Allowed("flags:read"),  # type: ignore[valid-type]
    region: Annotated[str | None, Query(pattern=r"^\d{1,12}$", description="region_code prefix")] = None,
    rule: Annotated[list[RuleId] | None,  # type: ignore[valid-type]
                    Query(description="rule id (repeat for several)")] = None,
    status: Annotated[list[Status] | None,  # type: ignore[valid-type]
                      Query(description="open, assigned, visited, confirmed, …")] = None,
    severity: Annotated[list[Severity] | None, Query(description="high, medium, low")] = None,
    program: Annotated[list[Program] | None, Query(description="dibao, tekun, …")] = None,  # type: ignore[valid-type]
    household: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[IsoDateTime | None, Query(description="changed at or after (ISO 8601)")] = None,
    overdue: Annotated[bool, Query(description="only flags overdue for review")] = False,
    run: Annotated[int | None, Query(ge=1, le=2**63 - 1,
                                     description="only what this run found (a batch's: its run_id)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> FlagPage:
    """Ordered by priority: severity (high first), then overpayment (largest first), then the
    oldest. `total` counts only what lies within your region."""
    now = utcnow()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # a time without a zone is taken as UTC, as the store keeps it
    scope = access.narrow(user.region, region)
    if scope is None:
        return FlagPage(total=0, limit=limit, offset=offset, items=[])
    flt = FlagFilter(region=scope, rules=rule, statuses=status, severities=severity, household=household,
                     overdue_days=state.settings.overdue_days if overdue else None, programs=program, since=since,
                     run=run)
    query = flag_query(flt, now)
    with state.store.read() as session:
        total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = session.scalars(
            query.order_by(_SEVERITY_RANK, Flag.overpayment.desc().nulls_last(), Flag.opened_at, Flag.id)
            .limit(limit).offset(offset)
        ).all()
    items = [StoredFlagOut(**stored_flag(f, user.role, now, state.settings.overdue_days)) for f in rows]
    return FlagPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/flags/{flag_id}", response_model=FlagDetailOut, summary="预警详情 one flag with its events",
            responses=error_responses(404))
def get_flag(flag_id: RowId, state: StateDep, user: Allowed("flags:read")) -> FlagDetailOut:  # type: ignore[valid-type]
    flag = _visible(state, flag_id, user.region)
    with state.store.read() as session:
        events = list(session.scalars(sa.select(FlagEvent).where(FlagEvent.flag_id == flag_id).order_by(FlagEvent.id)))
    return FlagDetailOut(**stored_flag(flag, user.role, utcnow(), state.settings.overdue_days),
                         events=[event_out(e, user.role) for e in events])


@router.post("/flags/{flag_id}/events", response_model=EventOut, status_code=201,
             summary="记录核查 record a review action", responses=error_responses(404, 409))
def add_event(flag_id: RowId, body: EventIn, request: Request, state: StateDep,
              user: Allowed("flags:review")) -> EventOut:  # type: ignore[valid-type]
    """assign · visit (三核查: income, expenditure, living) · confirm (stop, reduce or recover) ·
    dismiss (with a reason) · appeal · resolve · reopen. Only what the flag's status allows is
    accepted (409 otherwise). Stopping, recovering and resolving are a supervisor's decisions, and
    so are undoing them (reopening a confirmed or resolved flag) and deciding an appeal."""
    flag = _visible(state, flag_id, user.region)
    if user.role != "supervisor" and access.needs_supervisor(body.action, body.confirm_action, flag.status):
        raise AccessDenied("停发、追缴、办结，重新打开已确认或已处理的预警，以及对申诉作出决定，须由审核主管进行 "
                           "(stop, recover, resolve, reopening a decided flag and deciding an appeal are a "
                           "supervisor's decisions)")
    with state.store.write(lock=f"review of flag {flag_id} by {user.name}") as session:
        event = review(session, flag_id, body.action, user.name, utcnow(), to=body.to, income=body.income,
                       expenditure=body.expenditure, living=body.living, action=body.confirm_action,
                       amount=body.amount, reason=body.reason, note=body.note)
        session.flush()
        out = event_out(event, user.role)
    return out
