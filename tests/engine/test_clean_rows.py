"""engine.clean_rows: a large table read in two (its canonical rows by compiled scans, the others
the usual way, put back in their places) gives exactly what the usual reading of every row
gives: the frame, rejects, problems and warnings; narrowed to some people, their rows."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import cells, clean_rows, files, ids, loaders
from schemas import dataset

from .test_canonical import KEYS, tables

AS_OF = date(2026, 6, 30)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL_KEYS = [*KEYS, "hukou", "prisoners", "pensions", "medical"]


def _screened(df: pl.DataFrame, key: str, first_row: int, people: pl.Series | None = None,
              plain: tuple[str, ...] = (), columns: list[str] | None = None) -> loaders.Loaded:
    """Read in two, however few of its rows are canonical (a table of a few generated rows is
    often mostly other spellings, which a large table reads the usual way)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clean_rows, "_MOSTLY_OTHERS", 1.0)
        return loaders._screened(df, dataset(key), "f.csv", AS_OF, first_row, [], plain, people, columns)


def _usual(df: pl.DataFrame, key: str, first_row: int, plain: tuple[str, ...] = ()) -> loaders.Loaded:
    return loaders._read(df, dataset(key), "f.csv", AS_OF, first_row, [], plain)


def _same(one: loaders.Loaded, other: loaders.Loaded) -> None:
    assert one.frame.schema == other.frame.schema and one.frame.equals(other.frame), (one.frame, other.frame)
    assert one.rejects.schema == other.rejects.schema and one.rejects.equals(other.rejects), (one.rejects,
                                                                                              other.rejects)
    assert one.problems == other.problems and one.warnings == other.warnings


def _chunked(df: pl.DataFrame, pieces: int) -> pl.DataFrame:
    """df as several chunks, as a Parquet file's columns come."""
    cut = np.linspace(0, df.height, pieces + 1).astype(int)
    return pl.concat([df.slice(a, b - a) for a, b in zip(cut[:-1], cut[1:], strict=True)], rechunk=False)


keyed_tables = st.sampled_from(ALL_KEYS).flatmap(lambda key: st.tuples(st.just(key), tables(key, canonical_only=False)))


@SETTINGS
@given(keyed_tables, st.integers(0, 5), st.integers(1, 3))
def test_read_in_two_is_the_usual_reading(keyed, first_row, pieces):
    key, df = keyed
    _same(_screened(_chunked(df, pieces), key, first_row), _usual(df, key, first_row))


@SETTINGS
@given(keyed_tables, st.data())
def test_narrowed_to_people_it_is_their_rows_of_the_usual_reading(keyed, data):
    key, df = keyed
    usual = _usual(df, key, 2)
    if "id_number" not in usual.frame.columns:
        return
    # Some of the IDs as given and some as the usual reading normalized them.
    known = [*df.get_column("id_number").drop_nulls().to_list(), *usual.frame.get_column("id_number").to_list()]
    people = pl.Series("id_number", sorted(set(data.draw(st.lists(st.sampled_from(known)) if known else st.just([])))),
                       pl.String)
    screened = _screened(df, key, 2, people)
    assert screened.frame.equals(loaders.of_people(usual.frame, people)), (screened.frame, usual.frame)
    assert screened.usable_rows == usual.frame.height
    assert screened.rejects.equals(usual.rejects) and screened.problems == usual.problems


amounts = st.one_of(st.none(), st.floats(-10, 1e9, allow_nan=False), st.just(-0.0), st.just(0.0))


@SETTINGS
@given(st.sampled_from(["deposits", "pensions", "vehicles", "farm_machinery"]).flatmap(
    lambda key: st.tuples(st.just(key), tables(key, canonical_only=False))), st.data())
def test_amounts_held_as_numbers_are_read_as_the_usual_reading_reads_them(keyed, data):
    key, df = keyed
    ds = dataset(key)
    money = [c.name for c in ds.columns if c.kind in ("money", "number") and c.name in df.columns]
    df = df.with_columns(pl.Series(name, data.draw(st.lists(amounts, min_size=df.height, max_size=df.height)),
                                   pl.Float64) for name in money)
    _same(_screened(df, key, 2, plain=tuple(money)), _usual(df, key, 2, tuple(money)))


ROW = {"program": "dibao", "household_id": "H1", "id_number": "11010519491231002X", "name": "张伟",
       "region_code": "110105001", "benefit_monthly": "800.0", "enrolled_on": "2020-01-05"}


