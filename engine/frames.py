"""Series and frames made from a few Python values (or a small NumPy array) at the cost of
polars' typed constructors, not of its generic ones.

    series("id_number", ["110101…", None], pl.String)      # == pl.Series(name, values, dtype=…)
    positions_series(np.array([4, 9]))                      # == pl.Series(values, dtype=pl.get_index_type())
    rows_at(frame, np.array([4, 9]))                        # == frame[[4, 9]]
    gathered(series_, np.array([4, 9]))                     # == series_.gather([4, 9])
    frame_of_series([series_a, series_b])                   # == pl.DataFrame([series_a, series_b])
    frame_of_rows([(1, "a"), (2, None)], schema)            # == pl.DataFrame(rows, schema=…, orient="row")
    picked(frame, ["id_number", "name"])                    # == frame.select(["id_number", "name"])
    stacked([frame_a, frame_b])                             # == pl.concat([frame_a, frame_b])
    signature(frame)                # equal for two frames exactly when their schemas are equal

Why: `pl.Series(name, values, dtype=...)` works out in Python what the values are before it
calls the constructor for their type: ~7 µs for a dozen strings and ~16 µs from a NumPy array,
against ~1.5 µs for the typed constructor alone; a frame from Series ~7 µs against ~2. A check
of a group of households makes a few dozen of each over a few values (engine.keyed's lookups,
the requests' rows, resolution's columns), where that Python is most of the cost. Types without
a typed constructor here, and a polars without them, take the generic path: the result is the
same either way (tests/engine/test_frames.py compares them). Likewise a frame's columns picked
by name, and a few frames stacked: `select` and `pl.concat` are planned and run as queries
(~30-50 µs and ~25-110 µs over a few rows), taking columns and appending chunks ~2-15 µs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

__all__ = ["columns_of", "frame_of_rows", "frame_of_series", "gathered", "picked", "positions_series", "rows_at",
           "series", "signature", "stacked"]

_INDEX = pl.get_index_type()

try:  # polars' own typed constructors: what pl.Series calls once it knows the type
    from polars._plr import PyDataFrame, PySeries

    _TYPED = {
        pl.String: PySeries.new_str,
        pl.Int64: PySeries.new_opt_i64,
        pl.Float64: PySeries.new_opt_f64,
        pl.Boolean: PySeries.new_opt_bool,
        pl.Date: lambda name, values, strict: PySeries.new_from_any_values_and_dtype(name, values, pl.Date, strict),
    }
    _FROM_NUMPY = {pl.UInt32: (PySeries.new_u32, np.uint32), pl.UInt64: (PySeries.new_u64, np.uint64),
                   pl.Int64: (PySeries.new_i64, np.int64)}
    _wrap = pl.Series._from_pyseries
    _wrap_frame = pl.DataFrame._from_pydf
    _TYPE_TEXTS = PyDataFrame.dtype_strings  # polars' short names of a frame's types, made in Rust
except (ImportError, AttributeError):  # another polars: the generic path, the same result
    _TYPED, _FROM_NUMPY = {}, {}
    _TYPE_TEXTS = None

# Short names that leave out a parameter (a Struct's fields, an Enum's categories): such a column's
# type is named by its repr instead. Any other short name names every parameter
# ("datetime[μs, UTC]", "decimal[10,2]", "list[i64]", "array[i64, 3]").
_UNNAMED_PARAMETERS = ("struct", "enum", "cat", "object")


def series(name: str, values: Sequence[Any], dtype: pl.DataType | type[pl.DataType]) -> pl.Series:
    """pl.Series(name, values, dtype=dtype) for a list of Python values (strict, as it is)."""
    make = _TYPED.get(dtype if isinstance(dtype, type) else type(dtype))  # type: ignore[call-overload]
    if make is None:
        return pl.Series(name, values, dtype=dtype)
    return _wrap(make(name, values if isinstance(values, list) else list(values), True))


def positions_series(positions: np.ndarray) -> pl.Series:
    """Row positions (non-negative integers) as a Series of polars' index type: a gather's key."""
    typed = _FROM_NUMPY.get(_INDEX)  # type: ignore[call-overload]
    if typed is None:
        return pl.Series(positions, dtype=_INDEX)
    make, numpy_type = typed
    return _wrap(make("", np.ascontiguousarray(positions, dtype=numpy_type), True))


def columns_of(frame: pl.DataFrame) -> Any:
    """`frame`'s columns as rows_at reads them: taken once for a frame gathered from often
    (~10 µs a time)."""
    return frame._df.get_columns() if _TYPED else None


def rows_at(frame: pl.DataFrame, positions: np.ndarray, columns: Any = None) -> pl.DataFrame:
    """frame[positions]: the rows at these positions (valid, non-negative), column by column
    (`columns`: columns_of(frame), when kept). A frame's own gather hands its columns to polars'
    thread pool and waits for them (~16 µs for a dozen rows of two columns); a column's gather
    runs here (~1.5 µs each)."""
    index = positions_series(positions)
    if not _TYPED:
        return frame[index]
    columns = frame._df.get_columns() if columns is None else columns
    return _wrap_frame(PyDataFrame([column.gather_with_series(index._s) for column in columns]))


def gathered(column: pl.Series, positions: np.ndarray) -> pl.Series:
    """column.gather(positions) (valid, non-negative): `Series.gather` is an expression run as a
    query on a frame of the column (~50–100 µs, a hand-over to polars' pool among it); the
    column's own gather ~2 µs."""
    index = positions_series(positions)
    if not _TYPED:
        return column.gather(index)
    return _wrap(column._s.gather_with_series(index._s))


def frame_of_series(columns: list[pl.Series]) -> pl.DataFrame:
    """pl.DataFrame(columns) for Series of one length and distinct names."""
    if not _TYPED or not columns:
        return pl.DataFrame(columns)
    return _wrap_frame(PyDataFrame([column._s for column in columns]))


def frame_of_rows(rows: Sequence[Sequence[Any]], schema: pl.Schema | dict[str, Any]) -> pl.DataFrame:
    """pl.DataFrame(rows, schema=schema, orient="row"), the rows turned into columns in Python."""
    if not rows:
        return pl.DataFrame(schema=schema)
    columns = zip(*rows, strict=True)
    return frame_of_series([series(name, list(values), schema[name]) for name, values in zip(schema, columns, strict=True)])


def picked(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """frame.select(names) for plain column names (each once), without a query."""
    return frame_of_series([frame.get_column(name) for name in names])


def stacked(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """pl.concat(frames) (vertical: the same columns, names and types, in the same order), each
    frame's chunks appended to the first's, without a query. Raises as pl.concat does when they
    differ."""
    if not frames:
        raise ValueError("cannot stack an empty list of frames")
    if len(frames) == 1:
        return frames[0]
    result = frames[0].clone()  # vstack(in_place) would change the caller's frame
    for frame in frames[1:]:
        result.vstack(frame, in_place=True)
    return result


def signature(frame: pl.DataFrame) -> tuple[tuple[str, str], ...]:
    """The frame's column names and their types as text: equal for two frames exactly when their
    schemas are equal, and compared (or hashed) as strings.

    Why not `tuple(frame.schema.items())`: a frame makes its schema's type objects anew each time
    it is asked (~40 µs with a Struct column), and a dict key holding them is compared by their
    `__eq__`, which is Python (and recursive for a Struct): ~40 µs a lookup. Here the types are
    named in Rust (~2 µs), and only a type whose short name leaves a parameter out is asked for
    its repr."""
    names = frame.columns
    if _TYPE_TEXTS is None:
        return tuple(zip(names, map(repr, frame.dtypes), strict=True))
    texts = _TYPE_TEXTS(frame._df)
    return tuple((name, repr(frame.get_column(name).dtype)
                  if any(word in text for word in _UNNAMED_PARAMETERS) else text)
                 for name, text in zip(names, texts, strict=True))
