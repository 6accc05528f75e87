"""The audit log, for auditors: who read or changed what, when, from where."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from store.audit import count_entries, entries

from ..deps import Allowed, StateDep
from ..schemas import AUTH_ERRORS, AuditOut, AuditPage, IsoDateTime

router = APIRouter(tags=["audit 审计"], responses=AUTH_ERRORS)


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@router.get("/audit", response_model=AuditPage, summary="审计日志 the audit log, newest first")
def audit_log(state: StateDep, user: Allowed("audit:read"),  # type: ignore[valid-type]
              user_name: Annotated[str | None, Query(alias="user", max_length=255)] = None,
              since: Annotated[IsoDateTime | None, Query(description="at or after (ISO 8601)")] = None,
              until: Annotated[IsoDateTime | None, Query(description="before (ISO 8601)")] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> AuditPage:
    state.audit.flush()  # what is queued is part of the log: an auditor sees it now
    since, until = _utc(since), _utc(until)
    rows = entries(state.store, user_name, since, until, limit, offset)
    return AuditPage(total=count_entries(state.store, user_name, since, until), limit=limit, offset=offset,
                     items=[AuditOut(**{k: getattr(r, k) for k in AuditOut.model_fields}) for r in rows])