@pytest.mark.parametrize("description, change, others", [
    ("every cell canonical", {}, []),
    ("a label for a code (one of its usual spellings)", {"program": "低保"}, []),
    ("a code spelt otherwise", {"program": "Di Bao"}, [1]),
    ("an invalid ID (kept, with a warning)", {"id_number": "320303198001011230"}, [1]),
    ("a legacy 15-digit ID", {"id_number": "110105491231002"}, []),
    ("an ID typed with spaces, a hyphen, full-width digits and x", {"id_number": "１１０１０５ 19491231-002x"}, []),
    ("an ID with an ideographic space", {"id_number": "110105\u300019491231002X"}, [1]),
    ("a legacy ID of an impossible date", {"id_number": "110105491331002"}, [1]),
    ("a date written with slashes", {"enrolled_on": "2020/01/05"}, []),
    ("a date written without separators", {"enrolled_on": "20200105"}, []),
    ("a date with one-digit month and day", {"enrolled_on": "2020/1/5"}, [1]),
    ("a date with two separators", {"enrolled_on": "2020/01-05"}, [1]),
    ("an amount with a thousands separator", {"benefit_monthly": "1,200"}, [1]),
    ("a name with a space after it", {"name": "张伟 "}, [1]),
    ("a name with an ideographic space before it", {"name": "\u3000张伟"}, [1]),
    ("an empty required cell", {"name": None}, [1]),
    ("an empty optional cell", {"enrolled_on": None}, []),
    ("a column the roll does not have", {"备注": "x"}, []),
])
def test_which_rows_are_left_to_the_usual_reading(description, change, others):
    changed = pl.DataFrame([ROW, {**ROW, **change}], schema=dict.fromkeys({**ROW, **change}, pl.String))
    screened = clean_rows.read(changed, dataset("roll"), AS_OF, 2)
    assert screened.others.to_list() == others and screened.clean == 2 - len(others)
    _same(_screened(changed, "roll", 2), _usual(changed, "roll", 2))


def test_ids_typed_otherwise_are_normalized_in_their_own_rows_when_narrowed_to_people():
    """The typed spellings (spaces, full-width digits, legacy IDs) are written over as normalized
    in the rows kept, each in its own row, when only some people's rows are kept."""
    def valid_id(serial: int) -> str:
        first17 = f"11010519491231{serial:03d}"
        return first17 + ids.check_char(first17)

    spelled = [valid_id(n) for n in range(10, 20)]
    cells = [
        valid_id(1), f"{spelled[0][:6]} {spelled[0][6:]}", valid_id(2), f"{spelled[1][:6]}-{spelled[1][6:]}",
        spelled[2][:6].translate(str.maketrans("0123456789", "０１２３４５６７８９")) + spelled[2][6:],
        "110105491231003", f"{spelled[3][:10]} {spelled[3][10:]}", valid_id(3), f"{spelled[4][:3]} {spelled[4][3:]}",
    ]
    df = pl.DataFrame({"id_number": cells, "name": [f"人{n}" for n in range(len(cells))],
                       "death_date": ["2026-01-02"] * len(cells)})
    usual = _usual(df, "deaths", 2)
    assert usual.frame.get_column("id_method").to_list().count("legacy15") == 1
    for chosen in ([0, 1, 3, 4, 5, 6], [1, 4, 5, 8], [3, 6, 7], [5]):
        people = usual.frame.get_column("id_number").gather(chosen).sort()
        screened = _screened(df, "deaths", 2, people)
        assert screened.frame.equals(loaders.of_people(usual.frame, people)), (chosen, screened.frame)
        assert screened.frame.get_column("id_number").is_in(people.implode()).all()


