"""Cells merged down a column of a workbook's first sheet, as the reader sees them: one value for
every row.

    merges = down_merges(path)                 # XLSX: [(column, first_row, last_row)], 0-based
    first, last = valued_columns(path, width)  # where fastexcel's table starts and ends
    merges, first = in_xls(path, width)        # the same of an Excel 97-2003 workbook
    body = filled_down(body, merges, first_row, first)

Rolls kept by hand merge a household's 家庭编号, 户主 or 行政区划代码 over its members' rows.
Excel keeps the value in the top cell only, so fastexcel reads the others as empty and every
member but the first would be rejected for a missing household. The merges are listed in the
sheet's XML (`<mergeCell ref="B2:B4"/>`, after the cells); each value is copied down the rows
its merge covers. Merges across columns are left alone: a note spread over several columns
is not a value of each.

fastexcel's table starts at the first column holding a value (its rows start at row 1), so a
merge's column is placed by that column, found in the same XML when there is a merge to place;
the table's width must then be what those columns span. Anything unexpected (the workbook's
parts, the width) means no merge is filled: the cells are read as before, never shifted.

An Excel 97-2003 workbook keeps the same in binary records (BIFF8) of its compound file's
Workbook stream (olefile reads the compound file): MERGEDCELLS for the merges, the cell records
for the columns holding values.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["Merge", "column_index", "down_merges", "valued_columns", "in_xls", "filled_down"]

Merge = tuple[int, int, int]  # column, first row, last row: 0-based, as in the sheet

_CHUNK = 1 << 20
_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*?\bref="([A-Z]{1,3})([0-9]+):([A-Z]{1,3})([0-9]+)"')
# A cell element that is not empty (`<c r="A1" s="3"/>` holds no value).
_VALUED_CELL = re.compile(rb'<(?:\w+:)?c\b[^>]*?\br="([A-Z]{1,3})[0-9]+"[^>]*?(?<!/)>')
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\b[^>]*?\bref="([A-Z]{1,3})[0-9]+(?::([A-Z]{1,3})[0-9]+)?"')
_OVERLAP = 200  # bytes kept between chunks, so that no element is cut in two


def column_index(letters: bytes | str) -> int:
    """0-based index of Excel column letters (A → 0, AA → 26)."""
    index = 0
    for letter in letters if isinstance(letters, str) else letters.decode():
        index = index * 26 + ord(letter) - 64
    return index - 1


def _first_sheet(archive: zipfile.ZipFile) -> str | None:
    """The part holding the workbook's first sheet (fastexcel's sheet 0)."""
    workbook = archive.read("xl/workbook.xml").decode("utf-8", "replace")
    sheet = re.search(r"<(?:\w+:)?sheet\b[^>]*>", workbook)
    relation = sheet and re.search(r'\b(?:\w+:)?id="([^"]+)"', sheet.group(0))
    if not relation:
        return None
    relations = archive.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    for element in re.findall(r"<(?:\w+:)?Relationship\b[^>]*>", relations):
        if re.search(rf'\bId="{re.escape(relation.group(1))}"', element):
            target = re.search(r'\bTarget="([^"]+)"', element)
            if not target:
                return None
            name = target.group(1)
            return name.lstrip("/") if name.startswith("/") else f"xl/{name}"
    return None


def _scan(path: Path, pattern: re.Pattern[bytes], marker: bytes, first_chunk: bool = False) -> list[tuple[bytes, ...]]:
    """Every match of `pattern` in the first sheet's XML, read a chunk at a time (`marker`: a
    chunk without it is not searched; `first_chunk`: only the first is read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            member = _first_sheet(archive)
            if member is None:
                return []
            found: set[tuple[bytes, ...]] = set()
            with archive.open(member) as stream:
                carry = b""
                while chunk := stream.read(_CHUNK):
                    window = carry + chunk
                    if marker in window:
                        found.update(match.groups() for match in pattern.finditer(window))
                    carry = window[-_OVERLAP:]
                    if first_chunk:
                        break
            return sorted(found)
    except (KeyError, OSError, zipfile.BadZipFile, UnicodeError):
        return []


def down_merges(path: Path) -> list[Merge]:
    """The first sheet's merges within one column and over more than one row."""
    merges = []
    for left, top, right, bottom in _scan(path, _MERGE, b"mergeCell"):
        if left == right and int(bottom) > int(top):
            merges.append((column_index(left), int(top) - 1, int(bottom) - 1))
    return merges


