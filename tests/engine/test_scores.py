"""engine.scores: what a roll ID's spelling still says, and how a hukou candidate scores against
a roll row. The figures are the ones engine.resolve's docstring gives for its thresholds."""

from __future__ import annotations

import pytest

from engine import names
from engine.scores import Reading, reading, region_score, score

from .casebook import person

P = person(123, born="19800101")  # 320303198001011235
TWIN = person(125, born="19800101")  # the same day, the next number: one digit from P
ROUNDS_UP = person(157, born="19800102")  # 16th digit ≥ 5: rounding would change the 15th
VILLAGE, OTHER_VILLAGE, OTHER_COUNTY = "320303001001", "320303001009", "320311002003"


def test_readings_of_excel_damage():
    assert reading("3.20303E+17") == Reading("3.20303E+17", "320303", rounded=True)
    assert reading(f"{int(ROUNDS_UP):.5E}").agrees(ROUNDS_UP)  # the display rounds
    assert reading(" 3.2030319800E17 ").kept == "320303198"  # trailing zeros carry nothing
    assert reading(P[:15] + "000") == Reading(P[:15] + "000", P[:15])
    assert reading(P).kept == "" and reading("3.2E+5").kept == ""  # not an 18-digit number
    assert reading(P[:15] + "000").agrees(P) and not reading(P[:15] + "000").agrees(TWIN[:14] + "9991")


def test_an_id_ending_in_x_never_agrees_with_excel_damage():
    # Excel keeps an ID ending in X as text: a cut number cannot have come from it.
    ends_in_x = next(person(n) for n in range(1000) if person(n).endswith("X"))
    assert not reading(ends_in_x[:15] + "000").agrees(ends_in_x)


@pytest.mark.parametrize(
    "description, spelled, candidate, expected",
    [
        ("the same ID", P, P, 0),
        ("one digit keyed wrong", P[:15] + str((int(P[15]) + 4) % 10) + P[16:], P, 1),
        ("two adjacent digits swapped is one edit", P[:10] + P[11] + P[10] + P[12:], P, 1),
        ("a legacy 15-digit ID against its 18-digit form", P[:6] + P[8:17], P, 0),
        ("a legacy ID one edit from the 18-digit form's", P[:6] + P[8:16] + "9", P, 1),
    ],
    ids=lambda value: value if isinstance(value, str) and not value[:1].isdigit() else "",
)
def test_edits_between_a_spelling_and_a_candidate(description, spelled, candidate, expected):
    assert reading(spelled).edits(candidate) == expected


def test_born14_only_when_the_spelling_still_has_a_real_past_birth_date():
    from datetime import date

    assert reading(P[:17]).born14(date(2026, 1, 1)) == P[:14]
    assert reading(P[:15] + "000").born14(None) == P[:14]  # from the digits Excel kept
    assert reading(P[:14]).born14(date(1979, 12, 31)) is None  # born after the day of the check
    assert reading("32030319801301").born14(None) is None  # month 13
    assert reading("3.20303E+17").born14(None) is None  # six digits kept: no date in them


@pytest.mark.parametrize(
    "roll, hukou_region, expected",
    [("320303001", "320303001001", 100.0), ("320303001001", "320303001001", 100.0),
     ("320303001001", "320303001009", 60.0), ("320303002", "320303001001", 30.0), ("320303", "320311001001", 0.0),
     (None, "320303001001", 0.0), ("", "320303001001", 0.0)],
)
def test_region_score(roll, hukou_region, expected):
    assert region_score(roll, hukou_region) == expected


def _total(spelled: str, roll_name: str, roll_region: str, candidate: str, name: str, region: str) -> float:
    return score(reading(spelled), names.key(roll_name), roll_region, candidate, names.key(name), region)[0]


ONE_EDIT = P[:15] + str((int(P[15]) + 4) % 10) + P[16:]
TWO_EDITS = ONE_EDIT[:16] + str((int(P[16]) + 4) % 10) + P[17]


@pytest.mark.parametrize(
    "description, arguments, expected",
    [
        ("one keying error, the right name, where the roll says", (ONE_EDIT, "张伟", VILLAGE, P, "张伟", VILLAGE), 90.0),
        ("one keying error with a homophone", (ONE_EDIT, "张伟", VILLAGE, P, "章伟", VILLAGE), 87.75),
        ("one keying error, the person moved county", (ONE_EDIT, "张伟", VILLAGE, P, "张伟", OTHER_COUNTY), 85.0),
        ("two keying errors score at most 80", (TWO_EDITS, "张伟", VILLAGE, P, "张伟", VILLAGE), 80.0),
        # id 83.33: (833.3 + 900 + 100) / 20 is 91.665, stored a hair below, so rounded down
        ("Excel's …000 keeps 15 digits", (P[:15] + "000", "张伟", VILLAGE, P, "张伟", VILLAGE), 91.66),
        ("3.20303E+17 keeps six digits: never enough", ("3.20303E+17", "张伟", VILLAGE, P, "张伟", VILLAGE), 66.66),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_scores_of_the_common_outcomes(description, arguments, expected):
    assert _total(*arguments) == expected


def test_a_score_is_its_parts_weighed_10_9_1():
    total, id_part, name_part, region_part, edits = score(reading(ONE_EDIT), names.key("张伟"), OTHER_VILLAGE, P,
                                                          names.key("王芳"), VILLAGE)
    assert (id_part, region_part, edits) == (80.0, 60.0, 1)
    assert name_part < names.COMPATIBLE
    assert total == round((10 * id_part + 9 * name_part + 1 * region_part) / 20, 2)
