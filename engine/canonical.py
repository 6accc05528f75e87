"""A few rows whose every cell is already in its canonical form, read without a query.

    frame, others, warnings = read(df, ds, as_of, first_row, dates, label, rejecting)
    # the rows read; the others' positions (for the usual reading); the read rows' ID warnings

Why: engine.loaders reads any spelling (GBK exports, Excel dates, full-width digits, labels for
codes) with three passes of polars queries, ~2.5 ms for a few rows whatever their number. An API
request is a household or a few, sent by another system in canonical form (18-character valid
IDs, codes, ISO dates, plain decimals): checking each cell against that form and converting it
costs microseconds. IDs as people spell them (spaces, full-width digits, legacy 15 digits,
invalid) are read too, with ids' scalar twins of the usual reading's expressions: the API's
callers copy them from rolls. Only such rows are read here; a row with another cell (a label,
a date written another way, a blank required cell) is left to the usual reading,
problems and warnings included, and so is every row of a table with a column beyond this
reading (one the dataset lacks, a month).

engine.loaders.load_frame puts the two readings together: the same frame, rejects, problems and
warnings as reading every row the usual way (tests/engine/test_canonical.py holds them equal).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl

from schemas import Column, Dataset

from . import frames, ids
from .errors import Problem

__all__ = ["read"]

_ID = re.compile(r"[0-9]{17}[0-9X]")
_REGION = re.compile(r"[0-9]{6,12}")
_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TYPES = {"date": pl.Date, "money": pl.Float64, "number": pl.Float64}


class _NotCanonical(Exception):
    """A cell the usual reading must see."""


def _plain(text: str) -> str:
    # Nothing to trim, by Python's idea of white space or Rust's (every character Rust calls
    # white space is either white space or unprintable to Python).
    if not text or not (text[0].isprintable() and text[-1].isprintable()) or text[0].isspace() or text[-1].isspace():
        raise _NotCanonical
    return text


def _match(pattern: re.Pattern[str]) -> Callable[[str], str]:
    def read(text: str) -> str:
        if not pattern.fullmatch(text):
            raise _NotCanonical
        return text

    return read


def _code(c: Column) -> Callable[[str], str]:
    codes = set(c.codes or ())

    def read(text: str) -> str:
        if text not in codes:
            raise _NotCanonical
        return text

    return read


def _dates(first: date, last: date) -> Callable[[str], date]:
    def read(text: str) -> date:
        if not _DATE.fullmatch(text):
            raise _NotCanonical
        try:
            value = date.fromisoformat(text)
        except ValueError:
            raise _NotCanonical from None
        if not first <= value <= last:
            raise _NotCanonical
        return value

    return read


def _decimal(text: str) -> float:
    if not _DECIMAL.fullmatch(text):
        raise _NotCanonical
    return float(text) + 0.0


def _reader(c: Column, dates: tuple[date, date]) -> Callable[[str], Any]:
    """How a cell of c's kind is read (IDs: `_ids`)."""
    if c.kind == "region":
        return _match(_REGION)
    if c.kind == "code":
        return _code(c)
    if c.kind == "date":
        return _dates(*dates)
    if c.kind in ("money", "number"):
        return _decimal
    if c.kind == "text":
        return _plain
    raise _NotCanonical  # months: none comes through the API


def _column(c: Column, cells: list[str | None], dates: tuple[date, date], usual: set[int]) -> list[Any]:
    """The column's values; the rows of cells that are not canonical are added to `usual`."""
    read = _reader(c, dates)
    default = read(c.default) if c.default is not None else None
    values: list[Any] = []
    for row, cell in enumerate(cells):
        value = default
        try:
            if cell is not None:
                value = read(cell)
            elif c.required:
                raise _NotCanonical
        except _NotCanonical:
            usual.add(row)
            value = None
        values.append(value)
    return values


