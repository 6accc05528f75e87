"""Every rule of the catalogue, table-driven: {description, roll, sources, expected households}.

Each case runs only the rule under test, through the real loader, on a few hand-written rows,
with positive cases beside the exempt neighbours that must not fire.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from engine.check import CheckIndex
from engine.rules import CATALOGUE, RULES

from .casebook import AS_OF, POLICY, flagged, frames, person, roll_row, run_case

A, B, C, D = person(11), person(22), person(33), person(44)
X_ID = person(9)  # its check character is X
OLD = person(55, born="19400101")
AGED_79 = person(66, born="19460701")  # 80 on 2026-07-01, the day after as-of
AGED_80 = person(77, born="19460630")  # 80 exactly on the as-of date
E320302 = person(88, region="320302")
UNBORN = person(12, born="20270319")  # a valid ID but for its birth date, later than as-of
HUKOU_OK = [
    {"id_number": pid, "name": "张三", "region_code": "320303001", "status": "normal"} for pid in (A, B, C, D)
]


def legacy15(pid: str) -> str:
    return pid[:6] + pid[8:17]


CASES = [
    # ---- roll-only person rules
    ("id_invalid", "Excel scientific notation", [roll_row("H1", "3.20303E+17")], {}, {"H1"}),
    ("id_invalid", "18 digits ending 000", [roll_row("H1", "320303196001011000")], {}, {"H1"}),
    ("id_invalid", "mistyped check digit", [roll_row("H1", A[:17] + ("0" if A[17] != "0" else "1"))], {}, {"H1"}),
    ("id_invalid", "lowercase x, spaces, full-width are only spelling",
     [roll_row("H1", chr(0xFF10 + int(X_ID[0])) + X_ID[1:6] + " " + X_ID[6:].lower())], {}, set()),
    ("id_invalid", "valid legacy 15-digit ID", [roll_row("H1", legacy15(A))], {}, set()),
    ("id_invalid", "born after the as-of date", [roll_row("H1", UNBORN)], {}, {"H1"}),
    ("duplicate_enrollment", "same person in two households",
     [roll_row("H1", A), roll_row("H2", A)], {}, {"H1", "H2"}),
    ("duplicate_enrollment", "twice in one program of one household",
     [roll_row("H1", A), roll_row("H1", A)], {}, {"H1"}),
    ("duplicate_enrollment", "two programs in one household is normal",
     [roll_row("H1", A), roll_row("H1", A, "disability_living")], {}, set()),
    ("duplicate_enrollment", "15-digit spelling is the same person",
     [roll_row("H1", A), roll_row("H2", legacy15(A))], {}, {"H1", "H2"}),
    ("program_conflict", "dibao and tekun", [roll_row("H1", A), roll_row("H2", A, "tekun")], {}, {"H1", "H2"}),
    ("program_conflict", "dibao and edge is not a conflict",
     [roll_row("H1", A), roll_row("H1", A, "edge")], {}, set()),
    ("elderly_underage", "79 on the as-of date", [roll_row("H1", AGED_79, "elderly")], {}, {"H1"}),
    ("elderly_underage", "80 exactly on the as-of date", [roll_row("H1", AGED_80, "elderly")], {}, set()),
    ("elderly_underage", "rule only looks at the elderly allowance", [roll_row("H1", A, "dibao")], {}, set()),
    ("disability_living_without_dibao", "subsidy alone",
     [roll_row("H1", A, "disability_living")], {}, {"H1"}),
    ("disability_living_without_dibao", "tekun in another household counts",
     [roll_row("H1", A, "disability_living"), roll_row("H2", A, "tekun")], {}, set()),
    # ---- hukou
    ("hukou_not_found", "absent from hukou", [roll_row("H1", A), roll_row("H2", person(99))],
     {"hukou": HUKOU_OK}, {"H2"}),
    ("hukou_not_found", "hukou holds the legacy 15-digit spelling",
     [roll_row("H1", A)], {"hukou": [{**HUKOU_OK[0], "id_number": legacy15(A)}]}, set()),
    ("hukou_not_found", "an invalid ID is id_invalid, not absent",
     [roll_row("H1", "3.20303E+17")], {"hukou": HUKOU_OK}, set()),
    ("name_mismatch", "different name", [roll_row("H1", A, name="张四")], {"hukou": HUKOU_OK}, {"H1"}),
    ("name_mismatch", "spaces, full-width space and middle-dot variants are the same name",
     [roll_row("H1", A, name="阿卜杜·热合曼"), roll_row("H2", B, name="张　三")],
     {"hukou": [{**HUKOU_OK[0], "name": "阿卜杜•热合曼"}, {**HUKOU_OK[1], "name": "张 三"}]}, set()),
    ("name_mismatch", "full-width forms and further dot look-alikes are the same name",
     [roll_row("H1", A, name="ＪＯＨＮ Ｌｉ"), roll_row("H2", B, name="阿卜杜\u0387热合曼")],
     {"hukou": [{**HUKOU_OK[0], "name": "JOHN Li"}, {**HUKOU_OK[1], "name": "阿卜杜\ua78f热合曼"}]}, set()),
    ("name_mismatch", "a full-width form of another letter is another name",
     [roll_row("H1", A, name="ＪＯＨＮ")], {"hukou": [{**HUKOU_OK[0], "name": "JOHNNY"}]}, {"H1"}),
    ("moved_out", "status moved out", [roll_row("H1", A)],
     {"hukou": [{**HUKOU_OK[0], "status": "迁出"}]}, {"H1"}),
    ("moved_out", "registered in another county", [roll_row("H1", A)],
     {"hukou": [{**HUKOU_OK[0], "region_code": "320311001"}]}, {"H1"}),
    ("moved_out", "another township of the same county is not a move", [roll_row("H1", A)],
     {"hukou": [{**HUKOU_OK[0], "region_code": "320303009"}]}, set()),
    # ---- deaths
    ("deceased", "death record before as-of", [roll_row("H1", A)],
     {"deaths": [{"id_number": A, "death_date": "2026-03-15"}]}, {"H1"}),
    ("deceased", "death after as-of", [roll_row("H1", A)],
     {"deaths": [{"id_number": A, "death_date": "2026-07-01"}]}, set()),
    ("deceased", "hukou status deceased", [roll_row("H1", A)],
     {"hukou": [{**HUKOU_OK[0], "status": "deceased", "status_date": "2026/05/02"}]}, {"H1"}),
    # ---- medical (edge households only)
    ("medical_hardship", "over the threshold within 12 months",
     [roll_row("H1", A, "edge"), roll_row("H1", B, "edge")],
     {"medical": [{"id_number": A, "settled_on": "2025-07-01", "out_of_pocket": "12000"},
                  {"id_number": B, "settled_on": "2026-06-30", "out_of_pocket": "8000"}]}, {"H1"}),
    ("medical_hardship", "a settlement exactly 12 months back is outside",
     [roll_row("H1", A, "edge")],
     {"medical": [{"id_number": A, "settled_on": "2025-06-30", "out_of_pocket": "25000"}]}, set()),
    ("medical_hardship", "just under the threshold", [roll_row("H1", A, "edge")],
     {"medical": [{"id_number": A, "settled_on": "2026-01-01", "out_of_pocket": "19999.99"}]}, set()),
    ("medical_hardship", "dibao households are not in scope", [roll_row("H1", A)],
     {"medical": [{"id_number": A, "settled_on": "2026-01-01", "out_of_pocket": "50000"}]}, set()),
    # ---- quarterly household rules
    ("vehicle_owned", "a car", [roll_row("H1", A), roll_row("H1", B)],
     {"vehicles": [{"id_number": B, "plate": "苏C12345", "vehicle_type": "小型汽车", "status": "正常"}]}, {"H1"}),
    ("vehicle_owned", "motorcycle, mobility vehicle, scrapped car, car of an edge household",
     [roll_row("H1", A), roll_row("H2", B), roll_row("H3", C), roll_row("H4", D, "edge")],
     {"vehicles": [{"id_number": A, "plate": "1", "vehicle_type": "motorcycle", "status": "normal"},
                   {"id_number": B, "plate": "2", "vehicle_type": "disabled_mobility", "status": "normal"},
                   {"id_number": C, "plate": "3", "vehicle_type": "car", "status": "scrapped"},
                   {"id_number": D, "plate": "4", "vehicle_type": "car", "status": "normal"}]}, set()),
    ("machinery_owned", "a harvester", [roll_row("H1", A, "tekun"), roll_row("H2", B, "temp")],
     {"farm_machinery": [{"id_number": A, "machine_type": "收割机"}, {"id_number": B, "machine_type": "拖拉机"}]},
     {"H1"}),
    ("property_excess", "a parking space", [roll_row("H1", A)],
     {"property": [{"id_number": A, "certificate_no": "P1", "usage": "车位", "area_m2": "12", "status": "正常"}]},
     {"H1"}),
    ("property_excess", "a cancelled shop", [roll_row("H1", A)],
     {"property": [{"id_number": A, "certificate_no": "P1", "usage": "commercial", "area_m2": "50",
                    "status": "cancelled"}]}, set()),
    ("property_excess", "two flats, 45 m² per person", [roll_row("H1", A), roll_row("H1", B)],
     {"property": [{"id_number": A, "certificate_no": "P1", "usage": "residential", "area_m2": "70"},
                   {"id_number": B, "certificate_no": "P2", "usage": "residential", "area_m2": "20"}]}, {"H1"}),
    ("property_excess", "a co-owned flat counts once: 39 m² per person",
     [roll_row("H1", A), roll_row("H1", B)],
     {"property": [{"id_number": A, "certificate_no": "P1", "usage": "residential", "area_m2": "60"},
                   {"id_number": B, "certificate_no": "P1", "usage": "residential", "area_m2": "60"},
                   {"id_number": B, "certificate_no": "P2", "usage": "residential", "area_m2": "18"}]}, set()),
    ("property_excess", "one big flat is not excess", [roll_row("H1", A)],
     {"property": [{"id_number": A, "certificate_no": "P1", "usage": "residential", "area_m2": "300"}]}, set()),
    ("housing_fund_active", "paid in the as-of month and two months back",
     [roll_row("H1", A), roll_row("H2", B)],
     {"housing_fund": [{"id_number": A, "last_paid_month": "2026-06"},
                       {"id_number": B, "last_paid_month": "2026-04"}]}, {"H1", "H2"}),
    ("housing_fund_active", "paid in a month after as-of (a later delivery): paying still", [roll_row("H1", A)],
     {"housing_fund": [{"id_number": A, "last_paid_month": "2026-08"}]}, {"H1"}),
    ("housing_fund_active", "three months back is outside the window", [roll_row("H1", A)],
     {"housing_fund": [{"id_number": A, "last_paid_month": "2026-03"}]}, set()),
    ("incarcerated", "serving, or released after as-of", [roll_row("H1", A), roll_row("H2", B, "elderly")],
     {"prisoners": [{"id_number": A, "admitted_on": "2025-01-01"},
                    {"id_number": B, "admitted_on": "2025-01-01", "released_on": "2026-07-01"}]}, {"H1", "H2"}),
    ("incarcerated", "released by as-of, or admitted after it", [roll_row("H1", A), roll_row("H2", B)],
     {"prisoners": [{"id_number": A, "admitted_on": "2025-01-01", "released_on": "2026-06-30"},
                    {"id_number": B, "admitted_on": "2026-07-01"}]}, set()),
    ("cadre_relative", "declared relative in dibao, not in the elderly allowance",
     [roll_row("H1", A), roll_row("H2", B, "elderly")],
     {"cadre_relatives": [{"id_number": A, "cadre_name": "王书记"}, {"id_number": B, "cadre_name": "王书记"}]},
     {"H1"}),
    ("public_payroll", "member on payroll, edge household out of scope",
     [roll_row("H1", A), roll_row("H2", B, "edge")],
     {"payroll": [{"id_number": A, "monthly_salary": "500"}, {"id_number": B, "monthly_salary": "500"}]},
     {"H1"}),
    # ---- semiannual / annual totals
    ("income_over_standard", "declared income over the standard",
     [roll_row("H1", A, declared_income_monthly="1000"), roll_row("H1", B, declared_income_monthly="700")],
     {}, {"H1"}),
    ("income_over_standard", "a person's declared income counts once across programs",
     [roll_row("H1", A, declared_income_monthly="900"),
      roll_row("H1", A, "disability_living", declared_income_monthly="900"), roll_row("H1", B)], {}, set()),
    ("income_over_standard", "resident pension is not income; employee pension is",
     [roll_row("H1", A), roll_row("H2", B)],
     {"pensions": [{"id_number": A, "pension_type": "城乡居民", "monthly_amount": "5000"},
                   {"id_number": B, "pension_type": "employee", "monthly_amount": "2000"}]}, {"H2"}),
    ("income_over_standard", "the region's own standard (880) applies",
     [roll_row("H1", A, declared_income_monthly="850"),
      roll_row("H2", E320302, region_code="320302001", declared_income_monthly="850")], {}, {"H1"}),
    ("income_over_standard", "the head's region's standard, whichever row comes first",
     [roll_row("H1", A, region_code="320303001", relation="配偶", declared_income_monthly="850"),
      roll_row("H1", E320302, region_code="320302001", relation="户主", declared_income_monthly="850")], {}, set()),
    ("income_over_standard", "payroll salary is income", [roll_row("H1", A), roll_row("H1", B)],
     {"payroll": [{"id_number": A, "monthly_salary": "3000"}]}, {"H1"}),
    ("assets_over_limit", "just over and exactly at the limit (800 × 1 × 24 = 19200)",
     [roll_row("H1", A), roll_row("H2", B)],
     {"deposits": [{"id_number": A, "balance": "19200.01"}, {"id_number": B, "balance": "19200"}]}, {"H1"}),
    ("assets_over_limit", "the region's standard raises the limit to 21120",
     [roll_row("H1", E320302, region_code="320302001")],
     {"deposits": [{"id_number": E320302, "balance": "21000"}]}, set()),
]


@pytest.mark.parametrize(
    "rule_id, description, roll, sources, expected", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES]
)
def test_rule_case(rule_id, description, roll, sources, expected):
    result = run_case(roll, sources, rules=[rule_id])
    assert flagged(result, rule_id) == expected


@pytest.mark.parametrize(
    "rule_id, description, roll, sources, expected", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES]
)
def test_rule_case_checked_as_run_flags_it(rule_id, description, roll, sources, expected):
    """The check (its plans compiled once, the hits annotated and shaped in Python) gives the
    case's flags exactly as run() does, evidence included."""
    roll_frame, source_frames = frames(roll, sources)
    checked = CheckIndex(None, source_frames, POLICY).check(roll_frame, AS_OF, [rule_id]).flags
    assert checked.equals(run_case(roll, sources, rules=[rule_id]).flags), description


