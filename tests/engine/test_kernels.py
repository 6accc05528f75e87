"""engine.kernels: each compiled scan against its definition (polars' strip_chars, a regex,
engine.ids.is_valid, date.fromisoformat), over cells of every length around a string view's 12
inline bytes, nulls, several chunks and a sliced column."""

from __future__ import annotations

import os
import re
import select
import signal
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import cells, ids, kernels

from .test_ids import dirty, valid_ids

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AS_OF = date(2026, 6, 30)
# Every character Rust calls white space (and so polars' strip_chars), and some it does not.
WHITE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2005\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_WHITE = "\x1c\x1f\u200b\u180e\ufeff\x00"
characters = st.one_of(st.sampled_from(WHITE + NOT_WHITE + "张伟ａ0-X.é"),
                       st.characters(codec="utf-8", exclude_categories=("Cs",)))
texts = st.one_of(st.none(), st.text(characters, max_size=16), valid_ids(), valid_ids().flatmap(dirty))


def column(cells: list[str | None], pieces: int, offset: int, buffers: int = 1) -> pl.Series:
    """`cells` as a String column of `pieces` chunks, the first `offset` rows sliced away (Arrow
    arrays with an offset), its longer cells in `buffers` data buffers, which each chunk holds
    all of (as a decoded Parquet chunk holds several)."""
    padded = ["pad"] * offset + cells
    if buffers > 1:  # each part made on its own has its own buffer; joined, the chunk has all
        cut = np.linspace(0, len(padded), buffers + 1).astype(int)
        whole = pl.concat([pl.Series("c", padded[a:b], pl.String) for a, b in zip(cut[:-1], cut[1:], strict=True)],
                          rechunk=True)
    else:
        whole = pl.Series("c", padded, pl.String)
    cut = np.linspace(0, len(whole), pieces + 1).astype(int)
    chunked = pl.concat([whole.slice(a, b - a) for a, b in zip(cut[:-1], cut[1:], strict=True)], rechunk=False)
    return chunked.slice(offset)


def test_columns_are_made_with_chunks_of_more_data_buffers_than_an_id_scan_reads_a_call():
    made = column([f"a cell longer than twelve bytes {n}" for n in range(12)], 2, 1, 2 * kernels._GROUP + 1)
    counts = [len(chunk.to_arrow(compat_level=pl.CompatLevel.newest()).buffers()) - 2 for chunk in made.get_chunks()]
    assert min(counts) > kernels._GROUP, counts


layouts = st.tuples(st.integers(1, 3), st.integers(0, 3), st.sampled_from([1, 1, 2, 3, 9]))


@SETTINGS
@given(st.lists(texts, max_size=30), layouts)
def test_trimmed_is_non_empty_with_nothing_for_strip_chars_to_remove(cells, layout):
    got = kernels.trimmed(column(cells, *layout))
    expected = pl.Series(cells, dtype=pl.String)
    expected = (expected.str.strip_chars() == expected) & (expected.str.len_bytes() > 0)
    assert got.tolist() == expected.fill_null(False).to_list()


@SETTINGS
@given(st.lists(st.one_of(texts, st.from_regex(r"[0-9]{1,16}", fullmatch=True)), max_size=30), layouts)
def test_digits_is_a_run_of_six_to_twelve_ascii_digits(cells, layout):
    got = kernels.digits(column(cells, *layout), 6, 12)
    assert got.tolist() == [c is not None and re.fullmatch(r"[0-9]{6,12}", c, re.ASCII) is not None for c in cells]


decimals = st.from_regex(r"[0-9]{0,17}(\.[0-9]{0,17})?", fullmatch=True)


@SETTINGS
@given(st.lists(st.one_of(texts, decimals), max_size=30), layouts)
def test_decimal_is_one_to_fifteen_digits_and_maybe_a_fraction_of_as_many(cells, layout):
    got = kernels.decimal(column(cells, *layout))
    pattern = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?", re.ASCII)
    assert got.tolist() == [c is not None and pattern.fullmatch(c) is not None for c in cells]


SPELLINGS = ["normal", "正常", "NORMAL", "sold", "a_spelling_longer_than_twelve_bytes", ""]


