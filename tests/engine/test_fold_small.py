"""engine.fold_small: a check's findings folded in Python give run()'s flags, row for row.

Table-driven over what fold decides (each case checked through engine.check, whose flags come
from fold_small, against run(), whose flags come from engine.run.fold): who a flag names, one flag
per program, the records' order, the evidence object, the sort. The city-wide comparisons are in
test_check.py (every household alone) and test_screens.py (hypothesis over groups).
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from engine.check import CheckIndex
from engine.fold_small import folded
from engine.run import FLAG_COLUMNS, run

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
