"""A frame keyed by its people's IDs: rows in the order of their ID as an integer (ids.code), so
that a person's rows are one slice found by binary search, never a scan.

    keyed = Keyed.of(frame, names=True)     # sorts in memory (names: hukou's name index too)
    keyed.write(path)                       # Arrow IPC, uncompressed: once per delivery
    Keyed.sink(scan, path, names=True)      # the same file, sorted out of core (any size)
    keyed = Keyed.read(path)                # memory-mapped: milliseconds, whatever the size
    keyed.rows(ids)                         # the rows of these IDs

Why a file. engine.check's index and engine.indexed's run look people up in every source. Sorting
a city's 27.75M source rows takes ~20 s and holds them all in memory; a delivery changes a source
once a month at most, while the run is nightly and the check process restarts with the server.
So the sorted form is written beside the snapshot (store.snapshots) and mapped: the operating
system reads only the pages a lookup touches, and shares them between processes. The file is in
batches of up to 16.7M rows: a city's sources are one batch, whose columns are used as mapped;
a province's hukou (100M rows) is six, whose codes are copied into one array on reading.

The file holds the ID only as its int64 code (`_code`): 8 bytes a row instead of 34 for an
18-byte string view, and the key of every lookup. The rows found are given `id_number` first
among their columns: the text of the ID looked up (`codes_of` keeps it beside the code), or for
a prefix or name lookup the text of their code (ids.from_code_expr). Rows whose ID has no code (not 18
characters shaped like an ID: never in a loaded source, whose invalid IDs are rejected) are kept
apart in memory and found by a filter; written, they go to a second file beside the first.

With `names`, the index engine.resolve's name block asks for: the hash of each row's (township,
name key), sorted, with the row it came from. polars' hash is stable for one polars version
only, and the key is engine.names.KEY_VERSION's: the file records both, and another version of
either recomputes the hashes on reading.
"""

from __future__ import annotations

import ctypes
import json
import sys
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from . import ids, names
from .frames import columns_of, positions_series, rows_at, series

__all__ = ["FORMAT", "BATCH", "Codes", "Keyed", "codes_of", "name_town"]

FORMAT = "1"  # of the file: a reader of another format builds the keyed frame again
_CODE, _HASH, _AT = "_code", "_name_hash", "_name_at"
_META = b"crosscheck.keyed"
_SLICES = 2  # persons found whose slices are stacked; beyond, gathered (measured: 3 slices ≈ one gather)
_PER_PREFIX = 1000 * 11  # codes of the IDs sharing their first 14 characters: 3 digits × check
_FEW = 256  # IDs or rows handled in Python: over a few, a polars query's fixed cost is the cost
_STEPS = 8  # rows of one person found by stepping on from the first; beyond, by a search
BATCH = 1 << 24  # rows of a file's batch at most: 16.7M, more than any city source has


def _gathered(frame: pl.DataFrame, positions: np.ndarray, columns: Any = None) -> pl.DataFrame:
    """The rows of `frame` at `positions`: a few column by column (engine.frames.rows_at: ~5 µs
    for a dozen rows, against ~30 µs indexed by a Series, ~40 µs by DataFrame.gather, which plans
    a query, and ~48 µs by a NumPy key, checked in Python first); many by polars' own gather,
    its columns in parallel."""
    if len(positions) <= _FEW:
        return rows_at(frame, positions, columns)
    return frame[positions_series(positions)]