@pytest.mark.parametrize("description, spelled, words", [
    ("born after the as-of date", UNBORN, "晚于核对基准日"),
    ("Excel scientific notation", "3.20303E+17", "Excel"),
    ("mistyped check digit", A[:17] + ("0" if A[17] != "0" else "1"), "校验位"),
])
def test_an_invalid_id_says_why_in_its_evidence_through_run_and_check(description, spelled, words):
    roll, sources = frames([roll_row("H1", spelled)], {})
    for result in (run_case([roll_row("H1", spelled)], {}, rules=["id_invalid"]),
                   CheckIndex(None, sources, POLICY).check(roll, AS_OF, ["id_invalid"])):
        records = [record for evidence in result.flags["evidence"].to_list()
                   for record in json.loads(evidence)["records"]]
        assert records and all(words in (record["problem"] or "") for record in records), description


def test_every_rule_has_a_case_that_fires():
    # The neighbours that must not fire sit in the same cases or in cases of their own.
    assert {c[0] for c in CASES if c[4]} == set(RULES)


@pytest.mark.parametrize(
    "death_date, expected",
    [("2026-03-15", 2400.0), ("2026-06-30", 0.0), ("2025-12-31", 4800.0)],
)
def test_deceased_overpayment_counts_months_after_the_death_month(death_date, expected):
    result = run_case(
        [roll_row("H1", A, benefit_monthly="800"), roll_row("H1", A, "disability_living", benefit_monthly="100")],
        {"deaths": [{"id_number": A, "death_date": death_date}]},
        rules=["deceased"],
    )
    by_program = dict(result.flags.select("program", "overpayment").iter_rows())
    months = expected / 800
    assert by_program == {"dibao": expected, "disability_living": round(100 * months, 2)}


