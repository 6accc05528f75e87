"""engine.check: checking a household against indexed sources gives exactly what run() gives it.

Exhaustively over a generated city with dirty IDs and names (every household alone, and batches),
then table-driven cases for what the check roll is made of: another household's enrolment, a
household replacing its roll rows, absent sources, a mistyped ID resolved through the index.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.check import CheckIndex, household_key
from engine.run import RunResult, run

from .casebook import AS_OF, POLICY, frames, person, planted_city, roll_row

A, B, C = person(11), person(22), person(33)


# ---- the same flags as run(), household by household ----------------------------------------


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_city(tmp_path_factory.mktemp("city"), 300, seed=5)


@pytest.fixture(scope="module")
def city(planted):
    return planted.as_of, planted.roll, CheckIndex(planted.roll, planted.sources, planted.policy), planted.full


def _of(frame: pl.DataFrame, households: list[str]) -> pl.DataFrame:
    return frame.filter(pl.col("household_id").is_in(households))


def _same(checked: RunResult, full: RunResult, households: list[str]) -> None:
    assert checked.flags.equals(_of(full.flags, households)), households
    assert checked.resolutions.equals(_of(full.resolutions, households)), households
    assert (checked.ran, checked.skipped) == (full.ran, full.skipped)


def test_the_city_is_dirty_and_flagged(city):
    _, roll, _, full = city
    assert full.flags.height > 100 and len(set(full.flags["rule_id"])) == len(full.ran)
    assert (~roll["id_valid"]).sum() > 0 and full.resolutions.height > 0


def test_every_household_alone_gets_its_flags_of_the_full_run(city):
    as_of, roll, index, full = city
    for (household,), rows in roll.group_by("household_id", maintain_order=True):
        _same(index.check(rows, as_of), full, [household])


def test_a_recheck_takes_the_decisions_resolution_made_over_the_roll(planted, monkeypatch):
    """Once an index has resolved its roll at a date (warm, or its first check), re-checking a
    household of the roll looks for no hukou candidates: every decision (invalid IDs; valid ones
    hukou lacks or names someone else) is the one made over the roll, and the same as run()'s."""
    from engine.check import HukouIndex

    as_of, roll, full = planted.as_of, planted.roll, planted.full
    index = CheckIndex(roll, planted.sources, planted.policy)
    index.warm(as_of)

    def near(*_):
        raise AssertionError("looked for candidates again")

    monkeypatch.setattr(HukouIndex, "near", near)
    kinds = set(full.resolutions["resolution"].struct.field("reason").to_list())
    assert kinds == {"id_invalid", "not_in_hukou", "name_differs"}  # every kind of attempt is re-checked
    for (household,), rows in roll.group_by("household_id", maintain_order=True):
        _same(index.check(rows, as_of), full, [household])


def test_households_checked_together_get_the_same_flags(city):
    as_of, roll, index, full = city
    households = roll["household_id"].unique(maintain_order=True).to_list()
    for start in range(0, len(households), 32):
        batch = households[start : start + 32]
        _same(index.check(_of(roll, batch), as_of), full, batch)
    _same(index.check(roll, as_of), full, households)


def test_concurrent_checks_do_not_mix(city):
    as_of, roll, index, full = city
    households = roll["household_id"].unique(maintain_order=True).to_list()[:40]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda h: index.check(_of(roll, [h]), as_of), households))
    for household, result in zip(households, results, strict=True):
        _same(result, full, [household])


# ---- what the check roll is made of ------------------------------------------------------------

HUKOU = [{"id_number": pid, "name": "张三", "region_code": "320303001", "status": "normal"} for pid in (A, B, C)]


def _case(roll_rows, checked_rows, sources=None, rules=None):
    """(the check of `checked_rows` against an index of `roll_rows`, run() over the roll with the
    checked households in place of theirs, the checked household ids)."""
    roll, source_frames = frames(roll_rows, sources if sources is not None else {"hukou": HUKOU})
    checked, _ = frames(checked_rows)
    households = checked["household_id"].unique().to_list()
    index = CheckIndex(roll, source_frames, POLICY)
    rest = roll.filter(~pl.col("household_id").is_in(households))
    expected = run(pl.concat([rest, checked]), source_frames, AS_OF, POLICY, rules)
    return index.check(checked, AS_OF, rules), expected, households