def valued_columns(path: Path, width: int) -> tuple[int, int] | None:
    """The first and last columns of the first sheet with a value in any row, where fastexcel's
    table of `width` columns starts and ends; None when they do not span `width` columns. The
    sheet's declared dimension (`<dimension ref="A1:H60"/>`, at its top) answers when it spans
    as many columns, as it holds every cell; else every cell is looked at."""
    declared = _scan(path, _DIMENSION, b"dimension", first_chunk=True)
    if declared:
        first, last = column_index(declared[0][0]), column_index(declared[0][1] or declared[0][0])
        if last - first + 1 == width:
            return first, last
    columns = [column_index(letters) for (letters,) in _scan(path, _VALUED_CELL, b"<")]
    if not columns or max(columns) - min(columns) + 1 != width:
        return None
    return min(columns), max(columns)


# BIFF8 record types (MS-XLS 2.3): the sheet list, a substream's end, the merges, and the cell
# records that hold a value, each starting with its row and column as two u16.
_BOUNDSHEET, _EOF, _MERGEDCELLS = 0x0085, 0x000A, 0x00E5
_MULRK = 0x00BD  # row, first column, values, last column
_VALUED = {0x00FD, 0x0204, 0x0203, 0x027E, 0x0006, 0x0205, 0x00D6, _MULRK}  # LABELSST, LABEL, NUMBER, RK, FORMULA, BOOLERR, RSTRING


def _first_sheet_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """(type, data) of each record of the first sheet's substream in an Excel 97-2003 workbook."""
    import olefile

    with olefile.OleFileIO(str(path)) as ole:
        stream = ole.openstream("Workbook" if ole.exists("Workbook") else "Book").read()

    def records(at: int) -> Iterator[tuple[int, bytes]]:
        while at + 4 <= len(stream):
            kind, size = struct.unpack_from("<HH", stream, at)
            yield kind, stream[at + 4 : at + 4 + size]
            at += 4 + size

    for kind, data in records(0):
        if kind == _BOUNDSHEET:  # the first: fastexcel's sheet 0
            (start,) = struct.unpack_from("<I", data, 0)
            for record in records(start):
                yield record
                if record[0] == _EOF:
                    return
            return


def in_xls(path: Path, width: int) -> tuple[list[Merge], int | None]:
    """The first sheet's merges within one column and over more than one row, and the first
    column holding a value when the columns holding values span `width` (else None: nothing is
    placed), of an Excel 97-2003 workbook; ([], None) when its records cannot be read."""
    merges: list[Merge] = []
    columns: list[int] = []
    try:
        for kind, data in _first_sheet_records(path):
            if kind == _MERGEDCELLS:
                (count,) = struct.unpack_from("<H", data, 0)
                for top, bottom, left, right in struct.iter_unpack("<HHHH", data[2 : 2 + 8 * count]):
                    if left == right and bottom > top:
                        merges.append((left, top, bottom))
            elif kind in _VALUED and len(data) >= 4:
                columns.append(struct.unpack_from("<H", data, 2)[0])
                if kind == _MULRK:
                    columns.append(struct.unpack_from("<H", data, len(data) - 2)[0])
    except Exception:  # noqa: BLE001 - olefile's and struct's errors alike: a workbook we cannot place
        return [], None
    if not merges or not columns or max(columns) - min(columns) + 1 != width:
        return merges, None
    return merges, min(columns)


def filled_down(body: pl.DataFrame, merges: list[Merge], first_row: int, first_col: int) -> pl.DataFrame:
    """`body` (String columns; its row 0 is the sheet's row `first_row`, its column 0 the sheet's
    column `first_col`, both 0-based) with each merge's top value in the empty cells below it."""
    by_column: dict[int, list[tuple[int, int]]] = {}
    for column, top, bottom in merges:
        at, start, end = column - first_col, top - first_row, bottom - first_row
        if 0 <= at < body.width and end > 0 and start < body.height:
            by_column.setdefault(at, []).append((start, min(end, body.height - 1)))
    if not by_column:
        return body
    columns = body.get_columns()
    for at, spans in by_column.items():
        source = np.arange(body.height)
        for start, end in spans:
            if start >= 0:
                source[start + 1 : end + 1] = start
        column = columns[at]
        columns[at] = column.fill_null(column.gather(source))
    return pl.DataFrame(columns)
