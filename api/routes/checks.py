"""POST /checks: one household, checked at once against the latest snapshots held in memory."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from datetime import date
from typing import Any

import polars as pl
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

from engine import ids
from engine.errors import AccessDenied, StoreBusy
from engine.run import RunResult
from starlette.concurrency import run_in_threadpool

from .. import access
from ..deps import Allowed, StateDep
from ..schemas import AUTH_ERRORS, CheckIn, CheckOut, SkippedOut, error_responses
from ._shape import flag_rows

router = APIRouter(tags=["checks 单户核对"], responses=AUTH_ERRORS)


def _roll(body: CheckIn) -> dict[str, list[str | None]]:
    """The household as a roll's String columns, as lists: the check queue makes the frame on its
    own thread, since on the event loop every polars call may wait for the GIL it holds."""
    members = body.members
    return {
        "program": [m.program for m in members],
        "household_id": [body.household_id] * len(members),
        "id_number": [m.id_number for m in members],
        "name": [m.name for m in members],
        "region_code": [m.region_code for m in members],
        "benefit_monthly": [repr(m.benefit_monthly) for m in members],
        "relation": [m.relation for m in members],
        "declared_income_monthly": [repr(m.declared_income_monthly) for m in members],
        "enrolled_on": [m.enrolled_on.isoformat() if m.enrolled_on else None for m in members],
    }


async def _within(pending: Future[Any], timeout: float) -> Any:
    """The queue's answer, or TimeoutError after `timeout` seconds. The queue's future is never
    cancelled (a caller gone or too late leaves the answer to nobody).

    Why not asyncio.wait_for(asyncio.shield(asyncio.wrap_future(pending))): that makes three
    futures, five callbacks and a task-like chain per check, on the one event loop every check
    passes through; this is one future and one timer."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def settle(done: Future[Any]) -> None:  # on the queue's thread
        try:
            loop.call_soon_threadsafe(_copy, done, waiter)
        except RuntimeError:  # the loop has closed (the server stopped): nobody waits
            pass

    pending.add_done_callback(settle)
    timer = loop.call_later(timeout, _expire, waiter)
    try:
        return await waiter
    finally:
        timer.cancel()


def _copy(done: Future[Any], waiter: asyncio.Future[Any]) -> None:
    if waiter.done():  # timed out, or the caller went away
        return
    error = done.exception()
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(done.result())


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


_LAST_DATES: tuple[Any, dict[str, date]] = (None, {})


def _snapshot_dates(held: dict[str, Any]) -> dict[str, date]:
    """The snapshot date of each source a check read. Every check of one index shares its `held`
    (the same dict), and reading the dates off its 13 database rows through SQLAlchemy's
    attributes cost the event loop ~49k instructions a check, 6 % of its work on one
    (benchmarks/instructions.py): worked out once per `held`."""
    global _LAST_DATES
    last, dates = _LAST_DATES
    if held is not last:
        dates = {key: snap.snapshot_date for key, snap in held.items()}
        _LAST_DATES = (held, dates)  # `held` kept alive with its dates: its id is not reused
    return dates


@router.post("/checks", response_model=CheckOut, summary="核对一户 check one household now",
             responses=error_responses(503))
async def check_household(body: CheckIn, state: StateDep, user: Allowed("checks:run")) -> CheckOut:  # type: ignore[valid-type]
    """The household's members are validated as roll rows (normalized IDs, program codes) and
    checked against the latest source snapshots and the roll snapshot's other households (a
    person already enrolled elsewhere is found). Nothing is stored unless `record` is true."""
    if body.record and "household_id" not in body.model_fields_set:
        raise RequestValidationError([{"loc": ("body", "household_id"), "type": "missing",
                                       "msg": "record needs the household's own id (flags are kept by household)"}])
    outside = [f"members[{i}].region_code {m.region_code}" for i, m in enumerate(body.members)
               if not access.in_scope(user.region, m.region_code)]
    if outside:
        raise AccessDenied(f"不在您的辖区 {user.region} 内 (outside your region {user.region}): {', '.join(outside)}")
    as_of = body.as_of or date.today()
    assert state.checks is not None
    # Gathered with the other requests of the moment into one engine call (store.check_queue).
    pending = state.checks.submit(_roll(body), as_of, body.rules, body.cadences)
    try:
        answer = await _within(pending, state.settings.check_timeout)
    except TimeoutError:  # the applicant is not kept waiting on a stuck or overloaded checker
        raise StoreBusy(f"核对未在 {state.settings.check_timeout:g} 秒内完成，请重试 (the check took longer "
                        f"than {state.settings.check_timeout:g} s: CROSSCHECK_CHECK_TIMEOUT); try again") from None
    if answer.problems:  # rows are members: named as pydantic's own field errors are
        raise RequestValidationError([
            {"loc": ("body", "members", *([p.row] if p.row is not None else []), *([p.column] if p.column else [])),
             "msg": p.message, "type": "value_error"}
            for p in answer.problems
        ])
    state.metrics.checks.inc()
    state.metrics.check_flags.inc(len(answer.rows))
    if answer.together:
        state.metrics.check_together.observe(answer.together)
        state.metrics.check_engine.observe(answer.engine_seconds)
    run_id = None
    flags: pl.DataFrame | list[dict[str, Any]] = answer.rows
    if body.record:
        from store.checks import flag_ids, record

        found = answer.flags_frame()
        result = RunResult(flags=found, as_of=as_of, ran=answer.ran, skipped=answer.skipped)
        # Only the members sent were checked: another member's flags are not "not found any more".
        members = {ids.normalize(m.id_number) or "" for m in body.members}
        run_id, _ = await run_in_threadpool(record, state.store, result, [body.household_id], "api", answer.held,
                                            {"check": body.household_id}, region=user.region, persons=members)
        flags = found.with_columns(await run_in_threadpool(flag_ids, state.store, found))
    return CheckOut(
        household_id=body.household_id, as_of=as_of, flags=flag_rows(flags, user.role), ran=answer.ran,
        skipped=[SkippedOut(rule_id=r, reason=why) for r, why in answer.skipped],
        warnings=[f"members[{w.row}].{w.column}: {w.message}" if w.row is not None else w.message
                  for w in answer.warnings],
        snapshots=_snapshot_dates(answer.held), run_id=run_id,
    )


# The route, for api.fast_checks, which calls its endpoint with its body and response fields.
check_route = next(route for route in router.routes if getattr(route, "endpoint", None) is check_household)