def _flags(result: RunResult, rule_id: str) -> list[tuple[str, str]]:
    found = result.flags.filter(pl.col("rule_id") == rule_id)
    return sorted(found.select("household_id", "id_number").iter_rows())


def test_an_applicant_enrolled_in_another_household_is_a_duplicate():
    checked, expected, households = _case([roll_row("H1", A), roll_row("H1", B)], [roll_row("NEW", A)])
    assert _flags(checked, "duplicate_enrollment") == [("NEW", A)]
    assert '"enrolled_household_id":"H1"' in checked.flags.filter(pl.col("rule_id") == "duplicate_enrollment")[
        "evidence"
    ].item()
    _same(checked, expected, households)


def test_enrolled_in_gives_every_household_of_each_valid_id():
    roll, source_frames = frames([roll_row("H1", A), roll_row("H1", B), roll_row("H2", A), roll_row("H3", A, "tekun")],
                                 {"hukou": HUKOU})
    index = CheckIndex(roll, source_frames, POLICY)
    assert index.enrolled_in([A, B, C, "not an ID"]) == {A: {household_key(h) for h in ("H1", "H2", "H3")},
                                                          B: {household_key("H1")}}
    assert index.enrolled_in([]) == {}
    assert CheckIndex(None, source_frames, POLICY).enrolled_in([A]) == {}


def test_households_whose_keys_collide_are_told_apart_by_their_ids():
    # A person's roll rows are told in or out of the checked households by a hash of their
    # household id, then by the id itself: with every key made the same, A's row in H2 is kept.
    roll, source_frames = frames([roll_row("H1", A), roll_row("H2", A)], {"hukou": HUKOU})
    checked, _ = frames([roll_row("H1", A)])
    index = CheckIndex(roll, source_frames, POLICY)
    index._roll._household_keys[:] = household_key("H1")
    assert _flags(index.check(checked, AS_OF), "duplicate_enrollment") == [("H1", A)]


def test_an_applicant_in_tekun_elsewhere_is_a_program_conflict():
    checked, expected, households = _case([roll_row("H1", A, "tekun")], [roll_row("NEW", A, "dibao")])
    assert _flags(checked, "program_conflict") == [("NEW", A)]
    _same(checked, expected, households)


def test_disability_subsidy_with_dibao_in_another_household_is_fine():
    checked, expected, households = _case([roll_row("H1", A, "dibao")], [roll_row("NEW", A, "disability_living")])
    assert _flags(checked, "disability_living_without_dibao") == []
    _same(checked, expected, households)


def test_a_household_on_the_roll_is_replaced_not_doubled():
    # On the roll H1 has A and B; the new application of H1 has A only (once): no duplicate, and
    # its size is 1, so A's declared 900 is over the 800 standard per person.
    roll_rows = [roll_row("H1", A, declared_income_monthly="900"), roll_row("H1", B)]
    checked, expected, households = _case(roll_rows, [roll_row("H1", A, declared_income_monthly="900")])
    assert _flags(checked, "duplicate_enrollment") == []
    assert _flags(checked, "income_over_standard") == [("H1", A)]
    assert '"household_size":1' in checked.flags.filter(pl.col("rule_id") == "income_over_standard")["evidence"].item()
    _same(checked, expected, households)


def test_only_the_checked_households_flags_are_returned():
    checked, expected, households = _case([roll_row("H1", A), roll_row("H2", A)], [roll_row("H3", B)])
    assert set(checked.flags["household_id"]) <= {"H3"}
    _same(checked, expected, households)