def test_undated_hukou_death_fires_without_an_overpayment():
    result = run_case(
        [roll_row("H1", A)],
        {"hukou": [{**HUKOU_OK[0], "status": "deceased"}]},
        rules=["deceased"],
    )
    assert result.flags["overpayment"].to_list() == [None]


def test_household_flag_names_the_head_and_lists_member_evidence():
    result = run_case(
        [roll_row("H1", A, relation="配偶", name="李四"), roll_row("H1", B, relation="户主", name="张三")],
        {"vehicles": [{"id_number": A, "plate": "苏C1", "vehicle_type": "car"}]},
        rules=["vehicle_owned"],
    )
    flag = result.flags.row(0, named=True)
    assert (flag["id_number"], flag["name"], flag["source"]) == (B, "张三", "vehicles")
    records = json.loads(flag["evidence"])["records"]
    assert [(r["id_number"], r["plate"]) for r in records] == [(A, "苏C1")]


def test_flag_keeps_the_roll_spelling_and_reports_the_method():
    result = run_case([roll_row("H1", legacy15(A))], {"hukou": []}, rules=["hukou_not_found"])
    flag = result.flags.row(0, named=True)
    assert (flag["id_number"], flag["roll_id_number"], flag["match_method"]) == (A, legacy15(A), "legacy15")


