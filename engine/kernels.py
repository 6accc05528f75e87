"""Compiled scans over a String column's UTF-8 bytes: is each cell already in its canonical form,
and what is it worth then. For engine.clean_rows (the canonical rows of a large table).

    ok = id_valid(column, as_of)                # bool ndarray: valid 18-character IDs
    key = id_codes(column, as_of)               # int64 ndarray: their engine.ids.code, or -1
    ok = trimmed(column)                        # non-empty, nothing for strip_chars to remove
    ok = digits(column, 6, 12)                  # 6-12 ASCII digits (region codes)
    ok = decimal(column)                        # 1-15 digits, then maybe '.' and 1-15 digits
    index = code(column, ["normal", "正常"])    # int8 ndarray: which spelling, -1 for none
    days = plain_date(column, 10)               # int32 ndarray: days since 1970-01-01, or NO_DATE

Why compiled (numba): each is one pass over bytes, per cell a few nanoseconds, where the same
checks as polars expressions cost ~10-25 ns a cell and operation (a regex, a lookup, a date
parse: a city's 28M source rows cost ~4 s of a run from files) and in NumPy an ID's check
character costs ~70 ns (17 strided passes; benchmarks/HISTORY.md, the kernels round). The
kernels release the GIL: a large column is scanned in two halves at once.

The bytes are read where polars keeps them (Arrow string views, chunk by chunk, no copy): a
view holds a cell of up to 12 bytes itself, a longer one points into a data buffer. A null cell
is False, -1 or NO_DATE. Every check is an exact form: a cell a kernel does not take is left to
engine.loaders' usual reading, which takes every spelling it can (tests/engine/test_kernels.py
holds each kernel to its polars or Python definition).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import numpy as np
import polars as pl
from numba import njit

__all__ = ["LEGACY_BIT", "NO_DATE", "code", "decimal", "digits", "id_codes", "id_valid", "plain_date", "spelled_id_codes", "trimmed"]

NO_DATE = np.iinfo(np.int32).min
LEGACY_BIT = np.int64(1) << 61  # set in spelled_id_codes' code of a legacy 15-digit ID (codes are < 2^61)
_WEIGHTS = np.array((7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), dtype=np.int64)  # engine.ids.WEIGHTS
_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8).copy()  # engine.ids.CHECK_CHARS
_MONTH_DAYS = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_HALVED_ROWS = 1 << 18  # a column of at least this many rows is scanned in two halves at once
_GROUP = 4  # data buffers an _id_codes call reads (a tuple of this many: one compiled signature)
_NO_BYTES = np.zeros(1, dtype=np.uint8)
_NO_BYTES.setflags(write=False)  # (as np.frombuffer's arrays are: one type for numba)
_FALSES = np.zeros(0, dtype=np.bool_)  # read only: shared by every scan of a chunk without nulls
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_FIRST_YEAR, _LAST_YEAR = 1900, 2199  # engine.cells.FIRST_DATE, LAST_DATE


@njit(nogil=True, inline="always")
def _cell(views32, which, i):
    """Whether cell i is read in this call, and from which position of `data`. A cell of up to
    12 bytes is in its view (Arrow's string view), read in the call with `which` -1, whose
    `data` is the views' bytes; a longer one in the call for its data buffer. (A buffer a call,
    not the chunk's buffers joined: a copy of them cost more than the checks. And the bytes read
    in the kernel itself: an array passed to a helper is counted as a reference, ~10x a check.)"""
    if views32[i, 0] <= 12:
        return which < 0, np.int64(i * 16 + 4)
    return views32[i, 2] == which, np.int64(views32[i, 3])


@njit(nogil=True, inline="always")
def _real_date(year, month, day):
    if month < 1 or month > 12 or day < 1:
        return False
    if month == 2 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return day <= 28
    return day <= _MONTH_DAYS[month]


@njit(cache=True, nogil=True)
def _id_codes(views32, buffers, first_buffer, nulls, latest, out):
    # An ID is never in its view (18 bytes): read in its data buffer, `_GROUP` buffers a call
    # (engine.kernels._scan_into): one pass over a decoded Parquet chunk, not one per buffer
    # (2-4): 0.20 -> 0.14 s over a city's hukou, with the three chains below.
    for i in range(len(out)):
        if first_buffer == 0:
            out[i] = -1
        if nulls[i] or views32[i, 0] != 18:
            continue
        slot = views32[i, 2] - first_buffer
        if slot < 0 or slot >= _GROUP:
            continue
        data = buffers[slot]
        at = np.int64(views32[i, 3])
        # The 17 digits' number in three parts, each its own chain of multiply-adds, which the
        # processor then runs side by side (one chain of 17 was most of this kernel's time).
        total = 0
        head = 0
        middle = 0
        tail = 0
        bad = 0  # negative when a byte is not a digit
        for k in range(6):
            one = np.int64(data[at + k]) - 48
            other = np.int64(data[at + 6 + k]) - 48
            bad |= one | other | (9 - one) | (9 - other)
            total += one * _WEIGHTS[k] + other * _WEIGHTS[6 + k]
            head = head * 10 + one
            middle = middle * 10 + other
        for k in range(12, 17):
            digit = np.int64(data[at + k]) - 48
            bad |= digit | (9 - digit)
            total += digit * _WEIGHTS[k]
            tail = tail * 10 + digit
        check = np.int64(data[at + 17])
        if bad < 0 or check != _CHECK[total % 11]:
            continue
        number = (head * 1_000_000 + middle) * 100_000 + tail
        year = ((np.int64(data[at + 6]) - 48) * 1000 + (np.int64(data[at + 7]) - 48) * 100
                + (np.int64(data[at + 8]) - 48) * 10 + np.int64(data[at + 9]) - 48)
        month = (np.int64(data[at + 10]) - 48) * 10 + np.int64(data[at + 11]) - 48
        day = (np.int64(data[at + 12]) - 48) * 10 + np.int64(data[at + 13]) - 48
        if year >= 1 and _real_date(year, month, day) and (latest < 0 or year * 10000 + month * 100 + day <= latest):
            out[i] = number * 11 + (10 if check == 88 else check - 48)  # engine.ids.code


@njit(cache=True, nogil=True)
def _spelled_id_codes(views32, data, which, nulls, latest, out):
    # An ID as people type it, within what engine.ids.clean undoes: ASCII spaces and hyphens
    # anywhere, full-width digits, x and full-width Ｘ/ｘ for X; 18 characters, or 15 digits
    # (a legacy ID, converted with the century 19). The code, with LEGACY_BIT for a legacy ID.
    got = np.zeros(18, dtype=np.int64)
    for i in range(len(out)):
        if which < 0:
            out[i] = -1
        if nulls[i]:
            continue
        mine, at = _cell(views32, which, i)
        if not mine:
            continue
        length = np.int64(views32[i, 0])
        k = 0
        count = 0
        ok = True
        while k < length:
            byte = np.int64(data[at + k])
            k += 1
            if byte == 32 or byte == 45:
                continue
            if 48 <= byte <= 57:
                value = byte - 48
            elif byte == 88 or byte == 120:
                value = 10
            elif byte == 0xEF and k + 1 < length:
                second, third = np.int64(data[at + k]), np.int64(data[at + k + 1])
                k += 2
                if second == 0xBC and 0x90 <= third <= 0x99:
                    value = third - 0x90
                elif (second == 0xBC and third == 0xB8) or (second == 0xBD and third == 0x98):
                    value = 10
                else:
                    ok = False
                    break
            else:
                ok = False
                break
            if count == 18:
                ok = False
                break
            got[count] = value
            count += 1
        if not ok or (count != 18 and count != 15):
            continue
        legacy = count == 15
        if legacy:  # 6 digits of region, then 19, then the other 9
            for k in range(16, 7, -1):
                got[k] = got[k - 2]
            got[6], got[7] = 1, 9
        total = 0
        number = 0
        for k in range(17):
            if got[k] > 9:
                ok = False
                break
            total += got[k] * _WEIGHTS[k]
            number = number * 10 + got[k]
        if not ok:
            continue
        check = np.int64(_CHECK[total % 11])
        check = 10 if check == 88 else check - 48
        if not legacy and got[17] != check:
            continue
        year = got[6] * 1000 + got[7] * 100 + got[8] * 10 + got[9]
        month, day = got[10] * 10 + got[11], got[12] * 10 + got[13]
        if year >= 1 and _real_date(year, month, day) and (latest < 0 or year * 10000 + month * 100 + day <= latest):
            out[i] = number * 11 + check + (LEGACY_BIT if legacy else 0)


@njit(nogil=True, inline="always")
def _white(point):
    """Unicode White_Space, as Rust's char::is_whitespace (and so polars' strip_chars)."""
    return (9 <= point <= 13 or point == 32 or point == 0x85 or point == 0xA0 or point == 0x1680
            or 0x2000 <= point <= 0x200A or point == 0x2028 or point == 0x2029 or point == 0x202F
            or point == 0x205F or point == 0x3000)


@njit(cache=True, nogil=True)
def _trimmed(views32, data, which, nulls, out):
    for i in range(len(out)):
        if which < 0:
            out[i] = False
        if nulls[i] or views32[i, 0] == 0:
            continue
        mine, at = _cell(views32, which, i)
        if not mine:
            continue
        # The first character (UTF-8: polars' strings are valid).
        lead = np.int64(data[at])
        if lead < 0x80:
            first = lead
        elif lead < 0xE0:
            first = ((lead & 0x1F) << 6) | (np.int64(data[at + 1]) & 0x3F)
        elif lead < 0xF0:
            first = ((lead & 0x0F) << 12) | ((np.int64(data[at + 1]) & 0x3F) << 6) \
                | (np.int64(data[at + 2]) & 0x3F)
        else:
            first = 0x10000  # beyond every white space character
        if _white(first):
            continue
        # The last character: back over continuation bytes (10xxxxxx) to its first byte.
        end = views32[i, 0]
        start = end - 1
        while start > 0 and (np.int64(data[at + start]) & 0xC0) == 0x80:
            start -= 1
        last = np.int64(data[at + start])
        if end - start == 2:
            last = ((last & 0x1F) << 6) | (np.int64(data[at + start + 1]) & 0x3F)
        elif end - start == 3:
            last = ((last & 0x0F) << 12) | ((np.int64(data[at + start + 1]) & 0x3F) << 6) \
                | (np.int64(data[at + start + 2]) & 0x3F)
        elif end - start == 4:
            last = 0x10000
        out[i] = not _white(last)


@njit(cache=True, nogil=True)
def _digits(views32, data, which, nulls, fewest, most, out):
    for i in range(len(out)):
        if which < 0:
            out[i] = False
        length = views32[i, 0]
        if nulls[i] or length < fewest or length > most:
            continue
        mine, at = _cell(views32, which, i)
        if not mine:
            continue
        ok = True
        for k in range(length):
            if np.int64(data[at + k]) < 48 or np.int64(data[at + k]) > 57:
                ok = False
                break
        out[i] = ok


@njit(cache=True, nogil=True)
def _decimal(views32, data, which, nulls, out):
    for i in range(len(out)):
        if which < 0:
            out[i] = False
        length = views32[i, 0]
        if nulls[i] or length == 0 or length > 31:
            continue
        mine, at = _cell(views32, which, i)
        if not mine:
            continue
        whole = 0
        fraction = -1  # digits after the point; -1: no point
        ok = True
        for k in range(length):
            byte = np.int64(data[at + k])
            if byte == 46 and fraction < 0:
                fraction = 0
            elif 48 <= byte <= 57:
                if fraction < 0:
                    whole += 1
                else:
                    fraction += 1
            else:
                ok = False
                break
        out[i] = ok and 1 <= whole <= 15 and fraction != 0 and fraction <= 15


@njit(cache=True, nogil=True)
def _code(views32, data, which, nulls, spellings, ends, out):
    for i in range(len(out)):
        if which < 0:
            out[i] = -1
        if nulls[i]:
            continue
        mine, at = _cell(views32, which, i)
        if not mine:
            continue
        start = 0
        for spelling in range(len(ends)):
            end = ends[spelling]
            if end - start == views32[i, 0]:
                same = True
                for k in range(end - start):
                    if np.int64(data[at + k]) != spellings[start + k]:
                        same = False
                        break
                if same:
                    out[i] = spelling
                    break
            start = end


@njit(nogil=True, inline="always")
def _days(year, month, day):
    """Days since 1970-01-01 of a real date (Howard Hinnant's days_from_civil)."""
    year -= month <= 2
    era = year // 400
    of_era = year - era * 400
    of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    of_era_days = of_era * 365 + of_era // 4 - of_era // 100 + of_year
    return era * 146097 + of_era_days - 719468


@njit(cache=True, nogil=True)
def _plain_date(views32, data, which, nulls, width, out):
    # width 10: YYYY-MM-DD, YYYY/MM/DD (one separator twice) or YYYYMMDD; width 7, a month:
    # YYYY-MM, YYYY/MM or YYYYMM. (engine.cells' first three parsers take each of these alike.)
    compact = 8 if width == 10 else 6
    for i in range(len(out)):
        if which < 0:
            out[i] = NO_DATE
        length = views32[i, 0]
        if nulls[i] or (length != width and length != compact):
            continue
        mine, at = _cell(views32, which, i)
        if not mine:
            continue
        separated = length == width
        ok = True
        if separated:
            separator = np.int64(data[at + 4])
            ok = (separator == 45 or separator == 47) and (width == 7 or np.int64(data[at + 7]) == separator)
        number = 0
        for k in range(length):
            if separated and (k == 4 or k == 7):
                continue
            digit = np.int64(data[at + k]) - 48
            if digit < 0 or digit > 9:
                ok = False
                break
            number = number * 10 + digit
        if not ok:
            continue
        if width == 7:
            number = number * 100 + 1
        year, month, day = number // 10000, number // 100 % 100, number % 100
        if _FIRST_YEAR <= year <= _LAST_YEAR and _real_date(year, month, day):
            out[i] = _days(year, month, day)


def _scan(column: pl.Series, dtype: type, kernel: Callable[..., None], *args: object) -> np.ndarray:
    """`kernel` over `column` (String), into one array of `dtype`: a large column in two halves at
    once (the kernels release the GIL; a table's few columns, scanned two at a time, left one
    core idle while the ID column, the longest, finished)."""
    if column.dtype != pl.String:
        column = column.cast(pl.String)
    out = np.empty(len(column), dtype=dtype)
    if len(column) < _HALVED_ROWS:
        _scan_into(column, out, kernel, args)
        return out
    half = len(column) // 2
    second = _halves().submit(_scan_into, column.slice(half), out[half:], kernel, args)
    _scan_into(column.slice(0, half), out[:half], kernel, args)
    second.result()
    return out


def _no_nulls(length: int) -> np.ndarray:
    """`length` False values, for a chunk without nulls (its is_null() as NumPy was ~1 % of a
    run from files' CPU: a bitmap of zeros written out as bytes, per chunk and per scan)."""
    global _FALSES
    falses = _FALSES
    if len(falses) < length:
        falses = np.zeros(max(length, 2 * len(falses)), dtype=np.bool_)
        falses.setflags(write=False)
        _FALSES = falses
    return falses[:length]


def _halves() -> ThreadPoolExecutor:
    """The threads that scan second halves (theirs alone: a task here never waits on another)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(2, thread_name_prefix="kernels")
        return _POOL


def _forget_halves() -> None:
    """In a forked child the pool's threads are gone while the pool thinks it has them: a task
    submitted there would never run. The child makes its own."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_halves)


def _scan_into(column: pl.Series, out: np.ndarray, kernel: Callable[..., None], args: tuple[object, ...]) -> None:
    at = 0
    for chunk in column.get_chunks():
        if not len(chunk):
            continue
        arrow = chunk.to_arrow(compat_level=pl.CompatLevel.newest())  # string views: no copy
        found = arrow.buffers()
        if chunk.null_count():
            nulls = chunk.is_null().to_numpy()
            nulls.setflags(write=False)  # (the type of _no_nulls': one compiled signature)
        else:
            nulls = _no_nulls(len(chunk))
        if found[1] is None:  # every cell null
            views = np.zeros(len(chunk) * 16, dtype=np.uint8)
        else:
            views = np.frombuffer(found[1], dtype=np.uint8)[arrow.offset * 16:(arrow.offset + len(arrow)) * 16]
        views32 = views.view(np.int32).reshape(-1, 4)
        if kernel in _BY_GROUPS:
            # In their places (a view names its buffer by position), an absent one as no bytes.
            buffers = [_NO_BYTES if b is None or not b.size else np.frombuffer(b, dtype=np.uint8) for b in found[2:]]
            for first in range(0, max(len(buffers), 1), _GROUP):
                group = (*buffers[first:first + _GROUP], *[_NO_BYTES] * _GROUP)[:_GROUP]
                kernel(views32, group, first, nulls, *args, out[at:at + len(chunk)])
        else:
            kernel(views32, views, -1, nulls, *args, out[at:at + len(chunk)])
            for which, buffer in enumerate(found[2:]):
                if buffer is not None and buffer.size:
                    kernel(views32, np.frombuffer(buffer, dtype=np.uint8), which, nulls, *args, out[at:at + len(chunk)])
        at += len(chunk)


_BY_GROUPS = (_id_codes,)  # kernels of cells that are never in their views, called with a group of buffers


def id_codes(column: pl.Series, as_of: date | None = None) -> np.ndarray:
    """engine.ids.code of each cell that engine.ids.is_valid takes (17 ASCII digits, the check
    character they give, a real birth date of year 1-9999 not after `as_of`); -1 for any other
    cell and for null. (A valid ID's code is its join key, engine.ids.PERSON.)"""
    latest = -1 if as_of is None else as_of.year * 10000 + as_of.month * 100 + as_of.day
    return _scan(column, np.int64, _id_codes, latest)


def spelled_id_codes(column: pl.Series, as_of: date | None = None) -> np.ndarray:
    """engine.ids.code of each cell's engine.ids.normalize, where that is valid and the cell is
    spelt within a part of what engine.ids.clean undoes: ASCII spaces and hyphens, full-width
    digits, x, Ｘ or ｘ for X; a legacy 15-digit ID converted (its code | LEGACY_BIT). -1 for any
    other cell (the usual reading's): engine.clean_rows reads the cells id_codes does not take."""
    latest = -1 if as_of is None else as_of.year * 10000 + as_of.month * 100 + as_of.day
    return _scan(column, np.int64, _spelled_id_codes, latest)


def id_valid(column: pl.Series, as_of: date | None = None) -> np.ndarray:
    """engine.ids.is_valid of each cell (False for null)."""
    return id_codes(column, as_of) >= 0


def trimmed(column: pl.Series) -> np.ndarray:
    """Whether each cell is non-empty with nothing for polars' `strip_chars()` to remove."""
    return _scan(column, np.bool_, _trimmed)


def digits(column: pl.Series, fewest: int, most: int) -> np.ndarray:
    """Whether each cell is `fewest` to `most` ASCII digits."""
    return _scan(column, np.bool_, _digits, fewest, most)


def decimal(column: pl.Series) -> np.ndarray:
    """Whether each cell is 1-15 ASCII digits, then maybe a point and 1-15 more."""
    return _scan(column, np.bool_, _decimal)


def code(column: pl.Series, spellings: list[str]) -> np.ndarray:
    """Which of `spellings` (at most 127) each cell is, exactly; -1 for none (and for null)."""
    encoded = [s.encode() for s in spellings]
    data = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8).copy()
    ends = np.cumsum([len(e) for e in encoded]).astype(np.int64)
    return _scan(column, np.int8, _code, data, ends)


def plain_date(column: pl.Series, width: int = 10) -> np.ndarray:
    """Each cell as a date written YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD (`width` 10), or a month
    YYYY-MM, YYYY/MM or YYYYMM (7, its first day), of the years engine.cells takes (1900-2199):
    days since 1970-01-01, else NO_DATE."""
    return _scan(column, np.int32, _plain_date, width)