def test_rules_of_absent_sources_are_skipped_as_run_skips_them():
    vehicles = [{"id_number": A, "plate": "苏C12345", "vehicle_type": "car", "purchase_price": "90000",
                 "status": "normal"}]
    checked, expected, households = _case([roll_row("H1", B)], [roll_row("NEW", A)], {"vehicles": vehicles})
    assert ("deceased", "source deaths or hukou not provided") in checked.skipped
    assert "hukou_not_found" not in checked.ran and "vehicle_owned" in checked.ran
    assert _flags(checked, "vehicle_owned") == [("NEW", A)]
    assert checked.resolutions.height == 0  # no hukou: nothing resolved
    _same(checked, expected, households)
    only, expected_only, _ = _case([], [roll_row("NEW", A)], {}, rules=["vehicle_owned"])
    assert only.ran == [] and only.skipped == [("vehicle_owned", "source vehicles not provided")]
    _same(only, expected_only, households)


def test_a_mistyped_id_is_resolved_to_the_same_hukou_person_as_in_the_full_run():
    typo = A[:15] + str((int(A[15]) + 4) % 10) + A[16:]  # one digit mistyped: check character fails
    hukou = [*HUKOU, {"id_number": person(12), "name": "李四", "region_code": "320303001", "status": "normal"}]
    checked, expected, households = _case([roll_row("H1", B)], [roll_row("NEW", typo)], {"hukou": hukou})
    resolved = checked.resolutions.row(0, named=True)
    assert (resolved["roll_id_number"], resolved["id_number"], resolved["match_method"]) == (typo, A, "repaired")
    assert resolved["resolution"]["status"] == "resolved"
    assert _flags(checked, "id_invalid") == [("NEW", A)]
    _same(checked, expected, households)


def test_a_remembered_decision_is_not_taken_for_a_row_written_otherwise():
    """The decision made over the roll for its typo is taken only for the same row: the same typo
    under another name is looked for anew (here: no candidate close enough), as run() does."""
    typo = A[:15] + str((int(A[15]) + 4) % 10) + A[16:]
    roll, sources = frames([roll_row("H1", typo), roll_row("H2", B)], {"hukou": HUKOU})
    index = CheckIndex(roll, sources, POLICY)
    index.warm(AS_OF)
    renamed = roll.filter(pl.col("household_id") == "H1").with_columns(pl.lit("欧阳娜娜").alias("name"))
    checked = index.check(renamed, AS_OF)
    expected = run(pl.concat([roll.filter(pl.col("household_id") == "H2"), renamed]), sources, AS_OF, POLICY)
    _same(checked, expected, ["H1"])
    assert checked.resolutions["resolution"].struct.field("status").to_list() != ["resolved"]
    assert index.check(roll.filter(pl.col("household_id") == "H1"), AS_OF).resolutions[
        "resolution"].struct.field("status").to_list() == ["resolved"]  # the roll's own row: its decision


def test_a_roll_row_resolved_from_a_typo_is_found_as_the_applicant():
    typo = A[:15] + str((int(A[15]) + 4) % 10) + A[16:]
    checked, expected, households = _case([roll_row("H1", typo)], [roll_row("NEW", A)])
    assert _flags(checked, "duplicate_enrollment") == [("NEW", A)]
    _same(checked, expected, households)


def test_an_index_without_a_roll_checks_the_household_alone():
    roll, sources = frames([roll_row("NEW", A), roll_row("NEW", A)], {"hukou": HUKOU})
    checked = CheckIndex(None, sources, POLICY).check(roll, AS_OF)
    _same(checked, run(roll, sources, AS_OF, POLICY), ["NEW"])
    assert _flags(checked, "duplicate_enrollment") == [("NEW", A), ("NEW", A)]


def test_a_frame_that_is_not_a_loaded_roll_is_refused():
    _, sources = frames([], {"hukou": HUKOU})
    with pytest.raises(ValueError, match="loaded roll frame"):
        CheckIndex(None, sources).check(pl.DataFrame({"household_id": ["H1"]}), AS_OF)


