"""engine.fold_small: a check's findings folded in Python give run()'s flags, row for row.

Table-driven over what fold decides (each case checked through engine.check, whose flags come
from fold_small, against run(), whose flags come from engine.run.fold): who a flag names, one flag
per program, the records' order, the evidence object, the sort. The city-wide comparisons are in
test_check.py (every household alone) and test_screens.py (hypothesis over groups).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.check import CheckIndex
from engine.fold_small import folded, shaped
from engine.rules import RULES
from engine.run import FLAG_COLUMNS, _hits, run

from .casebook import AS_OF, POLICY, frames, person, roll_row

A, B, C = person(41), person(42), person(43)
WRONG = A[:17] + ("0" if A[17] != "0" else "1")  # a check character that does not fit
CAR = {"plate": "苏C1", "vehicle_type": "car", "purchase_price": "90000", "status": "normal"}
DEAD = {"death_date": "2026-01-05"}

CASES = [
    # (description, roll rows, sources, rules (None: all), expected flags: (rule_id, id_number, program) in order)
    ("a person listed twice in one program is flagged twice, in roll order",
     [roll_row("H1", A), roll_row("H1", A, name="张三")],
     {"deaths": [{"id_number": A, **DEAD}]}, ["deceased"],
     [("deceased", A, "dibao"), ("deceased", A, "dibao")]),
    ("a household rule names the head (户主), once per program of the rule's",
     [roll_row("H1", A, relation="子女"), roll_row("H1", B, relation="户主"), roll_row("H1", C, program="edge")],
     {"vehicles": [{"id_number": A, **CAR}]}, ["vehicle_owned"],
     [("vehicle_owned", B, "dibao")]),
    ("without a head, the household's first row is named",
     [roll_row("H1", A, program="tekun"), roll_row("H1", B)],
     {"vehicles": [{"id_number": B, **CAR}]}, ["vehicle_owned"],
     [("vehicle_owned", A, "dibao"), ("vehicle_owned", A, "tekun")]),
    ("a household outside the rule's programs is not flagged",
     [roll_row("H1", A, program="edge")],
     {"vehicles": [{"id_number": A, **CAR}]}, ["vehicle_owned"],
     []),
    ("several records of one finding, in evidence order",
     [roll_row("H1", A), roll_row("H1", B)],
     {"vehicles": [{"id_number": B, **CAR, "plate": "苏C9"}, {"id_number": A, **CAR, "plate": "苏C2"},
                   {"id_number": A, **CAR, "plate": "苏C1"}]}, ["vehicle_owned"],
     [("vehicle_owned", A, "dibao")]),
    ("an invalid ID: the problem and the resolution in the evidence",
     [roll_row("H1", WRONG)],
     {}, ["id_invalid"],
     [("id_invalid", WRONG, "dibao")]),
    ("a household's flags by ID, as polars orders text",
     [roll_row("H1", "abc"), roll_row("H1", WRONG), roll_row("H1", "12345")], {}, ["id_invalid"],
     [("id_invalid", "12345", "dibao"), ("id_invalid", WRONG, "dibao"), ("id_invalid", "ABC", "dibao")]),
    ("rules in catalogue order, households and IDs in order within each",
     [roll_row("H2", B), roll_row("H1", A), roll_row("H1", C, program="tekun")],
     {"deaths": [{"id_number": C, **DEAD}, {"id_number": B, **DEAD}],
      "vehicles": [{"id_number": A, **CAR}]}, None,
     [("deceased", C, "tekun"), ("deceased", B, "dibao"), ("vehicle_owned", A, "dibao"),
      ("vehicle_owned", A, "tekun")]),
]


@pytest.mark.parametrize(("description", "roll", "sources", "rules", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_check_folds_what_run_folds(description, roll, sources, rules, expected):
    roll_frame, source_frames = frames(roll, sources)
    checked = CheckIndex(None, source_frames, POLICY).check(roll_frame, AS_OF, rules).flags
    whole = run(roll_frame, source_frames, AS_OF, POLICY, rules).flags
    assert checked.equals(whole), description
    assert list(checked.select("rule_id", "id_number", "program").iter_rows()) == expected, description
    assert checked.schema == pl.Schema(FLAG_COLUMNS)


def test_the_evidence_is_one_json_object_with_records_metrics_and_roll_metrics():
    roll_frame, source_frames = frames([roll_row("H1", WRONG)], {})
    flags = CheckIndex(None, source_frames, POLICY).check(roll_frame, AS_OF, ["id_invalid"]).flags
    evidence = json.loads(flags.get_column("evidence").item())
    assert evidence["records"][0]["roll_id_number"] == WRONG
    assert evidence["records"][0]["problem"]
    assert "resolution" in evidence


def test_nothing_found_folds_to_no_flags_of_the_contract_columns():
    flags = folded([], pl.DataFrame(), None, set(), AS_OF)
    assert flags.height == 0 and flags.schema == pl.Schema(FLAG_COLUMNS)


# ---- the hits' shape, made in Python, is fold's --------------------------------------------------

EVIDENCE = {"plate": pl.String, "price": pl.Float64, "seen": pl.Date, "count": pl.UInt32, "active": pl.Boolean}
SHAPE_VALUES = {
    pl.String: st.sampled_from(["苏A1", "苏A2", "b", "", 'q"uote']),
    pl.Float64: st.sampled_from([0.0, -1.5, 2.5e-5, 1e16, 800.0, float("nan"), float("inf")]),
    pl.Date: st.sampled_from([date(2026, 1, 5), date(2025, 12, 31)]),
    pl.UInt32: st.integers(0, 3),
    pl.Boolean: st.booleans(),
}


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_hits_shaped_in_python_are_folds(data):
    """Sorted by key and evidence (nulls last, NaN after numbers), each record and the metrics as
    polars writes them: the same tuples as fold's own expressions (engine.run._hits) give."""
    level = data.draw(st.sampled_from(["person", "household"]))
    key, key_type = ("_order", pl.Int64) if level == "person" else ("household_id", pl.String)
    evidence = data.draw(st.lists(st.sampled_from(sorted(EVIDENCE)), unique=True, max_size=3))
    metrics = data.draw(st.lists(st.sampled_from(["overpayment", "total"]), unique=True, max_size=2))
    schema = {key: key_type, **{c: EVIDENCE[c] for c in evidence}, **dict.fromkeys(metrics, pl.Float64)}
    height = data.draw(st.integers(1, 6))
    keys = st.none() | (st.integers(0, 2) if level == "person" else st.sampled_from(["H1", "H2"]))
    rows = [tuple(data.draw(keys if name == key else st.none() | SHAPE_VALUES[dtype]) for name, dtype in schema.items())
            for _ in range(height)]
    hits = pl.DataFrame(rows, schema=schema, orient="row")
    rule = replace(RULES["vehicle_owned"], level=level, evidence=tuple(evidence), metrics=tuple(metrics), annotate=None)
    shape = shaped(rule, hits.lazy(), AS_OF)
    assert shape.__name__ == "shape"  # made in Python, not by fold's expressions
    made = shape(hits)
    expected = _hits(None, rule, hits.lazy()).collect().rows()
    # polars' sort is not stable: rows equal in key and evidence may come in either order.
    assert [(k, r) for k, r, *_ in made] == [(k, r) for k, r, *_ in expected]
    assert sorted(map(repr, made)) == sorted(map(repr, expected))


def test_a_rule_whose_evidence_python_does_not_encode_is_shaped_by_polars():
    hits = pl.DataFrame({"_order": [1, 0], "when": [datetime(2026, 1, 2, 3, 4), None]})
    rule = replace(RULES["deceased"], evidence=("when",), metrics=(), annotate=None)
    shape = shaped(rule, hits.lazy(), AS_OF)
    assert shape.__name__ == "by_polars"
    assert shape(hits) == [(0, "{\"when\":null}", None, None),
                                     (1, "{\"when\":\"2026-01-02 03:04:00\"}", None, None)]


def test_records_sort_as_polars_sorts_nan_after_numbers_and_null_last():
    hits = pl.DataFrame({"_order": [0, 0, 0, 0, 0], "price": [None, float("nan"), 2.0, -1.5, float("inf")]})
    rule = replace(RULES["deceased"], evidence=("price",), metrics=(), annotate=None)
    shape = shaped(rule, hits.lazy(), AS_OF)
    made = shape(hits)
    assert made == _hits(None, rule, hits.lazy()).collect().rows()
    assert [record for _, record, *_ in made] == ['{"price":-1.5}', '{"price":2.0}', '{"price":null}',
                                                 '{"price":null}', '{"price":null}']  # inf, NaN, null