def test_missing_sources_are_skipped_with_the_reason():
    result = run_case([roll_row("H1", A)], {"deaths": []})
    skipped = dict(result.skipped)
    assert "deceased" in result.ran and "deceased" not in skipped
    assert skipped["vehicle_owned"] == "source vehicles not provided"
    assert set(result.ran) | set(skipped) == set(RULES)


def test_flags_have_the_contract_columns_in_order():
    result = run_case([roll_row("H1", "bad")])
    assert result.flags.columns[:15] == [
        "rule_id", "severity", "cadence", "program", "household_id", "id_number", "roll_id_number", "name",
        "region_code", "source", "match_method", "match_score", "evidence", "overpayment", "as_of",
    ]
    assert result.flags.filter(pl.col("rule_id") == "id_invalid").height == 1


def test_catalogue_matches_the_contract_table():
    assert [r.id for r in CATALOGUE] == [
        "id_invalid", "hukou_not_found", "name_mismatch", "moved_out", "deceased", "duplicate_enrollment",
        "program_conflict", "elderly_underage", "disability_living_without_dibao", "medical_hardship",
        "vehicle_owned", "machinery_owned", "property_excess", "housing_fund_active", "incarcerated",
        "cadre_relative", "public_payroll", "income_over_standard", "assets_over_limit",
    ]
    household = {r.id for r in CATALOGUE if r.level == "household"}
    assert household == {
        "medical_hardship", "vehicle_owned", "machinery_owned", "property_excess", "housing_fund_active",
        "public_payroll", "income_over_standard", "assets_over_limit",
    }


@pytest.mark.parametrize("description, roll_name, held_name, kept", [
    ("full-width forms of the same letters are the same name", "ＪＯＨＮ", "JOHN", False),
    ("different names stay a mismatch", "张三", "张四", True),
    ("a null name compares to nothing, as in polars: dropped", None, "张三", False),
    ("a null held name likewise", "张三", None, False),
])
def test_name_mismatch_annotation_drops_what_the_name_key_calls_the_same(description, roll_name, held_name, kept):
    hits = pl.DataFrame({"_order": [0, 1], "roll_name": [roll_name, "李四"], "name": [held_name, "李五"]})
    annotated = RULES["name_mismatch"].annotate(hits, AS_OF)
    assert annotated.get_column("_order").to_list() == ([0, 1] if kept else [1]), description
    assert annotated.columns == hits.columns