def test_warming_an_index_compiles_what_the_first_check_uses():
    roll, sources = frames([roll_row("H1", A), roll_row("H2", A, "tekun")], {"hukou": HUKOU})
    index = CheckIndex(roll, sources, POLICY)
    index.warm(AS_OF)
    assert sum(len(idle) for idle in index._idle.values()) == 1
    checked = index.check(roll.filter(pl.col("household_id") == "H1"), AS_OF)
    assert sum(len(idle) for idle in index._idle.values()) == 1  # the warmed one, used and returned
    _same(checked, run(roll, sources, AS_OF, POLICY), ["H1"])




def _hukou(*id_numbers: str) -> pl.DataFrame:
    return frames([], {"hukou": [{"id_number": p, "name": "张三", "region_code": "320303001", "status": "normal"}
                                 for p in id_numbers]})[1]["hukou"]


def test_hukou_rows_read_again_after_holders_are_those_ids_rows():
    """A check reads the rows the resolver's holders() found when they are of the same IDs, and
    looks up any others: the same rows either way, in each thread its own."""
    from engine.check import HukouIndex
    from engine.keyed import codes_of

    a, b, c = person(71), person(72), person(73)
    index = HukouIndex(_hukou(a, b, c, c))
    both, other = [a, c], [b]
    index.holders(pl.Series(both))
    for wanted in (both, other, [a, b, c], []):
        assert index.rows(wanted, codes_of(wanted)).equals(index.keyed.rows(wanted, codes_of(wanted))), wanted
    with ThreadPoolExecutor(1) as pool:  # another thread's holders() are not this one's
        pool.submit(index.holders, pl.Series(other)).result()
    assert index.rows(both, codes_of(both)).equals(index.keyed.rows(both, codes_of(both)))


def test_hukou_rows_without_a_code_are_matched_anew_by_text():
    from engine.check import HukouIndex
    from engine.keyed import codes_of

    a = person(74)
    loaded = _hukou(a)
    index = HukouIndex(pl.concat([loaded, loaded.with_columns(pl.lit("12345").alias("id_number"))]))
    assert index.keyed.odd.height == 1
    index.holders(pl.Series([a]))
    assert index.rows([a, "12345"], codes_of([a, "12345"]))["id_number"].sort().to_list() == ["12345", a]


# ---- the roll's persons' slices -----------------------------------------------------------------

_NUMBER = st.integers(min_value=0, max_value=400)


@settings(max_examples=60, deadline=None)
@given(on_roll=st.sets(_NUMBER, max_size=40),
       sources=st.lists(st.lists(st.tuples(_NUMBER, st.integers(1, 4)), max_size=30), min_size=1, max_size=4),
       wanted=st.lists(_NUMBER, max_size=40), odd=st.booleans())
def test_the_slices_kept_for_the_rolls_persons_find_what_a_search_finds(on_roll, sources, wanted, odd):
    """A check reads the roll's persons' rows from the table of their slices, anyone else's by
    search (an applicant new to the roll): the rows Keyed.rows finds either way, in each source
    (one with a row whose ID has no code, found by its text)."""
    from engine.check import _Slices
    from engine.ids import from_code
    from engine.keyed import Keyed, codes_of

    keyed = {}
    for at, people in enumerate(sources):
        numbers = [number for number, count in people for _ in range(count)]
        frame = pl.DataFrame({"id_number": [from_code(n) for n in numbers] + (["short"] if odd else []),
                              "row": list(range(len(numbers) + odd))}, schema={"id_number": pl.String, "row": pl.Int64})
        keyed[f"source{at}"] = Keyed.of(frame)
    slices = _Slices(codes_of([from_code(n) for n in on_roll]).values, keyed)
    looked_up = [from_code(n) for n in wanted] + (["short"] if odd else [])
    codes = codes_of(looked_up)
    found = slices.rows(looked_up, codes)
    assert list(found) == list(keyed)
    for key, source in keyed.items():
        assert found[key].rows() == source.rows(looked_up, codes).rows(), key
    assert slices.rows(looked_up, codes, ["source0"])["source0"].rows() == found["source0"].rows()
