"""ID resolution (engine.resolve), table-driven: one case per noise kind and per decoy kind, each
with the exact outcome (status, resolved ID, method, score); then the same through run() (the
flags), and invariants over random rolls (hypothesis)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ids
from engine.resolve import ACCEPT, MARGIN, SUGGEST, reachable, resolve
from engine.scores import reading

from .casebook import AS_OF, frames, person, roll_row, run_case

P = person(123, born="19800101")  # 320303198001011235, 张伟 of village 320303001001
TWIN = person(125, born="19800101")  # born the same day, next number: differs from P in one digit
FAR = person(187, born="19800101")  # same day, a number two digits away
ROUNDS_UP = person(157, born="19800102")  # 16th digit ≥ 5: rounding would change the 15th
ROUNDS_UP_14 = person(557, born="19800101")  # 15th digit ≥ 5: Excel's 14 digits end in 2, not 1
VILLAGE, TOWNSHIP_OTHER_VILLAGE, OTHER_COUNTY = "320303001001", "320303001009", "320311002003"


def sub(pid: str, place: int, char: str) -> str:
    return pid[:place] + char + pid[place + 1 :]


def swap(pid: str, place: int) -> str:
    return pid[:place] + pid[place + 1] + pid[place] + pid[place + 2 :]


def hukou(pid: str = P, name: str = "张伟", region: str = VILLAGE, status: str = "normal") -> dict[str, str]:
    return {"id_number": pid, "name": name, "region_code": region, "status": status}


def typo(pid: str = P, place: int = 15) -> str:
    return sub(pid, place, str((int(pid[place]) + 4) % 10))


# Scores of the common outcomes: (10 id + 9 name + 1 region) / 20.
ONE_EDIT = 90.0  # one edit, the same name, where the roll says
EXCEL_15 = round((10 * round(100 * 15 / 18, 2) + 900 + 100) / 20, 2)  # 91.66

# description, roll spelling, roll name, hukou rows, expected (status, the resolved or suggested ID,
# method, score)
CASES = [
    # ---- noise kinds
    ("typo in the sequence number", typo(), "张伟", [hukou()], ("resolved", P, "repaired", ONE_EDIT)),
    ("typo in the birth date", typo(place=9), "张伟", [hukou()], ("resolved", P, "repaired", ONE_EDIT)),
    ("typo in the region", typo(place=2), "张伟", [hukou()], ("resolved", P, "repaired", ONE_EDIT)),
    ("wrong check character", sub(P, 17, "X"), "张伟", [hukou()], ("resolved", P, "repaired", ONE_EDIT)),
    ("two adjacent digits swapped", swap(P, 12), "张伟", [hukou()], ("resolved", P, "repaired", ONE_EDIT)),
    ("last digit swapped with the check", swap(P, 16), "张伟", [hukou()], ("resolved", P, "repaired", ONE_EDIT)),
    ("a digit missing", P[:8] + P[9:], "张伟", [hukou()], ("resolved", P, "repaired", ONE_EDIT)),
    ("a digit too many", P[:8] + "7" + P[8:], "张伟", [hukou()], ("resolved", P, "repaired", ONE_EDIT)),
    ("two digits missing: only suggested", P[:8] + P[9:17], "张伟", [hukou()], ("suggested", P, None, 80.0)),
    ("Excel cut to 15 digits", P[:15] + "000", "张伟", [hukou()], ("resolved", P, "fuzzy", EXCEL_15)),
    ("Excel's 15 digits are cut, not rounded", f"{int(ROUNDS_UP[:15]) + 1}000", "张伟", [hukou(ROUNDS_UP)],
     ("weak", None, None, None)),
    ("Excel scientific notation keeping 14 digits", f"{int(P):.13E}", "张伟", [hukou()],
     ("resolved", P, "fuzzy", 88.89)),
    ("Excel scientific notation rounds up", f"{int(ROUNDS_UP_14):.13E}", "张伟", [hukou(ROUNDS_UP_14)],
     ("resolved", ROUNDS_UP_14, "fuzzy", 88.89)),
    ("Excel scientific notation keeping 12 digits: only suggested", f"{int(P):.12E}", "张伟", [hukou()],
     ("suggested", P, None, 83.34)),
    ("Excel scientific notation keeps 6 digits: not enough", f"{int(P):.5E}", "张伟", [hukou()],
     ("weak", None, None, None)),
    ("legacy 15-digit ID with an impossible date", sub(P[:6] + P[8:17], 8, "3"), "张伟", [hukou()],
     ("resolved", P, "repaired", ONE_EDIT)),
    ("homophone surname and a typo", typo(), "章伟", [hukou()], ("resolved", P, "repaired", 87.75)),
    ("homophone given name and a typo", typo(), "张玮", [hukou()], ("resolved", P, "repaired", 87.75)),
    ("moved to another county and a typo: exactly the threshold", typo(), "张伟",
     [hukou(region=OTHER_COUNTY)], ("resolved", P, "repaired", ACCEPT)),
    ("moved, homophone and a typo: only suggested", typo(), "章伟", [hukou(region=OTHER_COUNTY)],
     ("suggested", P, None, 82.75)),
    ("another name one edit away: a stranger", typo(), "李娜", [hukou()], ("weak", None, None, None)),
    ("missing from hukou, nobody near", typo(), "张伟", [hukou(FAR, "王芳")], ("weak", None, None, None)),
    ("missing from hukou, hukou empty", typo(), "张伟", [], ("none", None, None, None)),
    # ---- decoys
    ("namesake born the same day, same township", typo(), "张伟",
     [hukou(), hukou(FAR, region=TOWNSHIP_OTHER_VILLAGE)], ("resolved", P, "repaired", ONE_EDIT)),
    ("namesake one edit away too: ambiguous", TWIN[:17] + P[17], "张伟",
     [hukou(), hukou(TWIN, region=TOWNSHIP_OTHER_VILLAGE)], ("ambiguous", None, None, None)),
    ("twin with the next number, typo lands on it", TWIN[:17] + P[17], "张伟",
     [hukou(), hukou(TWIN, "张强")], ("resolved", P, "repaired", ONE_EDIT)),
    ("twin with a homophone name, typo lands on it: ambiguous", TWIN[:17] + P[17], "张伟",
     [hukou(), hukou(TWIN, "张玮")], ("ambiguous", None, None, None)),
    ("twin sharing the 15 digits Excel kept", P[:15] + "000", "张伟", [hukou(), hukou(TWIN, "张强")],
     ("resolved", P, "fuzzy", EXCEL_15)),
    ("namesake twin sharing the 15 digits Excel kept: ambiguous", P[:15] + "000", "张伟",
     [hukou(), hukou(TWIN, region=TOWNSHIP_OTHER_VILLAGE)], ("ambiguous", None, None, None)),
    ("missing from hukou, namesake twin one edit away: wrong, and unavoidable", TWIN[:17] + P[17], "张伟",
     [hukou(TWIN)], ("resolved", TWIN, "repaired", ONE_EDIT)),
    ("missing from hukou, namesake two edits away: only suggested", sub(P, 16, "9"), "张伟", [hukou(TWIN)],
     ("suggested", TWIN, None, 80.0)),
]


def _outcome(spelling: str, name: str, hukou_rows: list[dict[str, str]]) -> tuple:
    roll, sources = frames([roll_row("H1", spelling, name=name, region_code=VILLAGE)], {"hukou": hukou_rows})
    row = resolve(roll, sources["hukou"], AS_OF).row(0, named=True)
    res = row["resolution"] or {}
    resolved = res.get("status") == "resolved"
    if resolved:
        assert row["id_number"] == res["suggested_id"]
    return (res.get("status"), res.get("suggested_id"), row["match_method"] if resolved else None,
            res.get("score")), row


@pytest.mark.parametrize("description, spelling, name, hukou_rows, expected", CASES, ids=[c[0] for c in CASES])
def test_resolution_case(description, spelling, name, hukou_rows, expected):
    assert not ids.is_valid(ids.normalize(spelling), AS_OF), spelling
    outcome, row = _outcome(spelling, name, hukou_rows)
    status, _, _, score = expected
    assert outcome == expected
    assert row["roll_id_valid"] is False  # id_invalid still reads the spelling
    if status == "resolved":
        assert row["id_valid"] and row["match_score"] == score
    else:
        assert not row["id_valid"] and row["id_number"] == ids.normalize(spelling)
        assert row["match_method"] == "exact" and row["match_score"] == 100.0


def test_the_evidence_lists_the_candidates_considered():
    _, row = _outcome(TWIN[:17] + P[17], "张伟", [hukou(), hukou(TWIN, "张强"), hukou(FAR, "王芳")])
    candidates = row["resolution"]["candidates"]
    assert [c["id_number"] for c in candidates] == [P, TWIN, FAR]  # FAR: the same birth date
    assert candidates[0]["score"] - candidates[1]["score"] >= MARGIN
    assert candidates[1]["name_score"] < 90 and candidates[1]["id_score"] == 80.0


# ---- rows that are not looked for, or only listed

@pytest.mark.parametrize(
    "spelling",
    [P, P[:6] + P[8:17], " ".join([P[:6], P[6:14], P[14:]]), "".join(chr(0xFF10 + int(c)) for c in P)],
    ids=["canonical", "legacy 15 digits", "spaces", "full-width digits"],
)
def test_a_valid_id_found_in_hukou_is_not_looked_for(spelling):
    roll, sources = frames([roll_row("H1", spelling, name="张伟")], {"hukou": [hukou()]})
    row = resolve(roll, sources["hukou"], AS_OF).row(0, named=True)
    assert row["resolution"] is None and row["id_number"] == P and row["match_score"] == 100.0


def test_a_valid_id_absent_from_hukou_is_never_resolved():
    # NEAR's legacy form is one edit from P's (a legacy ID has no check character), same name.
    near = ids.convert15(sub(P[:6] + P[8:17], 13, "9"))
    for spelling in (P, P[:6] + P[8:17]):
        roll, sources = frames([roll_row("H1", spelling, name="张伟")], {"hukou": [hukou(FAR), hukou(near)]})
        row = resolve(roll, sources["hukou"], AS_OF).row(0, named=True)
        assert row["resolution"]["reason"] == "not_in_hukou"
        assert row["resolution"]["status"] == "weak" and row["id_number"] == P
        assert near in [c["id_number"] for c in row["resolution"]["candidates"]]  # listed, not used


def test_an_id_mistyped_into_someone_elses_suggests_the_right_person():
    # The roll's ID is TWIN's (valid, in hukou as 张强): two edits from P, whose name the roll has.
    roll, sources = frames([roll_row("H1", TWIN, name="张伟")], {"hukou": [hukou(), hukou(TWIN, "张强")]})
    row = resolve(roll, sources["hukou"], AS_OF).row(0, named=True)
    assert row["id_number"] == TWIN  # a valid ID found in hukou is kept
    res = row["resolution"]
    assert (res["reason"], res["status"], res["suggested_id"], res["score"]) == ("name_differs", "suggested", P, 80.0)


def test_a_different_name_without_a_near_namesake_suggests_nobody():
    roll, sources = frames([roll_row("H1", P, name="张强")],
                           {"hukou": [hukou(), hukou(person(400, born="19500505"), "张强")]})
    res = resolve(roll, sources["hukou"], AS_OF).row(0, named=True)["resolution"]
    assert (res["reason"], res["status"], res["suggested_id"]) == ("name_differs", "weak", None)


# ---- through run(): every rule uses the resolved ID

def _flags(result, rule_id: str) -> list[dict]:
    return result.flags.filter(pl.col("rule_id") == rule_id).to_dicts()


def test_a_resolved_id_takes_part_in_every_rule():
    result = run_case(
        [roll_row("H1", typo(), name="章伟"), roll_row("H2", P, name="张伟", program="tekun")],
        {"hukou": [hukou(status="deceased") | {"status_date": "2026-03-15"}]},
    )
    invalid = _flags(result, "id_invalid")[0]
    assert (invalid["id_number"], invalid["roll_id_number"], invalid["match_method"], invalid["match_score"]) == (
        P, typo(), "repaired", 87.75)
    evidence = json.loads(invalid["evidence"])
    assert evidence["records"][0]["roll_id_number"] == typo()
    assert evidence["resolution"]["suggested_id"] == P and evidence["resolution"]["candidates"][0]["id_number"] == P
    dead = next(f for f in _flags(result, "deceased") if f["household_id"] == "H1")
    assert (dead["id_number"], dead["match_method"], dead["overpayment"]) == (P, "repaired", 2400.0)
    assert {f["household_id"] for f in _flags(result, "duplicate_enrollment")} == {"H1", "H2"}
    assert {f["household_id"] for f in _flags(result, "name_mismatch")} == {"H1"}  # 章伟 ≠ 张伟
    assert _flags(result, "hukou_not_found") == []
    assert result.resolutions["household_id"].to_list() == ["H1"]  # H2's ID and name are hukou's


def test_hukou_not_found_only_when_not_resolved():
    result = run_case(
        [roll_row("H1", typo(), name="张伟"), roll_row("H2", FAR, name="王芳"), roll_row("H3", "3.20303E+17")],
        {"hukou": [hukou()]},
        rules=["id_invalid", "hukou_not_found"],
    )
    assert {f["household_id"] for f in _flags(result, "hukou_not_found")} == {"H2"}
    assert {f["household_id"]: f["match_method"] for f in _flags(result, "id_invalid")} == {
        "H1": "repaired", "H3": "exact"}
    absent = json.loads(_flags(result, "hukou_not_found")[0]["evidence"])
    assert absent["searched_source"] == "hukou" and absent["resolution"]["reason"] == "not_in_hukou"


def test_name_mismatch_evidence_carries_the_suggestion():
    result = run_case([roll_row("H1", TWIN, name="张伟")], {"hukou": [hukou(), hukou(TWIN, "张强")]},
                      rules=["name_mismatch"])
    evidence = json.loads(_flags(result, "name_mismatch")[0]["evidence"])
    assert evidence["records"][0]["name"] == "张强"
    assert evidence["resolution"]["status"] == "suggested" and evidence["resolution"]["suggested_id"] == P


def test_without_hukou_nothing_is_resolved():
    result = run_case([roll_row("H1", typo())], rules=["id_invalid"])
    flag = _flags(result, "id_invalid")[0]
    assert flag["id_number"] == typo() and flag["match_method"] == "exact"
    assert json.loads(flag["evidence"])["resolution"] is None and result.resolutions.is_empty()


# ---- the pieces

@pytest.mark.parametrize("description, spelling, name, hukou_rows, expected",
                         [case for case in CASES if case[-1][0] == "resolved"], ids=lambda case: str(case)[:40])
def test_what_a_row_is_resolved_to_is_reachable_from_the_roll_alone(description, spelling, name, hukou_rows,
                                                                     expected):
    # engine.batch narrows the other sources to reachable() before hukou is read: a resolution
    # outside it would cost a second reading.
    roll, _ = frames([roll_row("H1", spelling, name=name, region_code=VILLAGE)], {})
    assert expected[1] in reachable(roll, AS_OF).to_list()


def test_what_is_reachable_from_a_row_is_small():
    # One keying error or Excel's damage with at least 13 digits kept: a few dozen IDs a row,
    # at most 10,000 (13 digits kept); none from six.
    sizes = {spelling: reachable(frames([roll_row("H1", spelling)], {})[0], AS_OF).len()
             for spelling in (typo(), swap(P, 12), P[:15] + "000", f"{int(P):.13E}", f"{int(P):.5E}", P)}
    assert 0 < sizes[typo()] < 100 and 0 < sizes[swap(P, 12)] < 100
    assert sizes[P[:15] + "000"] <= 100 + 100 and sizes[f"{int(P):.13E}"] <= 1000
    assert sizes[f"{int(P):.5E}"] == 0 and sizes[P] == 0  # a valid ID is never resolved


def test_thresholds_are_consistent():
    # one edit + same name is accepted even where the region disagrees; two edits never are
    assert (10 * 80 + 9 * 100 + 0) / 20 >= ACCEPT > (10 * 60 + 9 * 100 + 100) / 20 >= SUGGEST


# ---- invariants

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["张伟", "章伟", "王芳", "汪芳", "李娜", "张强", "王伟"]


@st.composite
def cities(draw):
    numbers = draw(st.lists(st.integers(1, 60), min_size=2, max_size=12, unique=True))
    people = [(person(n, born="19800101"), draw(st.sampled_from(NAMES))) for n in numbers]
    in_hukou = [p for p in people if draw(st.booleans()) or p is people[0]]
    rows = []
    for i, (pid, name) in enumerate(people):
        spelling = draw(st.sampled_from(["as is", "typo", "swap", "excel", "scientific", "name"]))
        if spelling == "typo":
            pid = sub(pid, draw(st.integers(0, 17)), draw(st.sampled_from("0123456789")))
        elif spelling == "swap":
            pid = swap(pid, draw(st.integers(0, 16)))
        elif spelling == "excel":
            pid = pid[:15] + "000"
        elif spelling == "scientific" and pid.isdigit():
            pid = f"{int(pid):.{draw(st.integers(11, 17))}E}"
        elif spelling == "name":
            name = draw(st.sampled_from(NAMES))
        rows.append(roll_row(f"H{i}", pid, name=name))
    hukou_rows = [hukou(pid, name) for pid, name in in_hukou]
    return rows, hukou_rows, draw(st.randoms())


@SETTINGS
@given(cities())
def test_valid_ids_found_in_hukou_are_never_changed_and_resolutions_are_hukou_people(city):
    rows, hukou_rows, _ = city
    roll, sources = frames(rows, {"hukou": hukou_rows})
    out = resolve(roll, sources["hukou"], AS_OF)
    known = {h["id_number"]: h["name"] for h in hukou_rows}
    for before, after in zip(roll.to_dicts(), out.to_dicts(), strict=True):
        if before["id_valid"]:
            assert after["id_number"] == before["id_number"]
            assert after["match_method"] == before["id_method"]
        if after["match_method"] in ("repaired", "fuzzy"):
            assert not before["id_valid"] and after["id_number"] in known and after["id_valid"]


@SETTINGS
@given(cities())
def test_every_id_resolution_accepts_is_reachable_from_the_roll_alone(city):
    rows, hukou_rows, _ = city
    roll, sources = frames(rows, {"hukou": hukou_rows})
    out = resolve(roll, sources["hukou"], AS_OF)
    accepted = out.filter(pl.col("match_method").is_in(["repaired", "fuzzy"]))["id_number"]
    assert accepted.is_in(reachable(roll, AS_OF).implode()).all()


@SETTINGS
@given(cities())
def test_resolving_is_deterministic_and_ignores_hukou_order(city):
    rows, hukou_rows, rng = city
    roll, sources = frames(rows, {"hukou": hukou_rows})
    shuffled = sources["hukou"].sample(fraction=1.0, shuffle=True, seed=rng.randrange(1000))
    first = resolve(roll, sources["hukou"], AS_OF)
    assert first.equals(resolve(roll, sources["hukou"], AS_OF))
    assert first.equals(resolve(roll, shuffled, AS_OF))
    assert resolve(first, sources["hukou"], AS_OF).equals(first)  # a resolved roll stays as it is


@SETTINGS
@given(cities())
def test_a_hukou_scan_resolves_as_the_frame_does(tmp_path_factory, city):
    # A few rows take the small path; against a scan it must keep projection pushdown (else it
    # reads every column of a 100M-row hukou), and answer exactly as against the frame.
    rows, hukou_rows, _ = city
    roll, sources = frames(rows, {"hukou": hukou_rows})
    path = tmp_path_factory.mktemp("hukou") / "hukou.parquet"
    sources["hukou"].write_parquet(path)
    assert resolve(roll, pl.scan_parquet(path), AS_OF).equals(resolve(roll, sources["hukou"], AS_OF))


@SETTINGS
@given(cities(), st.data())
def test_a_few_rows_resolve_in_python_exactly_as_the_queries_resolve_a_roll(city, data):
    # engine.resolve_small takes rolls of up to hukou_lookup.SMALL rows: the same column, row for
    # row, as the polars steps give, against a hukou frame and against engine.check's index of it.
    from engine import hukou_lookup
    from engine.check import HukouIndex

    rows, hukou_rows, _ = city
    for row in rows:  # names spelled apart (a space, a dot): equal keys, unequal text
        if data.draw(st.booleans()):
            row["name"] = row["name"][0] + data.draw(st.sampled_from([" ", "·", ".", ""])) + row["name"][1:]
    roll, sources = frames(rows, {"hukou": hukou_rows})
    for hukou_source in (sources["hukou"], HukouIndex(sources["hukou"])):
        small = resolve(roll, hukou_source, AS_OF)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(hukou_lookup, "SMALL", -1)
            large = resolve(roll, hukou_source, AS_OF)
        assert small.equals(large), (small.to_dicts(), large.to_dicts())


def test_rows_with_nothing_to_look_for_come_out_alike_whether_or_not_another_row_is_looked_for():
    # Where no row is looked for, resolve sets the columns without the decision's expressions:
    # the same columns, types and values as those rows get beside a row that is looked for.
    plain = [roll_row("H1", P, name="张伟", region_code=VILLAGE),
             roll_row("H2", TWIN, name="张强", region_code=VILLAGE)]
    roll, sources = frames(plain, {"hukou": [hukou(), hukou(TWIN, "张强")]})
    alone = resolve(roll, sources["hukou"], AS_OF)
    both, _ = frames([*plain, roll_row("H3", typo(), name="张伟", region_code=VILLAGE)],
                     {"hukou": [hukou(), hukou(TWIN, "张强")]})
    beside = resolve(both, sources["hukou"], AS_OF)
    assert beside.row(2, named=True)["resolution"] is not None  # the third row was looked for
    assert alone.schema == beside.schema
    assert alone.equals(beside.head(2))
    assert alone.get_column("resolution").null_count() == 2 and alone.get_column("match_score").to_list() == [100.0] * 2


# ---- the pairs' scores over columns are `score`'s -------------------------------------------------

_REGIONS = st.sampled_from([None, "", "3203", "320303", "320304", "320303001", "320303002", "320303001002", "320303001003",
                            "320304001", "1101"])
_NAMES = st.sampled_from([None, "", "张伟", "章伟", "张 伟", "张·伟", "李四", "王五", "张伟伟", "Ali"])
_CANDIDATES = st.sampled_from(["320303199001010012", "32030319900101001X", "320303199001010020",
                               "110105194912310021", "320303198001010015"])
_SPELLINGS = st.one_of(_CANDIDATES, st.sampled_from(["320303900101001", "3.20303E+17", "3.203031990E17",
                                                     "320303199001010000", "", "32030319900101001",
                                                     "32030319900110012"]),
                       st.from_regex(r"\A[0-9]{14,18}\Z"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_SPELLINGS, _NAMES, _REGIONS,
                          st.lists(st.tuples(_CANDIDATES, _NAMES, _REGIONS), min_size=0, max_size=4)),
                min_size=1, max_size=12))
def test_pairs_scored_over_columns_as_score_scores_each(attempts) -> None:
    from engine import names
    from engine.resolve import ROW, _scored
    from engine.scores import score

    spellings = {rid: reading(spelled) for rid, (spelled, _, _, _) in enumerate(attempts)}
    frame = pl.DataFrame([{ROW: rid, "name": name, "region_code": region}
                          for rid, (_, name, region, _) in enumerate(attempts)],
                         schema={ROW: pl.UInt32, "name": pl.String, "region_code": pl.String})
    pairs = pl.DataFrame(
        [{ROW: rid, "id_number": c, "name": n, "name_key": None if n is None else names.key(n), "region_code": r}
         for rid, (_, _, _, candidates) in enumerate(attempts) for c, n, r in candidates],
        schema={ROW: pl.UInt32, "id_number": pl.String, "name": pl.String, "name_key": pl.String,
                "region_code": pl.String})
    got = _scored(frame, spellings, pairs)
    assert got.height == pairs.height
    for row in got.iter_rows(named=True):
        _, name, region, _ = attempts[row[ROW]]
        expected = score(spellings[row[ROW]], None if name is None else names.key(name), region, row["id_number"],
                         None if row["name"] is None else names.key(row["name"]), row["region_code"])
        assert (row["score"], row["id_score"], row["name_score"], row["region_score"], row["edits"]) == expected
