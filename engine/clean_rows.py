"""The rows of a large table already in canonical form, read by compiled scans; the others are
left to engine.loaders' usual reading and put back in their places.

    screened = clean_rows.read(df, ds, as_of, first_row, plain, people)
    rest = <the usual reading of df[screened.others], numbered as in df>
    frame = clean_rows.joined(screened, rest.frame, first_row)

Why: the usual reading takes any spelling (GBK exports, Excel dates, full-width digits, labels
for codes, cells padded with spaces) in three passes of polars queries that trim every cell and
keep each raw cell and an error column per column: a city's 28M source rows took ~7 s of a run
from files, most of it polars' string kernels at ~10-25 ns a cell and operation. A registry's
delivery is nearly all canonical (a valid 18-character ID, codes as spelt in the schema, ISO
dates, plain decimals, text with nothing to trim); such a cell is its own value, and
engine.kernels tells those cells in one pass over their bytes, a few nanoseconds each, each
column's two halves on two threads. Only the other rows (283 of a city's 27.75M, once the scans
also read the typed IDs and dates below; ~2 % before) need the usual reading.

A row is read here when every cell is canonical for its column's kind, or empty where the column
is optional: such a row has no problem and no warning in the usual reading, and its values are
the usual reading's (tests/engine/test_clean_rows.py holds the two equal, with hypothesis). Any
doubt leaves the row to the usual reading: it is never wrong to send a row there. "Canonical"
stretches as far as the compiled scans can read exactly what the usual reading reads: an ID
typed with ASCII spaces, hyphens, full-width digits or x (normalized, as ids.normalize does), a
legacy 15-digit ID (converted: id_method legacy15), a date written YYYY/MM/DD or YYYYMMDD.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

import numpy as np
import polars as pl

from schemas import Column, Dataset

from . import cells, ids

__all__ = ["ROWS", "Screened", "joined", "load_kernels", "read"]

# Tables of at least this many rows are read in two (engine.loaders): below it the usual
# reading costs less than numba's start (~0.5 s a process, `load_kernels`), and a city's roll
# (300k rows, ~0.2 s) is read while the kernels load.
ROWS = 500_000
_MOSTLY_OTHERS = 0.5  # a share of rows not canonical past which the whole table is read the usual way
_SAMPLE = 4096  # the first rows, looked at first for that share


@dataclass
class Screened:
    """A large table's canonical rows, read. `frame` holds every row of the table (`people`
    None: the other rows' values are to be replaced, `joined`) or only the canonical rows of
    `people`; `others` are the positions of the rows for the usual reading (UInt32); `clean`
    counts the canonical rows."""

    frame: pl.DataFrame
    others: pl.Series
    clean: int
    whole: bool


class _Read(NamedTuple):
    """A column read: whether each cell is canonical (or empty where that is allowed); how its
    output columns are made of the rows wanted (their positions; None: all), made later so that
    a source narrowed to the roll's people makes them for those rows only; an ID column's codes
    (engine.ids.code, -1 where not valid), by which the people's rows are found."""

    canonical: np.ndarray
    made: Callable[[pl.Series | None, Container[str]], dict[str, pl.Series]]
    codes: np.ndarray | None = None


