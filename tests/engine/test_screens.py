"""engine.screens: a screen never says a rule cannot fire where its plan has hits.

Three ways: every case of the rule table (tests/engine/test_rules.py) checked through
engine.check, where a screen decides whether the plan runs, flags what run() flags; the screens
over each case's rows directly (positive cases: True); and hypothesis over groups of a generated
city with every rule's cases planted, each screen held to its plan's hits over exactly what the
check gave the compiled rules. Then table-driven edge cases: regional policy, nulls, rounding.
"""

from __future__ import annotations

from datetime import date

import narwhals as nw
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import check_plan
from engine.check import CheckIndex
from engine.context import SharedContext
from engine.policy import parse_policy
from engine.rules import CATALOGUE, RULES
from engine.run import context_of, households_of, prepare_roll
from engine.screens import Few

from .casebook import AS_OF, POLICY, flagged, frames, person, planted_city, roll_row
from .test_rules import CASES

SCREENED = [rule for rule in CATALOGUE if rule.screen is not None]
_COMPILED_FLAGS = check_plan.CompiledRun.flags  # spied on per example: wrapped once, not once more each time
A, B = person(11), person(22)


def _hits(rule, roll: pl.DataFrame, sources: dict[str, pl.DataFrame], as_of: date, policy) -> pl.DataFrame:
    """The rule's plan over these rows and records, as engine.check_plan runs it, with its native
    post-step (a screen is a necessary condition of a finding: name_mismatch's plan finds a
    superset that its post-step narrows)."""
    rows = prepare_roll(roll).lazy()
    households = households_of(nw.from_native(rows)).to_native()
    context = context_of(rows, households, {key: frame.lazy() for key, frame in sources.items()}, as_of, policy,
                         context=SharedContext)
    found = rule.plan(context).to_native().collect()
    return found if rule.annotate is None else rule.annotate(found, as_of)


def test_most_rules_have_a_screen():
    assert {rule.id for rule in SCREENED} >= {
        "duplicate_enrollment", "income_over_standard", "property_excess", "assets_over_limit", "medical_hardship",
        "vehicle_owned", "housing_fund_active", "deceased", "name_mismatch", "moved_out", "hukou_not_found",
    }


# ---- the rule table, through the check ---------------------------------------------------------

@pytest.mark.parametrize(("rule_id", "description", "roll", "sources", "expected"), CASES,
                         ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_a_checked_case_flags_what_run_flags(rule_id, description, roll, sources, expected):
    roll_frame, source_frames = frames(roll, sources)
    index = CheckIndex(None, source_frames, POLICY)
    assert flagged(index.check(roll_frame, AS_OF, [rule_id]), rule_id) == expected, description
    rule = RULES[rule_id]
    if rule.screen is not None:
        screen = rule.screen(Few(index.resolve(roll_frame, AS_OF), source_frames, AS_OF, POLICY))
        assert screen or not expected, f"{description}: screened out, but it fires"


def test_the_screens_rule_out_some_negative_cases():
    ruled_out = set()
    for rule_id, _, roll, sources, expected in CASES:
        rule = RULES[rule_id]
        if rule.screen is None or expected:
            continue
        roll_frame, source_frames = frames(roll, sources)
        resolved = CheckIndex(None, source_frames, POLICY).resolve(roll_frame, AS_OF)
        if not rule.screen(Few(resolved, source_frames, AS_OF, POLICY)):
            ruled_out.add(rule_id)
    assert len(ruled_out) >= 10, ruled_out


# ---- a generated city, groups chosen by hypothesis ---------------------------------------------

@pytest.fixture(scope="module")
def city(tmp_path_factory):
    c = planted_city(tmp_path_factory.mktemp("city"), 240, seed=11)
    return c.as_of, c.roll, CheckIndex(c.roll, c.sources, c.policy), c.full, c.households, c.policy, c.sources


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.integers(min_value=0, max_value=239), min_size=1, max_size=24, unique=True))
def test_a_screen_is_false_only_where_its_plan_finds_nothing(city, picks, monkeypatch):
    as_of, roll, index, full, households, policy, _ = city
    chosen = [households[at] for at in picks if at < len(households)]
    given_to_plans = []

    def spied(self, roll, sources, programs=None):
        given_to_plans.append((roll, sources))
        return _COMPILED_FLAGS(self, roll, sources, programs)

    monkeypatch.setattr(check_plan.CompiledRun, "flags", spied)
    result = index.check(roll.filter(pl.col("household_id").is_in(chosen)), as_of)
    assert result.flags.equals(full.flags.filter(pl.col("household_id").is_in(chosen)))
    (check_roll, sources), = given_to_plans
    few = Few(check_roll, sources, as_of, policy)
    for rule in SCREENED:
        if not rule.screen(few):
            assert _hits(rule, check_roll, sources, as_of, policy).height == 0, rule.id


