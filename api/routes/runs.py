"""Recorded runs over the latest snapshots: list, one run, start one."""

from __future__ import annotations

import queue
import threading
from datetime import date
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from store.models import Run
from store.runs import abandon_dead_runs, get_run, start_run

from ..deps import Allowed, StateDep
from ..schemas import ErrorOut, RunDetailOut, RunIn, RunOut, RunRuleOut

router = APIRouter(tags=["runs 比对"])
REGISTER_TIMEOUT = 60.0  # seconds to wait for another run's lock before the new run is registered


def run_out(run: Run) -> RunOut:
    return RunOut(**{k: getattr(run, k) for k in RunOut.model_fields})


@router.get("/runs", response_model=list[RunOut], summary="比对记录 recorded runs, newest first")
def list_runs(state: StateDep, user: Allowed("runs:read"),  # type: ignore[valid-type]
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> list[RunOut]:
    abandon_dead_runs(state.store)
    with state.store.read() as session:
        runs = session.scalars(sa.select(Run).order_by(Run.id.desc()).limit(limit).offset(offset)).all()
    return [run_out(r) for r in runs]


@router.get("/runs/{run_id}", response_model=RunDetailOut, summary="比对详情 one run: inputs and rules")
def show_run(run_id: int, state: StateDep, user: Allowed("runs:read")) -> RunDetailOut:  # type: ignore[valid-type]
    run, inputs, rules = get_run(state.store, run_id)
    return RunDetailOut(
        **run_out(run).model_dump(), timings=run.timings,
        inputs={i.key: s.id for i, s in inputs},
        rules=[RunRuleOut(rule_id=r.rule_id, outcome=r.outcome, reason=r.reason, flags=r.flags,
                          same_as_run_id=r.same_as_run_id) for r in rules],
    )


@router.post("/runs", status_code=202, response_model=RunOut, summary="开始比对 start a run",
             responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def start(body: RunIn, state: StateDep, user: Allowed("runs:start")) -> JSONResponse:  # type: ignore[valid-type]
    """Starts a run of the chosen rules or cadences (every rule by default) over the latest
    snapshots and answers 202 with its id as soon as it is registered; GET /runs/{id} follows
    it. A bad rule id or cadence, or no roll snapshot, is answered at once."""
    registered: queue.Queue[int | BaseException] = queue.Queue()

    def work() -> None:
        try:
            start_run(state.store, body.as_of or date.today(), trigger="api", rules=body.rules,
                      cadences=body.cadences, on_registered=registered.put)
        except BaseException as error:  # before registration: the caller hears it; after: the run says failed
            registered.put(error)

    threading.Thread(target=work, name="api-run", daemon=True).start()
    try:
        first = registered.get(timeout=REGISTER_TIMEOUT)
    except queue.Empty:
        from engine.errors import StoreBusy

        raise StoreBusy("比对未能开始 the run could not be registered in time: the store is busy") from None
    if isinstance(first, BaseException):
        raise first
    run, _, _ = get_run(state.store, first)
    return JSONResponse(run_out(run).model_dump(mode="json"), status_code=202,
                        headers={"Location": f"/api/v1/runs/{run.id}"})
