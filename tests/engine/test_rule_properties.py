"""Invariants over random inputs: a rule never fires on an exempt record."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .casebook import AS_OF, flagged, person, roll_row, run_case

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

households = st.lists(st.sampled_from(["dibao", "tekun", "edge", "temp"]), min_size=1, max_size=4)
past = st.integers(min_value=0, max_value=3650).map(lambda days: AS_OF - timedelta(days=days))
future = st.integers(min_value=1, max_value=3650).map(lambda days: AS_OF + timedelta(days=days))


def _members(programs: list[str]) -> tuple[list[dict[str, str]], list[str]]:
    pids = [person(index + 1) for index in range(len(programs))]
    return [roll_row("H1", pid, program) for pid, program in zip(pids, programs, strict=True)], pids


exempt_vehicle = st.one_of(
    st.fixed_dictionaries(
        {"vehicle_type": st.sampled_from(["motorcycle", "摩托车", "disabled_mobility", "残疾人专用车"]),
         "status": st.sampled_from(["normal", "scrapped", "cancelled", "正常"])}
    ),
    st.fixed_dictionaries(
        {"vehicle_type": st.sampled_from(["car", "truck", "other", "小型汽车"]),
         "status": st.sampled_from(["scrapped", "cancelled", "报废", "注销"])}
    ),
)


@SETTINGS
@given(programs=households, vehicles=st.lists(exempt_vehicle, min_size=1, max_size=5), data=st.data())
def test_exempt_or_retired_vehicles_never_fire(programs, vehicles, data):
    roll, pids = _members(programs)
    records = [
        {"id_number": data.draw(st.sampled_from(pids)), "plate": f"苏C{index}", **vehicle}
        for index, vehicle in enumerate(vehicles)
    ]
    assert flagged(run_case(roll, {"vehicles": records}, rules=["vehicle_owned"]), "vehicle_owned") == set()


@SETTINGS
@given(programs=households, stays=st.lists(st.tuples(past, past), min_size=1, max_size=3), later=future, data=st.data())
def test_released_or_not_yet_admitted_prisoners_never_fire(programs, stays, later, data):
    roll, pids = _members(programs)
    records = [
        {"id_number": data.draw(st.sampled_from(pids)), "admitted_on": str(min(a, b)), "released_on": str(max(a, b))}
        for a, b in stays
    ]
    records.append({"id_number": data.draw(st.sampled_from(pids)), "admitted_on": str(later)})
    assert flagged(run_case(roll, {"prisoners": records}, rules=["incarcerated"]), "incarcerated") == set()


@SETTINGS
@given(programs=households, amounts=st.lists(st.decimals(0, 100000, places=2), min_size=1, max_size=4), data=st.data())
def test_resident_pensions_never_count_as_income(programs, amounts, data):
    roll, pids = _members(programs)
    records = [
        {"id_number": data.draw(st.sampled_from(pids)), "pension_type": "resident", "monthly_amount": str(amount)}
        for amount in amounts
    ]
    result = run_case(roll, {"pensions": records}, rules=["income_over_standard"])
    assert flagged(result, "income_over_standard") == set()


@SETTINGS
@given(programs=households, shares=st.lists(st.integers(0, 100), min_size=1, max_size=4), data=st.data())
def test_deposits_within_the_limit_never_fire(programs, shares, data):
    roll, pids = _members(programs)
    limit = 800 * len(pids) * 24
    total = sum(shares) or 1
    # Round down to the fen so the parts never sum above the limit.
    records = [
        {"id_number": data.draw(st.sampled_from(pids)), "balance": f"{int(limit * share / total * 100) / 100:.2f}"}
        for share in shares
    ]
    assert flagged(run_case(roll, {"deposits": records}, rules=["assets_over_limit"]), "assets_over_limit") == set()
