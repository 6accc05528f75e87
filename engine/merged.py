"""Cells merged down a column of an XLSX sheet, as the reader sees them: one value for every row.

    merges = down_merges(path)                 # [(column, first_row, last_row)], 0-based
    first, last = valued_columns(path, width)  # where fastexcel's table starts and ends
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
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["Merge", "column_index", "down_merges", "valued_columns", "filled_down"]

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