def _column(c: Column, cell: pl.Series | None, height: int, as_of: date | None, plain: bool) -> _Read:
    """Column c of a table read (see `_Read`)."""
    if cell is None:  # not in the table: as if every cell were empty
        cell = pl.repeat(None, height, dtype=pl.Float64 if plain else pl.String, eager=True)
    cell = cell.alias(c.name)
    if c.default is not None and c.kind != "id":
        cell = cell.fill_null(float(c.default) if plain else c.default)
    allowed = cell.is_null().to_numpy() if not c.required else np.zeros(height, dtype=np.bool_)

    def rows(series: pl.Series, wanted: pl.Series | None) -> pl.Series:
        return series if wanted is None else series.gather(wanted)

    # Imported here: numba's import and start cost ~0.5 s, which only a large table's reading
    # needs to pay (a command or a request that reads a few rows never does).
    from . import kernels

    name = c.name
    if c.kind == "id":
        codes = kernels.id_codes(cell, as_of)
        valid = codes >= 0
        # The few typed otherwise (spaces, full-width digits, a legacy 15-digit ID: ~1.4 % of a
        # city's delivery) by a second scan of those cells alone; written over as normalized.
        typed = np.flatnonzero(~valid & ~cell.is_null().to_numpy())
        spelled = kernels.spelled_id_codes(cell.gather(typed), as_of) if typed.size else np.zeros(0, np.int64)
        rewritten = typed[spelled >= 0]
        spelled = spelled[spelled >= 0]
        legacy = rewritten[spelled >= kernels.LEGACY_BIT]
        codes[rewritten] = spelled & (kernels.LEGACY_BIT - 1)
        valid[rewritten] = True

        def made_ids(wanted: pl.Series | None, names: Container[str]) -> dict[str, pl.Series]:
            # Made at the rows wanted, not the table's (a piece's few people, not its 10M cells),
            # and only the columns asked for (a source's ID method is not: a whole hukou's cost
            # ~0.1 s).
            raw = rows(cell, wanted)
            at, which = _within(rewritten, wanted)
            normalized = raw
            if at.size:
                texts = pl.select(ids.from_code_expr(pl.lit(pl.Series(codes[rewritten[which]])))).to_series()
                normalized = raw.clone().scatter(at, texts)
            made = {name: normalized, f"{name}_raw": raw.alias(f"{name}_raw")}
            if name == "id_number" and "id_valid" in names:
                made["id_valid"] = rows(pl.Series("id_valid", valid), wanted)
            if name == "id_number" and "id_method" in names:
                method = pl.repeat("exact", raw.len(), dtype=pl.String, eager=True).alias("id_method")
                made["id_method"] = method.scatter(_within(legacy, wanted)[0], "legacy15") if legacy.size else method
            return made

        return _Read(valid | allowed, made_ids, codes)
    if c.kind in ("money", "number"):
        number = cell.cast(pl.Float64, strict=False)
        canonical = (number >= 0).fill_null(False).to_numpy()
        if not plain:
            canonical &= kernels.decimal(cell)
        return _Read(canonical | allowed, lambda wanted, _: {name: rows(number, wanted) + 0.0})  # + 0.0: no -0.0
    if c.kind == "code":
        spellings = cells.spellings(c)
        index = kernels.code(cell, list(spellings))
        codes = pl.Series(name, [*spellings.values(), None], pl.String)
        position = pl.Series(np.where(index >= 0, index, len(spellings)).astype(np.uint32))
        return _Read((index >= 0) | allowed, lambda wanted, _: {name: codes.gather(rows(position, wanted))})
    if c.kind in ("date", "month"):
        days = kernels.plain_date(cell, 10 if c.kind == "date" else 7)
        found = days != kernels.NO_DATE
        # (Not pa.array with a mask: pyarrow then imports pandas, ~0.3 s a process.)
        value = pl.select(pl.when(pl.lit(pl.Series(found))).then(pl.lit(pl.Series(days)))).to_series()
        value = value.cast(pl.Date).alias(name)
        return _Read(found | allowed, lambda wanted, _: {name: rows(value, wanted)})
    canonical = kernels.digits(cell, 6, 12) if c.kind == "region" else kernels.trimmed(cell)
    return _Read(canonical | allowed, lambda wanted, _: {name: rows(cell, wanted)})


def read(df: pl.DataFrame, ds: Dataset, as_of: date | None, first_row: int, plain: tuple[str, ...] = (),
         people: pl.Series | None = None, columns: list[str] | None = None) -> Screened | None:
    """The canonical rows of `df` (String columns named as `ds`'s or not of it, and the amounts
    of `plain` as numbers), as engine.loaders reads them (see `Screened`), in `columns` only
    (None: all; `_row` is kept with `people`, to put the rows in order). None when most rows are
    not canonical (a county's export with every date written 2021/3/1, say): the usual reading
    of the whole table then costs less than gathering its other rows to read them apart."""
    height = df.height
    given = set(df.columns)
    unknown = [n for n in df.columns if n not in ds.names]
    if any(c.required and c.default is None and c.name not in given for c in ds.columns):
        return None  # a required column missing: no row is canonical (the usual reading says what is wrong)
    if height > _SAMPLE and not _canonical(df.head(_SAMPLE), ds, as_of, plain).mean() >= 1 - _MOSTLY_OTHERS:
        return None  # (told by its first rows, before the whole table is scanned for nothing)
    done = [_column(c, df.get_column(c.name) if c.name in given else None, height, as_of, c.name in plain)
            for c in ds.columns]
    clean = _canonical_of(done, df, ds)
    others = pl.Series("", np.flatnonzero(~clean).astype(np.uint32))
    if others.len() > height * _MOSTLY_OTHERS:
        return None
    wanted = None
    if people is not None:
        codes = pl.Series(done[ds.names.index("id_number")].codes)
        wanted = (pl.Series(clean) & codes.is_in(_codes(people).implode())).arg_true()
    order = ["_row", *ds.names, *[f"{c.name}_raw" for c in ds.columns if c.kind == "id"],
             *(["id_valid", "id_method"] if "id_number" in ds.names else []), *unknown]
    if columns is not None:  # (a whole hukou's row numbers and ID columns cost ~0.15 s, then dropped)
        order = [n for n in order if n in columns or (n == "_row" and people is not None)]
        if ids.PERSON in columns and "id_number" in ds.names:
            order.append(ids.PERSON)
    outputs = {"_row": _rows_numbered(first_row, height, wanted)} if "_row" in order else {}
    for read in done:
        outputs |= read.made(wanted, order)
    if ids.PERSON in order:  # the codes found by the scan (-1: not valid, so not canonical)
        codes = pl.Series(ids.PERSON, done[ds.names.index("id_number")].codes)
        outputs[ids.PERSON] = pl.select(pl.when(codes >= 0).then(codes)).to_series().alias(ids.PERSON)
        if wanted is not None:
            outputs[ids.PERSON] = outputs[ids.PERSON].gather(wanted)
    outputs |= {n: df.get_column(n) if wanted is None else df.get_column(n).gather(wanted) for n in unknown
                if n in order}
    frame = pl.DataFrame([outputs[n] for n in order])
    return Screened(frame, others, height - others.len(), people is None)


