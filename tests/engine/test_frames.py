"""engine.frames makes exactly what polars' generic constructors make, faster: same values, same
types, the same refusals."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

from engine import frames
from engine.frames import frame_of_rows, frame_of_series, gathered, picked, positions_series, series, signature, stacked

_VALUES = {
    pl.String: st.text(max_size=20),
    pl.Int64: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    pl.Float64: st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53),
    pl.Boolean: st.booleans(),
    pl.Date: st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
}


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[type[pl.DataType], list]:
    dtype = draw(st.sampled_from(list(_VALUES)))
    return dtype, draw(st.lists(st.none() | _VALUES[dtype], max_size=12))


@given(typed_values())
def test_a_series_is_what_pl_series_makes(case: tuple[type[pl.DataType], list]) -> None:
    dtype, values = case
    assert_series_equal(series("column", values, dtype), pl.Series("column", values, dtype=dtype))


@pytest.mark.parametrize("dtype", [pl.String, pl.String(), pl.Int64(), pl.Date()])
def test_a_type_given_as_an_instance_is_the_same_type(dtype: pl.DataType) -> None:
    made = series("x", [None], dtype)
    assert made.dtype == dtype


@pytest.mark.parametrize(
    ("description", "values", "dtype"),
    [
        ("a number among strings", ["a", 1], pl.String),
        ("text among numbers", [1.5, "x"], pl.Float64),
        ("a fraction among integers", [1, 1.5], pl.Int64),
    ],
)
def test_values_of_another_type_are_refused_as_pl_series_refuses_them(description: str, values: list,
                                                                      dtype: type[pl.DataType]) -> None:
    with pytest.raises(TypeError):
        pl.Series("x", values, dtype=dtype)
    with pytest.raises(TypeError):
        series("x", values, dtype)


def test_a_type_without_a_typed_constructor_takes_the_generic_path() -> None:
    made = series("x", [1, None, 3], pl.Int32)
    assert_series_equal(made, pl.Series("x", [1, None, 3], dtype=pl.Int32))


@given(st.lists(st.integers(min_value=0, max_value=2**31 - 1), max_size=20))
def test_positions_are_a_series_of_the_index_type(positions: list[int]) -> None:
    array = np.array(positions, dtype=np.int64)
    made = positions_series(array)
    assert_series_equal(made, pl.Series(array, dtype=pl.get_index_type()))
    frame = pl.DataFrame({"n": list(range(2**16))})
    if all(p < 2**16 for p in positions):
        assert frame[made].get_column("n").to_list() == positions


@given(typed_values(), st.data())
def test_a_gathered_series_is_what_gather_gives(case: tuple[type[pl.DataType], list], data: st.DataObject) -> None:
    dtype, values = case
    column = pl.Series("c", values, dtype=dtype)
    positions = np.array(data.draw(st.lists(st.integers(0, max(len(values) - 1, 0)), max_size=10 if values else 0)),
                         dtype=np.int64)
    assert_series_equal(gathered(column, positions), column.gather(positions.tolist()))


@given(st.lists(st.tuples(st.none() | st.text(max_size=5), st.none() | st.integers(-1000, 1000),
                          st.none() | st.floats(allow_nan=False), st.none() | st.dates()), max_size=10))
def test_rows_make_the_frame_pl_dataframe_makes_of_them(rows: list[tuple]) -> None:
    schema = {"name": pl.String, "count": pl.Int64, "amount": pl.Float64, "on": pl.Date}
    assert_frame_equal(frame_of_rows(rows, schema), pl.DataFrame(rows, schema=schema, orient="row"))


def test_a_frame_of_series_keeps_their_names_and_order() -> None:
    columns = [pl.Series("b", [1, 2]), pl.Series("a", ["x", None])]
    assert_frame_equal(frame_of_series(columns), pl.DataFrame(columns))
    assert_frame_equal(frame_of_series([]), pl.DataFrame([]))


_SCHEMA = {"name": pl.String, "count": pl.Int64, "amount": pl.Float64, "on": pl.Date}
_ROWS = st.lists(st.tuples(st.none() | st.text(max_size=5), st.none() | st.integers(-1000, 1000),
                           st.none() | st.floats(allow_nan=False), st.none() | st.dates()), max_size=6)


@given(st.lists(_ROWS, min_size=1, max_size=4))
def test_frames_stack_as_pl_concat_stacks_them(parts: list[list[tuple]]) -> None:
    frames_ = [pl.DataFrame(rows, schema=_SCHEMA, orient="row") for rows in parts]
    first = frames_[0].clone()
    assert_frame_equal(stacked(frames_), pl.concat(frames_))
    assert_frame_equal(frames_[0], first)  # the caller's first frame is left as it was


@given(_ROWS, st.permutations(list(_SCHEMA)), st.integers(min_value=0, max_value=4))
def test_picked_columns_are_what_select_gives(rows: list[tuple], order: list[str], how_many: int) -> None:
    frame = pl.DataFrame(rows, schema=_SCHEMA, orient="row")
    assert_frame_equal(picked(frame, order[:how_many]), frame.select(order[:how_many]))


@pytest.mark.parametrize(
    ("description", "other"),
    [
        ("another column's name", pl.DataFrame({"a": [1], "c": ["x"]})),
        ("another type", pl.DataFrame({"a": [1.5], "b": ["x"]})),
        ("the columns in another order", pl.DataFrame({"b": ["x"], "a": [1]})),
    ],
)
def test_frames_that_differ_are_refused_as_pl_concat_refuses_them(description: str, other: pl.DataFrame) -> None:
    frame = pl.DataFrame({"a": [1], "b": ["y"]})
    with pytest.raises(pl.exceptions.PolarsError) as by_concat:
        pl.concat([frame, other])
    with pytest.raises(type(by_concat.value)):
        stacked([frame, other])


def test_a_column_not_there_cannot_be_picked() -> None:
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        picked(pl.DataFrame({"a": [1]}), ["b"])


_TYPES = st.deferred(lambda: st.sampled_from([
    pl.String(), pl.Int64(), pl.Int32(), pl.Float64(), pl.Boolean(), pl.Date(), pl.Datetime("us"), pl.Datetime("ns"),
    pl.Datetime("us", "UTC"), pl.Decimal(10, 2), pl.Decimal(12, 2), pl.Enum(["a", "b"]), pl.Enum(["a", "c"]),
    pl.Categorical(), pl.Null()]) | st.builds(pl.List, _TYPES) | st.builds(pl.Array, _TYPES, st.integers(1, 3))
    | st.dictionaries(st.sampled_from(["a", "b", "c"]), _TYPES, min_size=1, max_size=3).map(pl.Struct))
_SCHEMAS = st.dictionaries(st.sampled_from(["x", "y", "z"]), _TYPES, max_size=3)


@given(_SCHEMAS, _SCHEMAS)
def test_signatures_are_equal_exactly_when_schemas_are(one: dict, other: dict) -> None:
    first, second = pl.DataFrame(schema=one), pl.DataFrame(schema=other)
    assert (signature(first) == signature(second)) == (first.schema == second.schema)
    assert signature(first) == signature(first.clone())


def test_without_polars_typed_constructors_the_generic_path_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "_TYPED", {})
    monkeypatch.setattr(frames, "_FROM_NUMPY", {})
    monkeypatch.setattr(frames, "_TYPE_TEXTS", None)
    resolution = pl.Struct({"status": pl.String, "candidates": pl.List(pl.Struct({"score": pl.Float64}))})
    assert signature(pl.DataFrame(schema={"a": resolution})) != signature(pl.DataFrame(schema={"a": pl.Struct({})}))
    assert_series_equal(series("x", ["a", None], pl.String), pl.Series("x", ["a", None], dtype=pl.String))
    assert_series_equal(positions_series(np.array([3, 1])), pl.Series([3, 1], dtype=pl.get_index_type()))
    assert_series_equal(gathered(pl.Series("x", ["a", None, "b"]), np.array([2, 0])), pl.Series("x", ["b", "a"]))
    rows = [("a", 1, 2.5, date(2026, 1, 1))]
    schema = {"name": pl.String, "count": pl.Int64, "amount": pl.Float64, "on": pl.Date}
    assert_frame_equal(frame_of_rows(rows, schema), pl.DataFrame(rows, schema=schema, orient="row"))
