"""The rule catalogue, health and Prometheus metrics."""

from __future__ import annotations

import time

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from engine.rules import CATALOGUE
from store import snapshots
from store.lifecycle import NEEDS_PERSON
from store.models import Flag

from ..deps import StateDep, UserDep
from ..metrics import CONTENT_TYPE_LATEST
from ..schemas import HealthOut, RuleOut, error_responses

router = APIRouter(tags=["meta 系统"])


@router.get("/rules", response_model=list[RuleOut], summary="规则目录 the rule catalogue",
            responses=error_responses(401))
def rules(user: UserDep) -> list[RuleOut]:
    return [
        RuleOut(id=r.id, label_zh=r.label_zh, label_en=r.label_en, cadence=r.cadence,
                programs=list(r.programs) if r.programs is not None else None, level=r.level, severity=r.severity,
                sources=[*r.sources, *r.optional_sources], condition=r.condition)
        for r in CATALOGUE
    ]


@router.get("/health", response_model=HealthOut, summary="健康检查 is the service working",
            responses={503: {"model": HealthOut}})
def health(state: StateDep) -> JSONResponse:
    """No token needed. 503 when the database cannot be read or the check process is down."""
    from ..app import version

    try:
        with state.store.read() as session:
            held = snapshots.latest(session)
        database, status = "ok", "ok"
    except Exception as error:  # health reports, it does not fail
        held, database, status = {}, f"error: {str(error).splitlines()[0][:200]}", "degraded"
    checker = state.checks.state() if state.checks is not None else "ok"
    if checker != "ok":
        status = "degraded"
    body = HealthOut(status=status, database=database, checker=checker, version=version(),
                     snapshots={key: snap.snapshot_date for key, snap in held.items()},
                     uptime_seconds=round(time.time() - state.started, 1))
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if status == "ok" else 503)


@router.get("/metrics", summary="Prometheus 指标 metrics in the Prometheus text format",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(state: StateDep) -> Response:
    """No token needed: counts only, nothing personal."""
    from datetime import date

    try:
        with state.store.read() as session:
            open_by_rule = dict(session.execute(
                sa.select(Flag.rule_id, sa.func.count(Flag.id)).where(Flag.status.in_(NEEDS_PERSON))
                .group_by(Flag.rule_id)).all())
            held = snapshots.latest(session)
        state.metrics.open_flags.clear()
        for rule in CATALOGUE:
            state.metrics.open_flags.labels(rule.id).set(open_by_rule.get(rule.id, 0))
        for key, snap in held.items():
            state.metrics.snapshot_age.labels(key).set((date.today() - snap.snapshot_date).days)
    except Exception:  # the counters are still worth serving when the database is away
        pass
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
