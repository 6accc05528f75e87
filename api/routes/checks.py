"""POST /checks: one household, checked at once against the latest snapshots held in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl
from fastapi import APIRouter

from engine.errors import AccessDenied, InputError
from engine.loaders import load_frame

from .. import access
from ..deps import Allowed, StateDep
from ..schemas import CheckIn, CheckOut, ErrorOut, SkippedOut
from ._shape import flag_rows

router = APIRouter(tags=["checks 单户核对"])

_COLUMNS = ("program", "household_id", "id_number", "name", "region_code", "benefit_monthly", "relation",
            "declared_income_monthly", "enrolled_on")


def _roll(body: CheckIn) -> pl.DataFrame:
    rows = [
        {"program": m.program, "household_id": body.household_id, "id_number": m.id_number, "name": m.name,
         "region_code": m.region_code, "benefit_monthly": repr(m.benefit_monthly), "relation": m.relation,
         "declared_income_monthly": repr(m.declared_income_monthly),
         "enrolled_on": m.enrolled_on.isoformat() if m.enrolled_on else None}
        for m in body.members
    ]
    return pl.DataFrame(rows, schema={c: pl.String for c in _COLUMNS}, orient="row")


@router.post("/checks", response_model=CheckOut, summary="核对一户 check one household now",
             responses={403: {"model": ErrorOut}, 422: {"model": ErrorOut}})
def check_household(body: CheckIn, state: StateDep, user: Allowed("checks:run")) -> CheckOut:  # type: ignore[valid-type]
    """The household's members are validated as roll rows (normalized IDs, program codes) and
    checked against the latest source snapshots and the roll snapshot's other households (a
    person already enrolled elsewhere is found). Nothing is stored unless `record` is true."""
    outside = [f"members[{i}].region_code {m.region_code}" for i, m in enumerate(body.members)
               if not access.in_scope(user.region, m.region_code)]
    if outside:
        raise AccessDenied(f"不在您的辖区 {user.region} 内 (outside your region {user.region}): {', '.join(outside)}")
    as_of = body.as_of or date.today()
    loaded = load_frame(_roll(body), "roll", "request", as_of, first_row=0)
    if loaded.problems:  # rows are members: name them as the client wrote them
        raise InputError("成员信息有误 (members with invalid values)",
                         [replace(p, file=f"members[{p.row}]") for p in loaded.problems])
    result, held = state.checker.check(loaded.frame, as_of, body.rules, body.cadences)
    state.metrics.checks.inc()
    state.metrics.check_flags.inc(result.flags.height)
    run_id = None
    flags = result.flags
    if body.record:
        from store.checks import flag_ids, record

        run_id, _ = record(state.store, result, [body.household_id], "api", held, {"check": body.household_id})
        flags = flags.with_columns(flag_ids(state.store, flags))
    return CheckOut(
        household_id=body.household_id, as_of=as_of, flags=flag_rows(flags, user.role), ran=result.ran,
        skipped=[SkippedOut(rule_id=r, reason=why) for r, why in result.skipped],
        warnings=[f"members[{w.row}].{w.column}: {w.message}" if w.row is not None else w.message
                  for w in loaded.warnings],
        snapshots={key: snap.snapshot_date for key, snap in held.items()}, run_id=run_id,
    )