def _ids(c: Column, cells: list[str | None], as_of: date | None, rejecting: bool,
         usual: set[int]) -> tuple[list[str | None], list[bool], list[bool], list[int]]:
    """An ID column's values as the usual reading normalizes them (with ids' scalar twins of its
    expressions), whether each is valid and was a legacy 15-digit ID, and the rows of invalid
    ones it keeps (with a warning). Rows the usual reading must see are added to `usual`: an
    empty required ID, an ID that cleans to nothing, an invalid ID that rejects its row."""
    values: list[str | None] = []
    valid: list[bool] = []
    legacy: list[bool] = []
    invalid: list[int] = []
    for row, cell in enumerate(cells):
        value, was_legacy = cell, False
        if cell is not None and not _ID.fullmatch(cell):
            value, was_legacy = ids.normalize_legacy(cell)
        ok = value is not None and ids.is_valid(value, as_of)
        if (cell is None and c.required) or (cell is not None and value is None) or (rejecting and not ok):
            usual.add(row)
        elif cell is not None and not ok:
            invalid.append(row)
        values.append(value)
        valid.append(ok)
        legacy.append(was_legacy)
    return values, valid, legacy, invalid


def read(df: pl.DataFrame, ds: Dataset, as_of: date | None, first_row: int, dates: tuple[date, date],
         label: str, rejecting: set[str]) -> tuple[pl.DataFrame | None, list[int], list[Problem]]:
    """The rows of `df` (String columns named as `ds`'s) that need no query, as
    engine.loaders.load_frame reads them (`dates`: the first and last date taken; `rejecting`:
    the ID columns whose invalid IDs reject the row), the positions of the other rows, for the
    usual reading, and the warnings of the invalid IDs kept (`label`: the file's). (None, every
    position, []) when a whole column is beyond this reading: a column `ds` lacks, a month."""
    height = df.height
    everything: tuple[None, list[int], list[Problem]] = (None, list(range(height)), [])
    given = set(df.columns)
    if any(name not in ds.names for name in given):
        return everything
    data: dict[str, list[Any]] = {"_row": list(range(first_row, first_row + height))}
    schema: dict[str, Any] = {"_row": pl.Int64}
    extras: dict[str, list[Any]] = {}
    usual: set[int] = set()
    invalid: dict[Column, list[int]] = {}
    spelled: dict[Column, list[str | None]] = {}  # ID cells as given
    blank = [True] * height
    try:
        for c in ds.columns:
            cells = df.get_column(c.name).to_list() if c.name in given else [None] * height
            blank = [b and cell is None for b, cell in zip(blank, cells, strict=True)]
            schema[c.name] = _TYPES.get(c.kind, pl.String)
            if c.kind != "id":
                data[c.name] = _column(c, cells, dates, usual)
                continue
            data[c.name], valid, legacy, invalid[c] = _ids(c, cells, as_of, c.name in rejecting, usual)
            extras[f"{c.name}_raw"] = spelled[c] = cells
            if c.name == "id_number":
                extras["id_valid"], extras["id_method"] = valid, ["legacy15" if old else "exact" for old in legacy]
    except _NotCanonical:
        return everything
    usual.update(row for row, empty in enumerate(blank) if empty)  # the usual reading drops a blank row
    id_columns = [c for c in ds.columns if c.kind == "id"]
    schema |= {f"{c.name}_raw": pl.String for c in id_columns}
    if "id_number" in ds.names:
        schema |= {"id_valid": pl.Boolean, "id_method": pl.String}
    columns = data | {name: extras[name] for name in schema if name in extras}
    # Made by rows: over a few rows and a dozen typed columns, half the time of columns of lists.
    frame = frames.frame_of_series([frames.series(name, columns[name], dtype) for name, dtype in schema.items()])
    if usual:
        frame = frame.filter(frames.series("", [row not in usual for row in range(height)], pl.Boolean))
    warnings = [  # as engine.loaders._id_warnings words them
        Problem(label, ids.problem(spelled[c][row], as_of) or "", first_row + row, c.name, c.zh, spelled[c][row])
        for c in id_columns for row in invalid[c] if row not in usual
    ]
    return frame, sorted(usual), warnings
