"""engine.json_text: the JSON polars' struct.json_encode writes, character for character."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.json_text import body_encoder, encoder

CANDIDATE = pl.Struct({"id_number": pl.String, "score": pl.Float64, "edits": pl.UInt32})
RESOLUTION = pl.Struct({"status": pl.String, "score": pl.Float64, "candidates": pl.List(CANDIDATE)})

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # control characters, quotes, CJK, emoji
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e-5, -2.5e-5, 1.234e-5, 9.99e-6, 1e-4, 1e15, 9999999999999998.0, 1e16, 1.5e16, 0.1 + 0.2])
VALUES = {
    pl.String: TEXT,
    pl.Float64: FLOATS,
    pl.Int64: st.integers(-(2**63), 2**63 - 1),
    pl.UInt32: st.integers(0, 2**32 - 1),
    pl.Boolean: st.booleans(),
    pl.Date: st.dates(date(1, 1, 1), date(9999, 12, 31)),
}
CANDIDATES = st.fixed_dictionaries({"id_number": st.none() | TEXT, "score": st.none() | FLOATS,
                                    "edits": st.none() | VALUES[pl.UInt32]})
RESOLUTIONS = st.fixed_dictionaries({"status": st.none() | TEXT, "score": st.none() | FLOATS,
                                     "candidates": st.none() | st.lists(CANDIDATES, max_size=3)})
COLUMNS = [*VALUES, RESOLUTION]


def _polars(frame: pl.DataFrame) -> list[str]:
    return frame.select(pl.struct(frame.columns).struct.json_encode().str.slice(1).str.head(-1)).to_series().to_list()


@settings(max_examples=300)
@given(st.data())
def test_every_row_is_written_as_polars_writes_it(data):
    height = data.draw(st.integers(1, 6))
    columns = {}
    for at, dtype in enumerate(COLUMNS):
        values = VALUES.get(dtype, RESOLUTIONS)
        columns[f"c{at}_名"] = pl.Series(data.draw(st.lists(st.none() | values, min_size=height, max_size=height)),
                                        dtype=dtype)
    frame = pl.DataFrame(columns)
    body = body_encoder(dict(frame.schema))
    assert body is not None
    assert [body(row) for row in frame.rows()] == _polars(frame)


@given(FLOATS)
def test_a_float_alone(value):
    frame = pl.DataFrame({"x": [value]}, schema={"x": pl.Float64})
    assert f'"x":{encoder(pl.Float64)(value)}' == _polars(frame)[0]


@pytest.mark.parametrize("dtype", [pl.Datetime("us"), pl.Float32, pl.Decimal(10, 2), pl.List(pl.Datetime("us")),
                                   pl.Struct({"a": pl.Time})])
def test_a_type_not_covered_has_no_encoder(dtype):
    assert encoder(dtype) is None
    assert body_encoder({"a": pl.String, "b": dtype}) is None