def _canonical(df: pl.DataFrame, ds: Dataset, as_of: date | None, plain: tuple[str, ...]) -> np.ndarray:
    """Whether each row of `df` is canonical (`read`'s test, alone)."""
    return _canonical_of([_column(c, df.get_column(c.name) if c.name in df.columns else None, df.height, as_of,
                                  c.name in plain) for c in ds.columns], df, ds)


def _canonical_of(done: list[_Read], df: pl.DataFrame, ds: Dataset) -> np.ndarray:
    clean = np.logical_and.reduce([read.canonical for read in done])
    if not any(c.required for c in ds.columns):  # a blank row is no record: never one of these
        clean &= ~np.logical_and.reduce([df.get_column(n).is_null().to_numpy() for n in df.columns])
    return clean


_known: tuple[pl.Series, pl.Series] | None = None  # the last people asked for, and their codes


def _codes(people: pl.Series) -> pl.Series:
    """The codes (engine.ids.code) of `people`'s IDs: a run asks with the same people for every
    piece of every source, and their 0.5M texts hashed for each cost ~30 ms, their codes ~5."""
    global _known
    known = _known
    if known is None or known[0] is not people:
        codes = ids.codes_of_ids(people)
        _known = known = (people, codes)
    return known[1]


def _within(positions: np.ndarray, wanted: pl.Series | None) -> tuple[np.ndarray, np.ndarray]:
    """Where the rows at `positions` (ascending) fall among the rows `wanted` (None: all), and
    which of `positions` each is."""
    if wanted is None:
        return positions, np.arange(positions.size)
    taken = wanted.to_numpy()
    index = np.searchsorted(positions, taken)
    found = index < positions.size
    found[found] = positions[index[found]] == taken[found]
    return np.flatnonzero(found), index[found]


def _rows_numbered(first_row: int, height: int, wanted: pl.Series | None) -> pl.Series:
    """The spreadsheet row numbers of a table's rows (those `wanted`: positions)."""
    numbers = np.arange(first_row, first_row + height, dtype=np.int64)
    return pl.Series("_row", numbers if wanted is None else numbers[wanted.to_numpy()])


def joined(screened: Screened, rest: pl.DataFrame, first_row: int) -> pl.DataFrame:
    """The frame of a table read in two: `screened`'s rows and `rest` (the usual reading of its
    other rows, numbered as in the table, narrowed as `screened.frame` is), in row order, in
    `screened.frame`'s columns."""
    if not screened.whole:
        if not rest.height:
            return screened.frame
        return pl.concat([screened.frame, rest.select(screened.frame.columns)]).sort("_row")
    rest = rest.select("_row", *(n for n in screened.frame.columns if n != "_row"))
    frame = screened.frame
    if screened.others.len() == 0:
        return frame
    # Every row is in `frame`: the other rows' values replaced by the usual reading's (a few
    # columns' worth of writes, where a sort or a merge moved every row), and those it does not
    # keep (rejected, blank) filtered out.
    at = (rest.get_column("_row") - first_row).cast(pl.UInt32)
    here = frame[at]
    frame = frame.with_columns(  # only the columns that differ there: a write copies the column
        frame.get_column(name).scatter(at, rest.get_column(name)) for name in frame.columns
        if not here.get_column(name).equals(rest.get_column(name))
    )
    if at.len() == screened.others.len():
        return frame
    dropped = np.zeros(frame.height, dtype=np.bool_)
    dropped[screened.others.to_numpy()] = True
    dropped[at.to_numpy()] = False
    return frame.filter(pl.Series(~dropped))


def load_kernels() -> None:
    """Import numba and load the kernels now (~0.5 s a process, most of it numba's start), not
    at the first large table: engine.batch does it in a thread while its first files are read."""
    from . import kernels

    sample = pl.Series(["11010519491231002X"], dtype=pl.String)
    kernels.id_codes(sample), kernels.trimmed(sample), kernels.digits(sample, 6, 12)
    kernels.decimal(sample), kernels.code(sample, ["x"]), kernels.plain_date(sample)