@SETTINGS
@given(st.lists(st.one_of(texts, st.sampled_from([*SPELLINGS, "Normal", "正常 ", "sol"])), max_size=30), layouts)
def test_code_finds_the_exact_spelling(cells, layout):
    got = kernels.code(column(cells, *layout), SPELLINGS)
    assert got.tolist() == [SPELLINGS.index(c) if c in SPELLINGS else -1 for c in cells]


_PLAIN = {10: r"[0-9]{4}([-/])[0-9]{2}\1[0-9]{2}|[0-9]{8}", 7: r"[0-9]{4}[-/][0-9]{2}|[0-9]{6}"}


def _plain(cell: str | None, width: int) -> int:
    if cell is None or not re.fullmatch(_PLAIN[width], cell):
        return kernels.NO_DATE
    digits = re.sub("[-/]", "", cell) + ("01" if width == 7 else "")
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return kernels.NO_DATE
    if not date(1900, 1, 1) <= day <= date(2199, 12, 31):
        return kernels.NO_DATE
    return (day - date(1970, 1, 1)).days


dates = st.dates(min_value=date(1, 1, 1)).map(date.isoformat)
# ISO, with slashes, without separators, and near misses of each
near_dates = st.from_regex(r"[0-9]{4}[-/.][0-9]{2}[-/.][0-9]{2}|[0-9]{4}[-/.][0-9]{2}|[0-9]{5,9}", fullmatch=True)
spelled = dates.map(lambda d: d.replace("-", "/")) | dates.map(lambda d: d.replace("-", ""))


@pytest.mark.parametrize("width, cells, expected", [
    (10, ["2024-02-01", "2024/02/01", "20240201"], [date(2024, 2, 1)] * 3),
    (10, ["2024/02-01", "2024.02.01", "2024/2/1", "2024-02-30", "20240230", "18991231", "202402011"], [None] * 7),
    (7, ["2024-02", "2024/02", "202402"], [date(2024, 2, 1)] * 3),
    (7, ["2024.02", "2024/2", "20242", "202413", "2024-02-01"], [None] * 5),
])
def test_plain_date_reads_these_spellings_and_no_other(width, cells, expected):
    days = [None if d == kernels.NO_DATE else date(1970, 1, 1) + timedelta(days=int(d))
            for d in kernels.plain_date(pl.Series(cells, dtype=pl.String), width)]
    assert days == expected


@SETTINGS
@given(st.lists(st.one_of(texts, dates, spelled, dates.map(lambda d: d[:7]), spelled.map(lambda d: d[:7]),
                          spelled.map(lambda d: d[:6]), near_dates), max_size=30), layouts,
       st.sampled_from([10, 7]))
def test_plain_date_reads_a_real_date_of_the_years_taken(cells, layout, width):
    got = kernels.plain_date(column(cells, *layout), width)
    assert got.tolist() == [_plain(c, width) for c in cells]


id_cells = st.one_of(texts, valid_ids(), valid_ids(first=date(2026, 6, 1), last=date(2026, 12, 31)),
                     valid_ids().map(lambda i: i[:17] + ("0" if i[17] != "0" else "1")),
                     valid_ids().map(lambda i: i[:6] + "0000" + i[10:]),
                     st.from_regex(r"[0-9]{17}[0-9Xx]", fullmatch=True))


@SETTINGS
@given(st.lists(id_cells, max_size=30), layouts, st.sampled_from([AS_OF, None]))
def test_id_valid_is_ids_is_valid(cells, layout, as_of):
    got = kernels.id_valid(column(cells, *layout), as_of)
    assert got.tolist() == [c is not None and ids.is_valid(c, as_of) for c in cells]
    assert got.tolist() == ids.valid(pl.Series(cells, dtype=pl.String), as_of).to_list()
    codes = kernels.id_codes(column(cells, *layout), as_of)
    assert codes.tolist() == [ids.code(c) if ok else -1 for c, ok in zip(cells, got, strict=True)]