def test_the_screens_rule_out_most_rules_for_a_household(city):
    as_of, roll, index, _, households, policy, sources = city
    run_per_household = []
    for household in households[:60]:
        rows = index.resolve(roll.filter(pl.col("household_id") == household), as_of)
        few = Few(rows, sources, as_of, policy)  # whole sources: a screen looks records up by ID
        run_per_household.append(sum(rule.screen(few) for rule in SCREENED))
    assert sum(run_per_household) / len(run_per_household) < len(SCREENED) / 3


# ---- edge cases, table-driven --------------------------------------------------------------------

REGIONAL = parse_policy(
    '[[region]]\nprefix = "320302"\nvehicle_exempt_types = ["car"]\ndibao_monthly = 880\n'
    'housing_fund_lookback_months = 6\nresidential_max_count = 2\n'
)
IN_320302 = person(33, region="320302")

EDGES = [
    # (description, rule, roll rows, sources, policy, expected screen)
    ("a scrapped vehicle cannot fire", "vehicle_owned", [roll_row("H1", A)],
     {"vehicles": [{"id_number": A, "plate": "苏C1", "vehicle_type": "car", "status": "scrapped"}]},
     POLICY, False),
    ("a car fires under the defaults", "vehicle_owned", [roll_row("H1", A)],
     {"vehicles": [{"id_number": A, "plate": "苏C1", "vehicle_type": "car", "status": "normal"}]},
     POLICY, True),
    ("a car is exempt in its household's region", "vehicle_owned",
     [roll_row("H1", IN_320302, region_code="320302001")],
     {"vehicles": [{"id_number": IN_320302, "plate": "苏C1", "vehicle_type": "car", "status": "normal"}]},
     REGIONAL, False),
    ("the region is the household's first row's", "vehicle_owned",
     [roll_row("H1", A, region_code="320303001"), roll_row("H1", IN_320302, region_code="320302001")],
     {"vehicles": [{"id_number": IN_320302, "plate": "苏C1", "vehicle_type": "car", "status": "normal"}]},
     REGIONAL, True),
    ("a vehicle of an elderly-allowance household only", "vehicle_owned", [roll_row("H1", A, "elderly")],
     {"vehicles": [{"id_number": A, "plate": "苏C1", "vehicle_type": "car", "status": "normal"}]},
     POLICY, False),
    ("housing fund paid 5 months ago: outside the default lookback", "housing_fund_active", [roll_row("H1", A)],
     {"housing_fund": [{"id_number": A, "employer": "X", "last_paid_month": "2026-02", "monthly_contribution": "300"}]},
     POLICY, False),
    ("housing fund paid 5 months ago: inside a 6-month regional lookback", "housing_fund_active",
     [roll_row("H1", IN_320302, region_code="320302001")],
     {"housing_fund": [{"id_number": IN_320302, "employer": "X", "last_paid_month": "2026-02",
                        "monthly_contribution": "300"}]},
     REGIONAL, True),
    ("two dwellings are allowed in the region", "property_excess",
     [roll_row("H1", IN_320302, region_code="320302001")],
     {"property": [{"id_number": IN_320302, "certificate_no": c, "usage": "residential", "area_m2": "90",
                    "status": "normal"} for c in ("P1", "P2")]},
     REGIONAL, False),
    ("two dwellings under the defaults", "property_excess", [roll_row("H1", A)],
     {"property": [{"id_number": A, "certificate_no": c, "usage": "residential", "area_m2": "90",
                    "status": "normal"} for c in ("P1", "P2")]},
     POLICY, True),
    ("two small dwellings of one person: 50 m² a person", "property_excess",
     [roll_row("H1", A)],
     {"property": [{"id_number": A, "certificate_no": c, "usage": "residential", "area_m2": "25",
                    "status": "normal"} for c in ("P1", "P2")]},
     POLICY, True),
    ("two small dwellings for a household of two: 25 m² a person cannot fire", "property_excess",
     [roll_row("H1", A), roll_row("H1", B)],
     {"property": [{"id_number": A, "certificate_no": c, "usage": "residential", "area_m2": "25",
                    "status": "normal"} for c in ("P1", "P2")]},
     POLICY, False),
    ("two dwellings at exactly 40 m² a person pass, the cent of slack", "property_excess",
     [roll_row("H1", A), roll_row("H1", B)],
     {"property": [{"id_number": A, "certificate_no": c, "usage": "residential", "area_m2": "40",
                    "status": "normal"} for c in ("P1", "P2")]},
     POLICY, True),
    ("a co-owned flat's area is its largest record's, counted once", "property_excess",
     [roll_row("H1", A), roll_row("H1", B)],
     {"property": [{"id_number": A, "certificate_no": "P1", "usage": "residential", "area_m2": "70", "status": "normal"},
                   {"id_number": B, "certificate_no": "P1", "usage": "residential", "area_m2": "10", "status": "normal"},
                   {"id_number": B, "certificate_no": "P2", "usage": "residential", "area_m2": "20", "status": "normal"}]},
     POLICY, True),
    ("a co-owned flat counts once", "property_excess", [roll_row("H1", A), roll_row("H1", B)],
     {"property": [{"id_number": pid, "certificate_no": "P1", "usage": "residential", "area_m2": "90",
                    "status": "normal"} for pid in (A, B)]},
     POLICY, False),
    ("deposits a cent under the limit of a household of two (800 × 2 × 24)", "assets_over_limit",
     [roll_row("H1", A), roll_row("H1", B)],
     {"deposits": [{"id_number": A, "bank": "X", "balance": "20000"}, {"id_number": B, "bank": "X", "balance": "18399.98"}]},
     POLICY, False),
    ("deposits at the limit pass, the cent of slack", "assets_over_limit", [roll_row("H1", A), roll_row("H1", B)],
     {"deposits": [{"id_number": A, "bank": "X", "balance": "20000"}, {"id_number": B, "bank": "X", "balance": "18400"}]},
     POLICY, True),
    ("income per capita under the regional standard", "income_over_standard",
     [roll_row("H1", IN_320302, region_code="320302001", declared_income_monthly="870")], {}, REGIONAL, False),
    ("income per capita over the default standard", "income_over_standard",
     [roll_row("H1", A, declared_income_monthly="870")], {}, POLICY, True),
    ("a resident pension is not income", "income_over_standard", [roll_row("H1", A)],
     {"pensions": [{"id_number": A, "pension_type": "resident", "monthly_amount": "900"}]}, POLICY, False),
    ("an employee pension is", "income_over_standard", [roll_row("H1", A)],
     {"pensions": [{"id_number": A, "pension_type": "employee", "monthly_amount": "900"}]}, POLICY, True),
    ("medical costs of last year are outside the window", "medical_hardship", [roll_row("H1", A, "edge")],
     {"medical": [{"id_number": A, "settled_on": "2025-06-30", "out_of_pocket": "30000"}]}, POLICY, False),
    ("names differing only in spaces and dots are the same name", "name_mismatch",
     [roll_row("H1", A, name="阿依 古丽•买买提")],
     {"hukou": [{"id_number": A, "name": "阿依古丽·买买提", "region_code": "320303001", "status": "normal"}]},
     POLICY, False),
    ("names differing in full-width forms only are the same name", "name_mismatch",
     [roll_row("H1", A, name="李１")],
     {"hukou": [{"id_number": A, "name": "李1", "region_code": "320303001", "status": "normal"}]},
     POLICY, False),
    ("names differing by a character run the rule", "name_mismatch", [roll_row("H1", A, name="张 三")],
     {"hukou": [{"id_number": A, "name": "张山", "region_code": "320303001", "status": "normal"}]}, POLICY, True),
    ("machinery of a member of an edge household cannot fire", "machinery_owned", [roll_row("H1", A, "edge")],
     {"farm_machinery": [{"id_number": A, "machine_type": "harvester", "purchase_price": "200000"}]}, POLICY, False),
    ("machinery of a member of a dibao household", "machinery_owned",
     [roll_row("H1", A, "edge"), roll_row("H1", B)],
     {"farm_machinery": [{"id_number": A, "machine_type": "harvester", "purchase_price": "200000"}]}, POLICY, True),
    ("a payroll record of a tekun household's member", "public_payroll", [roll_row("H1", A, "tekun")],
     {"payroll": [{"id_number": A, "employer": "某局", "monthly_salary": "6000"}]}, POLICY, True),
    ("a payroll record of a temp household's member cannot fire", "public_payroll", [roll_row("H1", A, "temp")],
     {"payroll": [{"id_number": A, "employer": "某局", "monthly_salary": "6000"}]}, POLICY, False),
    ("a cadre's relative enrolled in elderly allowance only cannot fire", "cadre_relative",
     [roll_row("H1", A, "elderly")],
     {"cadre_relatives": [{"id_number": A, "cadre_id_number": B, "cadre_name": "李四", "relation": "子女"}]},
     POLICY, False),
    ("a cadre's relative on temporary assistance", "cadre_relative", [roll_row("H1", A, "temp")],
     {"cadre_relatives": [{"id_number": A, "cadre_id_number": B, "cadre_name": "李四", "relation": "子女"}]},
     POLICY, True),
    ("a hukou death after as-of", "deceased", [roll_row("H1", A)],
     {"hukou": [{"id_number": A, "name": "张三", "region_code": "320303001", "status": "deceased",
                 "status_date": "2026-07-01"}]}, POLICY, False),
    ("an undated hukou death", "deceased", [roll_row("H1", A)],
     {"hukou": [{"id_number": A, "name": "张三", "region_code": "320303001", "status": "deceased"}]}, POLICY, True),
]


@pytest.mark.parametrize(("description", "rule_id", "roll", "sources", "policy", "expected"), EDGES,
                         ids=[e[0] for e in EDGES])
def test_screen_edges(description, rule_id, roll, sources, policy, expected):
    roll_frame, source_frames = frames(roll, sources)
    index = CheckIndex(None, source_frames, policy)
    resolved = index.resolve(roll_frame, AS_OF)
    assert RULES[rule_id].screen(Few(resolved, source_frames, AS_OF, policy)) is expected, description
    if not expected:  # and the rule agrees
        assert _hits(RULES[rule_id], resolved, source_frames, AS_OF, policy).height == 0, description