def _libc_madvise() -> Callable[[int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


_madvise = _libc_madvise() if sys.platform.startswith("linux") else None
_DONTNEED = 4  # MADV_DONTNEED: a shared file mapping's pages are dropped from the process, not the file


@dataclass(frozen=True)
class Codes:
    """Distinct IDs to look up: their codes, sorted (`values`), and their text in the same order
    (`ids`), which the rows found are given as id_number (cheaper than text from codes)."""

    values: np.ndarray
    given: pl.Series | None  # `ids`, when made from a Series (None: made from `texts` when asked for)
    texts: list[str] | None = None  # `ids` as a list, for a few (an API request's)

    @cached_property
    def ids(self) -> pl.Series:
        # A few IDs' lookups read `texts`: the Series (~15 µs to make) is seldom wanted.
        return self.given if self.given is not None else series("id_number", self.texts, pl.String)

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Which of the codes `values` are among these (by search: np.isin sorts both, 100 ms
        for a few thousand codes among a city roll's)."""
        if not len(self.values):
            return np.zeros(len(values), dtype=bool)
        at = np.minimum(np.searchsorted(self.values, values), len(self.values) - 1)
        return self.values[at] == values


_CODE_OF: dict[str | None, int | None] = {}  # ids.code of the few IDs of recent checks
# A few groups' IDs: a check asks for its IDs' codes again within its group, seldom after. Kept
# small, so that the table stays in pages the checks keep touching (a 65k-entry one cost more
# in pages untouched for seconds, slow on this project's VM, than the codes it saved).
_CODE_OF_MAX = 1 << 11


def _code_of(text: str | None) -> int | None:
    """ids.code(text), remembered: a check asks for its IDs' codes three times (its roll's, the
    roll's other enrolments', resolution's) and each costs a regular expression and an int."""
    try:
        return _CODE_OF[text]
    except KeyError:
        pass
    if len(_CODE_OF) >= _CODE_OF_MAX:
        _CODE_OF.clear()
    code = _CODE_OF[text] = ids.code(text)
    return code


def codes_of(ids_: pl.Series | list[str]) -> Codes:
    """The distinct IDs of `ids_` that have a code, sorted by it (others left out)."""
    if len(ids_) <= _FEW:  # an API request's: a query's fixed cost is more than the work
        texts = ids_.to_list() if isinstance(ids_, pl.Series) else ids_
        coded = sorted({code: text for text in texts if (code := _code_of(text)) is not None}.items())
        in_order = [text for _, text in coded]
        return Codes(np.array([code for code, _ in coded], dtype=np.int64), None, in_order)
    series = ids_ if isinstance(ids_, pl.Series) else pl.Series(ids_, dtype=pl.String)
    # Sorted, then one of each code kept in order (cheaper than unique, then sort: 32 → 20 ms over
    # a city's roll). One code is one text, so which of a code's rows is kept does not matter.
    coded = (series.to_frame("id_number").lazy()
             .with_columns(ids.code_expr(pl.col("id_number")).alias(_CODE))
             .drop_nulls(_CODE).sort(_CODE).unique(_CODE, keep="any", maintain_order=True)
             .collect(engine="in-memory"))
    return Codes(coded.get_column(_CODE).to_numpy(), coded.get_column("id_number"))


def name_town(name: pl.Expr, region_code: pl.Expr) -> pl.Expr:
    """The name block's key, as engine.resolve compares it: the name's key in the township."""
    return pl.concat_str(region_code.str.slice(0, 9), pl.lit("\x1f"), names.key_expr(name))


def _name_index(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    # Hashes, not the keys: 8 bytes a record. A colliding stranger found with them is harmless:
    # engine.resolve joins each block on its exact key. Hashed BATCH rows at a time: the keys of
    # a province's 100M records would take ~4 GB at once.
    key = name_town(pl.col("name"), pl.col("region_code")).hash()
    hashes = [frame.slice(start, BATCH).select(key).to_series().to_numpy()
              for start in range(0, frame.height, BATCH)]
    order = pl.DataFrame({"h": np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)}).with_row_index(
        "at").sort("h", maintain_order=True)  # ties in row order: the same file, however written
    return order.get_column("h").to_numpy(), order.get_column("at").to_numpy()


def _write(path: Path, coded: pl.DataFrame, name_index: tuple[np.ndarray, np.ndarray] | None,
           odd: pl.DataFrame) -> None:
    """The file: `coded` (_CODE first, sorted by it) with the name index beside it, in batches of
    BATCH rows (one for a city's sources: its columns are then mapped as they are, no copy)."""
    meta = {"format": FORMAT, "polars": pl.__version__, "names": name_index is not None,
            "name_key": names.KEY_VERSION}
    writer = None
    with pa.OSFile(str(path), "wb") as sink:
        for start in range(0, max(coded.height, 1), BATCH):
            columns = {c: coded.get_column(c).slice(start, BATCH) for c in coded.columns}
            if name_index is not None:
                columns |= {_HASH: name_index[0][start:start + BATCH], _AT: name_index[1][start:start + BATCH]}
            batch = pl.DataFrame(columns).rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
            if writer is None:
                writer = ipc.new_file(sink, batch.schema.with_metadata({_META: json.dumps(meta).encode()}))
            writer.write_table(batch, max_chunksize=max(batch.num_rows, 1))
        assert writer is not None
        writer.close()
    odd_path = Path(f"{path}.odd")
    if odd.height:
        odd.write_ipc(odd_path)
    else:
        odd_path.unlink(missing_ok=True)


class Keyed:
    """Rows sorted by ID code (`frame`, without id_number), their codes, the rows without one."""

    def __init__(self, codes: np.ndarray, frame: pl.DataFrame, odd: pl.DataFrame,
                 name_index: tuple[np.ndarray, np.ndarray] | None = None, mapped: pa.Buffer | None = None) -> None:
        self.codes, self.frame, self.odd, self.name_index = codes, frame, odd, name_index
        self.empty = odd.head(0)
        self.schema = self.empty.schema
        self.height = frame.height + odd.height
        self._mapped = mapped  # the whole file, as mapped (read)
        self._columns = columns_of(frame)  # for _gathered, taken once

    def release(self) -> None:
        """Unmap the file's pages this process has read: they stay in the operating system's
        page cache and are mapped again when read (nothing is copied, nothing lost), but no
        longer count as this process's memory. A province run's lookups touch most pages of
        every source (2.9M people among 100M records): ~9.8 GB resident on top of its own 7 GB,
        unless each source lets go of its pages once looked up."""
        if self._mapped is not None and _madvise is not None:
            _madvise(self._mapped.address, self._mapped.size, _DONTNEED)

    @classmethod
    def of(cls, frame: pl.DataFrame, names: bool = False) -> Keyed:
        coded = frame.with_columns(ids.code_expr(pl.col("id_number")).alias(_CODE))
        others = [c for c in frame.columns if c != "id_number"]
        odd = coded.filter(pl.col(_CODE).is_null()).select("id_number", *others)
        ordered = coded.filter(pl.col(_CODE).is_not_null()).sort(_CODE, maintain_order=True)
        rows = ordered.select(others).rechunk()
        return cls(ordered.get_column(_CODE).to_numpy(), rows, odd, _name_index(ordered) if names else None)

    def write(self, path: Path) -> None:
        """Write to `path` (and, when there are rows without a code, `<path>.odd`)."""
        coded = self.frame.select(pl.lit(pl.Series(_CODE, self.codes)), pl.all())
        _write(path, coded, self.name_index, self.odd)

    @staticmethod
    def sink(scan: pl.LazyFrame, path: Path, names: bool = False) -> int:
        """What `Keyed.of(scan.collect(), names).write(path)` writes, without holding the rows in
        memory twice over (a province's 100M hukou records are ~6 GB): polars' streaming engine
        sorts them into a temporary file beside `path`, mapped, then copied into the file a batch
        at a time. Returns the rows written."""
        others = [c for c in scan.collect_schema().names() if c != "id_number"]
        coded = scan.with_columns(ids.code_expr(pl.col("id_number")).alias(_CODE))
        odd = coded.filter(pl.col(_CODE).is_null()).select("id_number", *others).collect(engine="streaming")
        sorting = path.with_name(f".{path.name}.sorting")
        try:
            (coded.filter(pl.col(_CODE).is_not_null()).sort(_CODE, maintain_order=True).select(_CODE, *others)
             .sink_ipc(sorting, compression="uncompressed", compat_level=pl.CompatLevel.newest()))
            ordered = pl.from_arrow(ipc.open_file(pa.memory_map(str(sorting))).read_all(), rechunk=False)
            assert isinstance(ordered, pl.DataFrame)
            _write(path, ordered, _name_index(ordered) if names else None, odd)
            return ordered.height + odd.height
        finally:
            sorting.unlink(missing_ok=True)

    @classmethod
    def read(cls, path: Path) -> Keyed | None:
        """The keyed frame of `path`, memory-mapped; None when the file is of another format (or
        not an Arrow file at all: cut short, say)."""
        try:
            mapping = pa.memory_map(str(path))
            whole = mapping.read_buffer(mapping.size())  # where it is mapped (release)
            reader = ipc.open_file(whole)
        except pa.ArrowInvalid:
            return None
        meta = json.loads((reader.schema.metadata or {}).get(_META, b"{}"))
        if meta.get("format") != FORMAT:
            return None
        mapped = pl.from_arrow(reader.read_all(), rechunk=False)
        assert isinstance(mapped, pl.DataFrame)
        frame = mapped.drop(_CODE, _HASH, _AT, strict=False)
        odd_path = Path(f"{path}.odd")
        odd = pl.read_ipc(odd_path) if odd_path.exists() else frame.head(0).select(
            pl.lit(None, pl.String).alias("id_number"), *frame.columns)
        name_index = None
        if meta.get("names"):
            # The same hash function over the same keys (files before KEY_VERSION 2 say none).
            same_hash = meta.get("polars") == pl.__version__ and meta.get("name_key", 1) == names.KEY_VERSION
            name_index = ((mapped.get_column(_HASH).to_numpy(), mapped.get_column(_AT).to_numpy()) if same_hash
                          else _name_index(frame))
        keyed = cls(mapped.get_column(_CODE).to_numpy(), frame, odd, name_index, whole)
        if mapped.n_chunks() > 1:
            keyed.release()  # the codes (and name index) were copied out of several batches
        return keyed

    # ---- lookups ----------------------------------------------------------------------------

    def bounds(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the rows whose code is in [lower[i], upper[i]) start and end (positions in
        `frame`): a person's slice for upper = lower + 1."""
        bounds = np.searchsorted(self.codes, np.concatenate([lower, upper]), side="left")  # one call, not two
        return bounds[: len(lower)], bounds[len(lower):]

    def _between(self, lower: np.ndarray, upper: np.ndarray, texts: Codes | None = None) -> pl.DataFrame:
        """The rows whose code is in [lower[i], upper[i]) for some i; `texts`: the IDs of the
        ranges (of one code each), given to their rows instead of text made from the codes."""
        return self._sliced(*self.bounds(lower, upper), texts)

    def _sliced(self, starts: np.ndarray, ends: np.ndarray, texts: Codes | None = None) -> pl.DataFrame:
        """The rows of the slices [starts[i], ends[i]) (`bounds`), `texts` as in _between."""
        found = ends > starts
        if not found.any():
            return self.empty
        firsts, lengths = starts[found], (ends - starts)[found]
        if len(firsts) <= _SLICES:
            # A slice is a view (~3 µs); stacked as chunks of one frame, a few cost less than a gather.
            positions = list(zip(firsts.tolist(), lengths.tolist(), strict=True))
            found_rows = self.frame.slice(*positions[0])
            for first, length in positions[1:]:
                found_rows = found_rows.vstack(self.frame.slice(first, length))
        else:
            # Many persons: one gather of their slices' rows.
            found_rows = _gathered(self.frame, self._offsets(firsts, lengths), self._columns)
        if texts is None:
            return self._with_ids(found_rows, self.codes[self._offsets(firsts, lengths)])
        ranges = np.repeat(np.flatnonzero(found), lengths)
        if texts.texts is not None and len(ranges) <= _FEW:  # a Series' gather is a query
            given = series("id_number", [texts.texts[at] for at in ranges.tolist()], pl.String)
        else:
            given = texts.ids.gather(ranges)
        found_rows.insert_column(0, given)
        return found_rows

    @staticmethod
    def _offsets(firsts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The row positions of the slices [first, first + length)."""
        return np.repeat(firsts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())

    def _with_ids(self, rows: pl.DataFrame, codes: np.ndarray) -> pl.DataFrame:
        """`rows` (a new frame: a slice, stack or gather) given id_number from their codes."""
        if len(codes) <= _FEW:
            texts = [ids.from_code(code) for code in codes.tolist()]
            rows.insert_column(0, series("id_number", texts, pl.String))
            return rows
        return rows.select(ids.from_code_expr(pl.lit(pl.Series(_CODE, codes))).alias("id_number"), pl.all())

    def _matching(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For sorted distinct codes `values`: the positions of the rows having one (ascending),
        and for each the index of its code in `values`.

        Whichever side is shorter is searched in the other: the rows' codes among the values for a
        source smaller than the roll, else the values among the rows' codes, each found by one
        binary search for its first row, the rest of its rows (adjacent, and a few) by stepping on
        while the code stays the same: a second search for the end costs as much as the first
        (city: 291k IDs in a 10M-row hukou, 18.5 → 9 ms)."""
        codes = self.codes
        if len(codes) < len(values):
            at = np.minimum(np.searchsorted(values, codes), len(values) - 1)
            hit = values[at] == codes
            return np.flatnonzero(hit), at[hit]
        firsts = np.searchsorted(codes, values)
        inside = np.flatnonzero(firsts < len(codes))
        found = inside[codes[firsts[inside]] == values[inside]]
        firsts = firsts[found]
        lengths = np.ones(len(found), dtype=np.int64)
        going = np.arange(len(found))
        for _ in range(_STEPS):
            if not len(going):
                break
            following = firsts[going] + lengths[going]
            going = going[following < len(codes)]
            going = going[codes[firsts[going] + lengths[going]] == values[found[going]]]
            lengths[going] += 1
        if len(going):  # a person with many rows: their end found by search after all
            ends = np.searchsorted(codes, values[found[going]], side="right")
            lengths[going] = ends - firsts[going]
        return self._offsets(firsts, lengths), np.repeat(found, lengths)

    def rows(self, ids_: list[str] | pl.Series, codes: Codes | None = None, coded: bool = False) -> pl.DataFrame:
        """The rows of these IDs (`codes`: their `codes_of`, when known already); `coded`: with
        their code as the last column, ids.PERSON (engine.run's rules can join on it)."""
        codes = codes_of(ids_) if codes is None else codes
        if len(codes.values) <= _FEW:  # an API request's: slices, no gather (see _between)
            return self.rows_within(ids_, codes, *self.bounds(codes.values, codes.values + 1), coded=coded)
        positions, which = self._matching(codes.values)
        found = self.frame.gather(positions)
        found.insert_column(0, codes.ids.gather(which))
        if coded:
            found = found.with_columns(pl.Series(ids.PERSON, codes.values[which]))
        return self._with_odd(found, ids_, coded)

    def rows_within(self, ids_: list[str] | pl.Series, codes: Codes, starts: np.ndarray, ends: np.ndarray,
                    coded: bool = False) -> pl.DataFrame:
        """rows(ids_, codes, coded) for a few IDs whose slices are known: `starts` and `ends` are
        `bounds(codes.values, codes.values + 1)` (engine.check keeps them for the roll's persons)."""
        found = self._sliced(starts, ends, codes)
        if coded:
            found = found.with_columns(ids.code_expr(pl.col("id_number")).alias(ids.PERSON))
        return self._with_odd(found, ids_, coded)

    def _with_odd(self, found: pl.DataFrame, ids_: list[str] | pl.Series, coded: bool) -> pl.DataFrame:
        """`found` with the rows of `ids_` that have no code."""
        if self.odd.height:  # no code: never joined on one
            odd = self.odd.filter(pl.col("id_number").is_in(pl.Series(ids_, dtype=pl.String).implode()))
            found = pl.concat([found, odd.with_columns(pl.lit(None, pl.Int64).alias(ids.PERSON)) if coded else odd])
        return found

    def positions(self, codes: Codes) -> np.ndarray:
        """The positions of these IDs' rows in `frame`, ascending (rows without a code: never)."""
        if len(codes.values) <= _FEW:
            starts, ends = self.bounds(codes.values, codes.values + 1)
            found = ends > starts
            return self._offsets(starts[found], (ends - starts)[found])
        return self._matching(codes.values)[0]

    def at(self, positions: np.ndarray) -> pl.DataFrame:
        """The rows at `positions` (of `frame`), id_number first."""
        if not len(positions):
            return self.empty
        return self._with_ids(_gathered(self.frame, positions, self._columns), self.codes[positions])

    def starting(self, prefixes: list[str]) -> pl.DataFrame:
        """The rows whose ID starts with one of these 14-character prefixes (region and birth)."""
        values = [p for p in set(prefixes) if p is not None and len(p) == 14 and p.isdigit()]
        lower = codes_of([p + "0000" for p in values]).values  # the smallest ID of each prefix
        found = self._between(lower, lower + _PER_PREFIX)
        if self.odd.height:
            found = pl.concat([found, self.odd.filter(pl.col("id_number").str.slice(0, 14).is_in(values))])
        return found

    def named(self, keys: list[str]) -> pl.DataFrame:
        """The rows whose `name_town` is one of `keys` (a hash's stranger or two besides)."""
        assert self.name_index is not None, "a keyed frame made without names"
        hashes, at = self.name_index
        wanted = pl.Series(keys, dtype=pl.String).hash().to_numpy()
        starts = np.searchsorted(hashes, wanted, side="left")
        ends = np.searchsorted(hashes, wanted, side="right")
        positions = np.concatenate([at[s:e] for s, e in zip(starts, ends, strict=True)] or [at[:0]])
        found = self._with_ids(_gathered(self.frame, positions, self._columns), self.codes[positions])
        if self.odd.height:
            town = name_town(pl.col("name"), pl.col("region_code"))
            found = pl.concat([found, self.odd.filter(town.is_in(keys))])
        return found
