"""Recorded runs over the latest snapshots: list, one run, start one."""

from __future__ import annotations

import queue
import threading
from datetime import date
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from store.models import Flag, FlagEvent, Run
from store.runs import abandon_dead_runs, get_run, start_run

from ..deps import Allowed, StateDep
from ..schemas import (
    AUTH_ERRORS,
    RowId,
    RunDetailOut,
    RunIn,
    RunOut,
    RunRuleOut,
    error_responses,
)

router = APIRouter(tags=["runs 比对"], responses=AUTH_ERRORS)
REGISTER_TIMEOUT = 60.0  # seconds to wait for another run's lock before the new run is registered


_FOUND = ("raised", "seen", "reopened")  # one event for each finding of a run; `cleared` for each gone


def _in_region(state: StateDep, run_ids: list[int], region: str) -> dict[int, dict[str, int]]:
    """{run id: {event kind or rule id: flags}} of the flags within `region`: what a run did to
    them. A run's own counts cover every region, and a caseworker must not count another
    township's flags through them (an uploaded batch's run is one township's)."""
    if not run_ids:
        return {}
    counted: dict[int, dict[str, int]] = {run_id: {} for run_id in run_ids}
    inside = Flag.region_code.startswith(region, autoescape=True)
    with state.store.read() as session:
        for run_id, kind, count in session.execute(
                sa.select(FlagEvent.run_id, FlagEvent.kind, sa.func.count()).join(Flag, Flag.id == FlagEvent.flag_id)
                .where(FlagEvent.run_id.in_(run_ids), inside).group_by(FlagEvent.run_id, FlagEvent.kind)):
            counted[run_id][kind] = count
        if len(run_ids) == 1:  # one run's detail: its findings by rule too
            for rule_id, count in session.execute(
                    sa.select(Flag.rule_id, sa.func.count()).join(FlagEvent, Flag.id == FlagEvent.flag_id)
                    .where(FlagEvent.run_id == run_ids[0], FlagEvent.kind.in_(_FOUND), inside).group_by(Flag.rule_id)):
                counted[run_ids[0]][rule_id] = count
    return counted


def run_out(run: Run, counted: dict[str, int]) -> RunOut:
    """The run, with its counts of the flags in the user's region (`counted`, by event kind)."""
    out = RunOut(**{k: getattr(run, k) for k in RunOut.model_fields})
    if run.found is not None:
        out.found = sum(counted.get(kind, 0) for kind in _FOUND)
        out.raised, out.reopened, out.seen, out.cleared = (counted.get(k, 0) for k in ("raised", "reopened", "seen",
                                                                                         "cleared"))
    return out


@router.get("/runs", response_model=list[RunOut], summary="比对记录 recorded runs, newest first")
def list_runs(state: StateDep, user: Allowed("runs:read"),  # type: ignore[valid-type]
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> list[RunOut]:
    """Counts (found, raised, …) are of the flags within your region."""
    abandon_dead_runs(state.store)
    with state.store.read() as session:
        runs = session.scalars(sa.select(Run).order_by(Run.id.desc()).limit(limit).offset(offset)).all()
    counted = _in_region(state, [r.id for r in runs], user.region)
    return [run_out(r, counted[r.id]) for r in runs]


@router.get("/runs/{run_id}", response_model=RunDetailOut, summary="比对详情 one run: inputs and rules",
            responses=error_responses(404))
def show_run(run_id: RowId, state: StateDep, user: Allowed("runs:read")) -> RunDetailOut:  # type: ignore[valid-type]
    """Counts, also each rule's, are of the flags within your region."""
    run, inputs, rules = get_run(state.store, run_id)
    counted = _in_region(state, [run.id], user.region)[run.id]
    return RunDetailOut(
        **run_out(run, counted).model_dump(), timings=run.timings,
        inputs={i.key: s.id for i, s in inputs},
        rules=[RunRuleOut(rule_id=r.rule_id, outcome=r.outcome, reason=r.reason,
                          flags=counted.get(r.rule_id, 0) if r.outcome == "ran" else r.flags,
                          same_as_run_id=r.same_as_run_id) for r in rules],
    )


@router.post("/runs", status_code=202, response_model=RunOut, summary="开始比对 start a run",
             responses=error_responses(422, 503))
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
    return JSONResponse(run_out(run, {}).model_dump(mode="json"), status_code=202,
                        headers={"Location": f"/api/v1/runs/{run.id}"})