@pytest.mark.parametrize("position", range(17))
@pytest.mark.parametrize("byte", ["/", ":", "A"])
def test_a_character_just_outside_the_digits_is_no_digit_wherever_it_is(position, byte):
    """A character next to the digits (or a letter) in any of the first 17 places, with the check
    character its byte value would give and a real birth date: not an ID (the kernel takes
    digits by their byte values, so only its digit test keeps them out)."""
    first17 = list("11010519491201002")
    first17[position] = byte
    values = [ord(c) - 48 for c in first17]
    cell = "".join(first17) + ids.CHECK_CHARS[sum(v * w for v, w in zip(values, ids.WEIGHTS, strict=True)) % 11]
    assert not ids.is_valid(cell, AS_OF)
    assert kernels.id_codes(column([cell, "11010519491231002X"], 1, 0), AS_OF).tolist() == [-1, ids.code("11010519491231002X")]


_TYPED = re.compile(r"[0-9 \-\uff10-\uff19xX\uff38\uff58]*")  # what spelled_id_codes reads


def _spelled(cell: str | None, as_of: date | None) -> int:
    """spelled_id_codes by its definition: ids.normalize_legacy of the cells in its alphabet."""
    if cell is None or not _TYPED.fullmatch(cell):
        return -1
    normalized, legacy = ids.normalize_legacy(cell)
    if not ids.is_valid(normalized, as_of) or len(ids.clean(cell) or "") not in (15, 18):
        return -1
    return ids.code(normalized) | (int(kernels.LEGACY_BIT) if legacy else 0)


legacy_ids = valid_ids(last=date(1999, 12, 31)).map(lambda i: i[:6] + i[8:17])
typed_ids = st.one_of(valid_ids().flatmap(dirty), legacy_ids.flatmap(dirty), legacy_ids,
                      valid_ids().map(lambda i: i.replace("X", "x")), id_cells,
                      st.from_regex(r"[0-9 \-]{14,20}[xX]?", fullmatch=True))


@SETTINGS
@given(st.lists(typed_ids, max_size=30), layouts, st.sampled_from([AS_OF, None]))
def test_spelled_id_codes_reads_what_normalize_reads_in_its_alphabet(cells, layout, as_of):
    got = kernels.spelled_id_codes(column(cells, *layout), as_of)
    assert got.tolist() == [_spelled(c, as_of) for c in cells]


def test_a_column_of_nulls_and_an_empty_column():
    assert kernels.trimmed(pl.Series([None, None], dtype=pl.String)).tolist() == [False, False]
    assert kernels.id_valid(pl.Series([], dtype=pl.String)).tolist() == []
    assert kernels.code(pl.Series([None], dtype=pl.String), ["a"]).tolist() == [-1]


@SETTINGS
@given(st.lists(id_cells, min_size=2, max_size=30), layouts)
def test_a_large_column_scanned_in_two_halves_is_scanned_as_a_whole(cells, layout):
    whole = column(cells, *layout)
    scans = [lambda c: kernels.id_codes(c, AS_OF), lambda c: kernels.spelled_id_codes(c, AS_OF), kernels.trimmed, lambda c: kernels.digits(c, 6, 12),
             kernels.decimal, lambda c: kernels.code(c, SPELLINGS), kernels.plain_date]
    expected = [scan(whole).tolist() for scan in scans]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "_HALVED_ROWS", 2)
        assert [scan(whole).tolist() for scan in scans] == expected


def test_a_forked_child_scans_in_halves_with_threads_of_its_own():
    big = pl.Series(["11010519491231002X"] * (kernels._HALVED_ROWS + 1), dtype=pl.String)
    assert kernels.id_valid(big).all()  # the pool is made here
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's result is told through the pipe
        os.write(write, b"1" if kernels.id_valid(big).all() else b"0")
        os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 30)
    if not ready:
        os.kill(child, signal.SIGKILL)  # waiting on a half that never runs
    os.waitpid(child, 0)
    try:
        assert ready and os.read(read, 1) == b"1"
    finally:
        os.close(read)


def test_the_kernels_constants_are_the_engines():
    assert tuple(kernels._WEIGHTS) == ids.WEIGHTS and bytes(kernels._CHECK).decode() == ids.CHECK_CHARS
    assert (date(kernels._FIRST_YEAR, 1, 1), date(kernels._LAST_YEAR, 12, 31)) == (cells.FIRST_DATE, cells.LAST_DATE)
