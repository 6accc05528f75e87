"""engine.hukou_lookup: what the blocks look for, and how a hukou frame or scan answers them."""

from __future__ import annotations

from datetime import date

import polars as pl

from engine import ids, names
from engine.hukou_lookup import SPELLED_NAME, ScanLookup, blocks, collect
from engine.scores import reading

from .casebook import person

P = person(123, born="19800101")
HUKOU = pl.DataFrame({"id_number": [P, person(124, born="19800101"), person(5, born="19700101")],
                      "name": ["张伟", "李 娜", "王芳"],
                      "region_code": ["320303001001", "320303001002", "320311002003"]})


def test_only_an_in_memory_hukou_takes_the_unoptimized_small_path(tmp_path):
    HUKOU.write_parquet(tmp_path / "h.parquet")
    assert ScanLookup(HUKOU).in_memory
    assert not ScanLookup(pl.scan_parquet(tmp_path / "h.parquet")).in_memory


def test_blocks_look_for_neighbours_of_invalid_and_legacy_spellings_and_for_birth_dates():
    spellings = {0: reading(P[:17] + "0"), 1: reading(P), 2: reading(P[:6] + P[8:17]), 3: reading("3.20303E+17")}
    attempts = [(0, "invalid", P[:17] + "0"), (1, "absent", P), (2, "absent", P[:6] + P[8:17]),
                (3, "invalid", "3.20303E+17")]
    sought, born = blocks(attempts, spellings, date(2026, 1, 1))
    # every invalid spelling and every legacy one is sought by its neighbours; a valid 18-digit
    # ID is somebody's number: only its birth date is looked for
    assert sought == [(0, P[:17] + "0"), (2, P[:6] + P[8:17]), (3, "3.20303E+17")]
    assert born == [(0, P[:14]), (1, P[:14]), (2, (P[:6] + P[8:17])[:14])]


def test_a_scan_finds_by_id_by_birth_and_by_name_in_the_township_including_names_spelled_apart():
    lookup = ScanLookup(HUKOU)
    assert sorted(collect(lookup.holders(pl.Series([P, "nobody"])), 2)["id_number"]) == [P]
    named = pl.DataFrame({"name_key": ["李娜"], "town": ["320303001"]})
    near = collect(lookup.near(pl.Series([P]), pl.Series([HUKOU["id_number"][2][:14]]), named), 3)
    assert sorted(near["id_number"]) == sorted(HUKOU["id_number"])  # P by ID, 王芳 by birth, 李 娜 by name key
    nowhere = pl.DataFrame({"name_key": ["李娜"], "town": ["320311002"]})  # another township
    empty = collect(lookup.near(pl.Series([], dtype=pl.String), pl.Series([], dtype=pl.String), nowhere), 0)
    assert empty.height == 0


def test_a_frame_with_the_ids_codes_is_searched_by_them_and_answers_alike():
    # engine.batch's hukou carries ids.PERSON: holders and the ID and birth blocks test codes
    # (an ID with no code, 17 characters here, by its text).
    hukou = pl.concat([HUKOU, pl.DataFrame({"id_number": [P[:17]], "name": ["赵六"], "region_code": ["320303001001"]})])
    coded = hukou.with_columns(ids.code_expr(pl.col("id_number")).alias(ids.PERSON))
    assert ScanLookup(coded).coded and not ScanLookup(hukou).coded
    wanted = [pl.Series([P, "nobody", P[:17] + "0"]), pl.Series([person(124, born="19800101")])]
    born14 = [pl.Series([HUKOU["id_number"][2][:14]]), pl.Series([P[:14]]), pl.Series(["19800101", "x"]),
              pl.Series([], dtype=pl.String)]
    named = pl.DataFrame({"name_key": ["李娜"], "town": ["320303001"]})
    for ids_ in wanted:
        expected = collect(ScanLookup(hukou).holders(ids_), 3).sort(pl.all())
        assert collect(ScanLookup(coded).holders(ids_), 3).sort(pl.all()).equals(expected)
        for born in born14:
            expected = collect(ScanLookup(hukou).near(ids_, born, named), 3).sort(pl.all())
            assert expected.height and collect(ScanLookup(coded).near(ids_, born, named), 3).sort(pl.all()).equals(expected)


def test_collect_takes_a_frame_as_it_is():
    assert collect(HUKOU, 3) is HUKOU


def test_a_spelled_name_is_one_whose_key_is_not_the_name_as_written() -> None:
    """White space, a full-width form or a middle-dot look-alike: exactly the characters the
    name key changes ('·' itself stays, and a name of it alone is looked up as written too)."""
    characters = pl.Series([chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF])
    changed = pl.Series([names.key(f"张{c}") != f"张{c}" for c in characters.to_list()])
    spelled = characters.str.contains(SPELLED_NAME)
    assert (spelled & ~changed).to_list().count(True) == 1 and "·" in characters.filter(spelled & ~changed)
    assert not (changed & ~spelled).any()
    assert spelled.sum() == 25 + 94 + 17  # white space, full-width forms, dots (．is both)
