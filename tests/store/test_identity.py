"""Flag keys and evidence fingerprints: what makes a finding the same finding."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.run import empty_flags
from store.identity import fingerprint, identify, identity_columns


def flag(rule_id: str, evidence: dict, household: str = "H1", program: str = "dibao", id_number: str = "P1",
         level: str = "household") -> dict:
    return {"rule_id": rule_id, "household_id": household, "program": program, "id_number": id_number,
            "level": level, "evidence": json.dumps(evidence, ensure_ascii=False)}


def frame(*rows: dict) -> pl.DataFrame:
    base = empty_flags()
    return pl.concat([base, pl.DataFrame(list(rows))], how="diagonal_relaxed") if rows else base


CAR = {"id_number": "P1", "plate": "苏C12345", "vehicle_type": "car", "purchase_price": 61100.0, "status": "normal"}


@pytest.mark.parametrize(
    ("rule_id", "columns"),
    [
        ("vehicle_owned", ("plate",)),
        ("property_excess", ("certificate_no",)),
        ("cadre_relative", ("cadre_id_number",)),
        ("assets_over_limit", ("bank",)),
        ("public_payroll", ("employer",)),
        ("deceased", ()),
        ("income_over_standard", ()),
        ("no_such_rule", ()),
    ],
)
def test_identity_columns_come_from_the_schemas(rule_id, columns):
    assert identity_columns(rule_id) == columns


@pytest.mark.parametrize(
    ("a", "b", "same_key", "same_fingerprint", "why"),
    [
        (flag("vehicle_owned", {"records": [CAR]}),
         flag("vehicle_owned", {"records": [{**CAR, "purchase_price": 90000.0}]}), True, False, "new price: same car"),
        (flag("vehicle_owned", {"records": [CAR]}),
         flag("vehicle_owned", {"records": [{**CAR, "plate": "苏C99999"}]}), False, False, "another car"),
        (flag("vehicle_owned", {"records": [CAR, {**CAR, "plate": "苏A1"}]}),
         flag("vehicle_owned", {"records": [{**CAR, "plate": "苏A1"}, CAR]}), True, True, "record order"),
        (flag("deceased", {"records": [{"record_source": "deaths", "date": "2026-03-15"}], "death_date": "2026-03-15",
                           "overpayment": 2400.0}, level="person"),
         flag("deceased", {"records": [{"record_source": "deaths", "date": "2026-03-15"}], "death_date": "2026-03-15",
                           "overpayment": 3200.0}, level="person"), True, True, "the estimate grows"),
        (flag("deceased", {"records": [], "death_date": "2026-03-15"}, level="person"),
         flag("deceased", {"records": [], "death_date": "2026-04-15"}, level="person"), True, False, "new death date"),
        (flag("duplicate_enrollment", {"records": [{"enrolled_household_id": "H1", "roll_row": 7}]}, level="person"),
         flag("duplicate_enrollment", {"records": [{"enrolled_household_id": "H1", "roll_row": 9}]}, level="person"),
         True, True, "the roll was re-sorted"),
        (flag("deceased", {"death_date": "2026-03-15"}, level="person", id_number="P1"),
         flag("deceased", {"death_date": "2026-03-15"}, level="person", id_number="P2"), False, True, "another person"),
        (flag("vehicle_owned", {"records": [CAR]}, id_number="HEAD1"),
         flag("vehicle_owned", {"records": [CAR]}, id_number="HEAD2"), True, True, "a new head of household"),
        (flag("vehicle_owned", {"records": [CAR]}, program="dibao"),
         flag("vehicle_owned", {"records": [CAR]}, program="tekun"), False, True, "another program"),
    ],
)
def test_key_and_fingerprint(a, b, same_key, same_fingerprint, why):
    left, right = identify(frame(a)), identify(frame(b))
    assert (left["key"][0] == right["key"][0]) is same_key, why
    assert (left["fingerprint"][0] == right["fingerprint"][0]) is same_fingerprint, why


def test_the_same_finding_twice_in_one_run_gets_two_keys():
    twice = identify(frame(flag("duplicate_enrollment", {"records": []}, level="person"),
                           flag("duplicate_enrollment", {"records": []}, level="person")))
    assert twice["key"].n_unique() == 2


def test_identity_is_readable():
    out = identify(frame(flag("vehicle_owned", {"records": [CAR, {**CAR, "plate": "苏A1"}]})))
    assert json.loads(out["identity"][0]) == ["苏A1", "苏C12345"] and out["person"][0] == ""


plates = st.lists(st.text("ABC123", min_size=1, max_size=3), min_size=1, max_size=4, unique=True)


@given(st.lists(st.tuples(st.sampled_from(["H1", "H2", "H3"]), plates, st.floats(0, 1e6, allow_nan=False)),
                min_size=1, max_size=8), st.randoms())
def test_keys_do_not_depend_on_row_order(rows, rnd):
    flags = [flag("vehicle_owned", {"records": [{**CAR, "plate": p, "purchase_price": price} for p in ps]}, household=h)
             for h, ps, price in rows]
    shuffled = flags[:]
    rnd.shuffle(shuffled)
    first, second = identify(frame(*flags)), identify(frame(*shuffled))
    pairs = lambda f: sorted(zip(f["key"].to_list(), f["fingerprint"].to_list(), strict=True))
    assert pairs(first) == pairs(second)
    assert first["key"].n_unique() == first.height


@given(st.dictionaries(st.sampled_from(["total", "limit", "age", "overpayment"]), st.floats(0, 1e6, allow_nan=False)))
def test_fingerprint_ignores_only_the_volatile_fields(metrics):
    evidence = json.dumps({"records": [CAR], **metrics})
    changed = {**metrics, "age": 1.0, "overpayment": 2.0}
    assert fingerprint(evidence) == fingerprint(json.dumps({"records": [CAR], **changed}))
    if "total" in metrics:
        assert fingerprint(evidence) != fingerprint(json.dumps({"records": [CAR], **metrics, "total": -1}))


def test_fingerprint_keeps_the_suggestion_but_not_the_runner_up_scores():
    def evidence(suggested: str, runner_up_score: float) -> str:
        resolution = {
            "reason": "invalid_id", "status": "resolved", "suggested_id": suggested, "method": "repaired",
            "score": 90.0, "candidates": [{"id_number": suggested, "score": 90.0},
                                          {"id_number": "X", "score": runner_up_score}],
        }
        return json.dumps({"records": [{"roll_id_number": "1"}], "resolution": resolution})

    assert fingerprint(evidence("A", 60.0)) == fingerprint(evidence("A", 70.0))
    assert fingerprint(evidence("A", 60.0)) != fingerprint(evidence("B", 60.0))