def test_a_large_table_is_read_in_two_by_load_frame():
    """From clean_rows.ROWS rows, load_frame reads a table in two, the same as the usual reading."""
    rows = [ROW, {**ROW, "id_number": " 110105 19491231 002x"}, {**ROW, "name": None}, {**ROW, "program": "低保"}]
    df = pl.DataFrame(rows * (cells.SMALL // 4 + 1), schema=dict.fromkeys(ROW, pl.String))
    with pytest.MonkeyPatch.context() as patch:
        read = []
        patch.setattr(clean_rows, "ROWS", df.height)
        patch.setattr(clean_rows, "read", lambda *a, **k: read.append(1) or clean_rows_read(*a, **k))
        loaded = loaders.load_frame(df, "roll", "f.csv", AS_OF)
    assert read and loaded.frame.height == df.height - df.height // 4
    _same(loaded, _usual(df, "roll", 2))


clean_rows_read = clean_rows.read


@SETTINGS
@given(keyed_tables, st.data())
def test_in_some_columns_it_is_those_columns_of_the_usual_reading(keyed, data):
    key, df = keyed
    usual = _usual(df, key, 2)
    wanted = data.draw(st.lists(st.sampled_from(usual.frame.columns), unique=True, min_size=1))
    whole = _screened(df, key, 2, columns=wanted)
    assert whole.frame.columns == [n for n in usual.frame.columns if n in wanted]
    assert whole.frame.equals(usual.frame.select(whole.frame.columns))
    if "id_number" in usual.frame.columns:
        people = usual.frame.get_column("id_number").head(2)
        narrowed = _screened(df, key, 2, people, columns=wanted)
        assert set(narrowed.frame.columns) <= {*wanted, "_row"}
        assert narrowed.frame.equals(loaders.of_people(usual.frame, people).select(narrowed.frame.columns))


@SETTINGS
@given(keyed_tables, st.data())
def test_the_ids_codes_asked_for_are_those_of_the_valid_ids_of_the_usual_reading(keyed, data):
    # engine.batch asks hukou for ids.PERSON beside its columns, to resolve and narrow by.
    key, df = keyed
    usual = _usual(df, key, 2)
    if "id_number" not in usual.frame.columns:
        return
    wanted = [*data.draw(st.lists(st.sampled_from(usual.frame.columns), unique=True, min_size=1)), ids.PERSON]
    expected = loaders.with_person(usual.frame)
    whole = _screened(df, key, 2, columns=wanted)
    assert whole.frame.columns == [n for n in expected.columns if n in wanted]
    assert whole.frame.equals(expected.select(whole.frame.columns)), (whole.frame, expected)
    people = usual.frame.get_column("id_number").head(2)
    narrowed = _screened(df, key, 2, people, columns=wanted)
    assert narrowed.frame.equals(loaders.of_people(expected, people).select(narrowed.frame.columns))


def test_a_table_mostly_in_other_spellings_is_read_the_usual_way_whole():
    """Past half its rows, gathering the other rows to read them apart costs more than reading
    the table the usual way: clean_rows declines it, and load_frame's reading is the usual one."""
    dated = {**ROW, "enrolled_on": "2020/1/5"}
    df = pl.DataFrame([ROW, dated, dated], schema=dict.fromkeys(ROW, pl.String))
    assert clean_rows.read(df, dataset("roll"), AS_OF, 2) is None
    assert clean_rows.read(df.head(2), dataset("roll"), AS_OF, 2) is not None  # half: read in two
    _same(loaders._screened(df, dataset("roll"), "f.csv", AS_OF, 2, [], (), None), _usual(df, "roll", 2))
    # Told by the first rows when there are more than a sample's: these two decide for the seven.
    first_dated = pl.DataFrame([dated, dated, *[ROW] * 5], schema=dict.fromkeys(ROW, pl.String))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clean_rows, "_SAMPLE", 2)
        assert clean_rows.read(first_dated, dataset("roll"), AS_OF, 2) is None
        assert clean_rows.read(first_dated.reverse(), dataset("roll"), AS_OF, 2) is not None
        _same(loaders._screened(first_dated, dataset("roll"), "f.csv", AS_OF, 2, [], (), None),
              _usual(first_dated, "roll", 2))


def test_rows_with_more_fields_than_the_header_are_not_counted_usable_when_narrowed():
    """A CSV row with more fields than its header is rejected after the reading (loaders'
    `_overlong`): a narrowed reading's count of usable rows must lose it too."""
    other = {**ROW, "id_number": "110105194912310021"}  # invalid: kept with a warning, another person
    df = pl.DataFrame([ROW, other, ROW, {**ROW, "name": None}], schema=dict.fromkeys(ROW, pl.String))
    extra = pl.Series(files.EXTRA, [None, "x", "y", "z"], pl.String)  # rows 3 (canonical), 4, 5 (rejected)
    people = pl.Series("id_number", ["11010519491231002X"], pl.String)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clean_rows, "ROWS", 1)
        patch.setattr(cells, "SMALL", 1)
        patch.setattr(clean_rows, "_MOSTLY_OTHERS", 1.0)
        narrowed = loaders.load_frame(df.with_columns(extra), "roll", "f.csv", AS_OF, people=people)
    whole = loaders.load_frame(df.with_columns(extra), "roll", "f.csv", AS_OF)
    assert narrowed.usable_rows == whole.frame.height == 1
    assert narrowed.frame.equals(loaders.of_people(whole.frame, people))
    assert narrowed.rejects.equals(whole.rejects) and narrowed.problems == whole.problems
