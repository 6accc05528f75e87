"""An Excel workbook's first sheet → a table of strings, as engine.files gives every table.

    workbooks.read_xlsx(path, is_header)   # XLSX (and Excel 97-2003 with legacy=True)
    workbooks.read_xls(path, is_header)    # whatever a system exported under the name .xls
    workbooks.check_xlsx_size(path)        # a zip bomb refused before anything is decompressed

Cells are read as Excel shows them: a number of 16+ digits (an ID typed as a number) keeps
Excel's 15 significant digits, so that engine.ids can say Excel destroyed it; a date cell is
YYYY-MM-DD; a cell merged down a column (engine.merged) is every covered row's value. The
header is found as engine.files finds it (below a title); when the first sheet holds no header
of the dataset and a later sheet does, the error names that sheet (only the first is read).

What systems export as `.xls` is often no Excel 97-2003 workbook: a workbook of today (read as
XLSX), tab-separated text (read as CSV), or an HTML or XML table (refused, saying what to do).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import polars as pl

from engine import files, merged
from engine.errors import FileUnreadable, Problem, SchemaError, TooLarge

__all__ = ["read_xlsx", "read_xls", "check_xlsx_size", "sheet_with_header", "XLSX_MAX_EXPANDED", "XLSX_MAX_RATIO"]

# An XLSX is a zip of XML: a few MB can expand to many GB (a "zip bomb"). A real roll of a
# million rows expands to well under 1 GB, and sheet XML compresses about 10:1, rarely 50:1.
XLSX_MAX_EXPANDED = 1 << 30
XLSX_MAX_RATIO = 200
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a compound file: what an Excel 97-2003 workbook is


def read_xls(path: Path, is_header: files.HeaderTest | None = None) -> tuple[pl.DataFrame, int]:
    """An `.xls` file, by what it holds (see the module docstring)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if head.startswith(_OLE2):
        return read_xlsx(path, is_header, legacy=True)
    if head.startswith(b"PK\x03\x04"):
        return read_xlsx(path, is_header)
    if re.search(rb"<\s*(html|table|\?xml|workbook)\b", head.lower()):
        raise files.unreadable(
            path,
            "这个 .xls 文件实际是网页或 XML 表格，不是 Excel 工作簿，请用 Excel 打开后另存为 .xlsx "
            "(this .xls is a web page or an XML table, not an Excel workbook: open it in Excel and save it as .xlsx)",
        )
    return files.read_csv(path, is_header)


def read_xlsx(path: Path, is_header: files.HeaderTest | None = None, legacy: bool = False) -> tuple[pl.DataFrame, int]:
    """The first sheet of an XLSX workbook (`legacy`: of an Excel 97-2003 one)."""
    import fastexcel

    if not legacy and not zipfile.is_zipfile(path):
        raise files.unreadable(
            path,
            "不是 XLSX 文件（可能是旧版 .xls 或改了扩展名），请用 Excel 另存为 .xlsx "
            "(not an XLSX workbook: re-save it as .xlsx)",
        )
    if not legacy:
        check_xlsx_size(path)
    try:
        # By its bytes when the name says .xls but the content is XLSX: fastexcel goes by the name.
        source = path.read_bytes() if not legacy and path.suffix.lower() != ".xlsx" else path
        reader = fastexcel.read_excel(source)
        if not reader.sheet_names:
            raise files.unreadable(path, "工作簿中没有工作表 (workbook has no sheet)")
        # No header row and skip_rows=0: row i of the result is spreadsheet row i + 1, and the
        # header is read by us (fastexcel would rename duplicated headers).
        cells = reader.load_sheet(0, header_row=None, skip_rows=0, dtypes="string").to_polars()
    except FileUnreadable:
        raise
    except Exception as error:  # fastexcel raises its own error types for every failure
        kind = "XLS" if legacy else "XLSX"
        message = f"无法读取 {kind} 文件 (cannot read the {kind} workbook: {files.first_line(error)})"
        raise files.unreadable(path, message) from None
    filled = cells.select(pl.any_horizontal(pl.all().is_not_null())).to_series()
    if cells.width == 0 or not filled.any():
        if is_header is not None:
            _data_elsewhere(path, is_header)
        raise files.unreadable(path, "第一个工作表是空的 (the first sheet is empty)")
    candidates = filled.arg_true().head(files.TITLE_ROWS).to_list()
    top = candidates[files.header_at([cells.row(at) for at in candidates], is_header)]
    if is_header is not None and not is_header(cells.row(top)):
        _data_elsewhere(path, is_header)
    header = list(cells.row(top))
    body = cells.slice(top + 1)
    body = _excel_digits(reader, body, top + 1)
    # Date cells come as "YYYY-MM-DD 00:00:00"; the contract's dates have no time.
    body = body.with_columns(pl.all().str.replace(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}) 00:00:00$", "$1"))
    # A household's 家庭编号 merged over its members' rows: every member's.
    if legacy:
        merges, start = merged.in_xls(path, cells.width)
    else:
        merges = merged.down_merges(path)
        start = span[0] if merges and (span := merged.valued_columns(path, cells.width)) else None
    if merges and start is not None:
        body = merged.filled_down(body, merges, top + 1, start)
    return files.apply_header(path, body, header), top + 2


def _data_elsewhere(path: Path, is_header: files.HeaderTest) -> None:
    """Raise SchemaError naming the sheet the data is on, when the first sheet has no header of
    the dataset and a later one does: the first is a template's instructions (填表说明), or empty."""
    if found := sheet_with_header(path, is_header):
        position, name = found
        raise SchemaError(f"{path}: 数据不在第一个工作表 (the data is not on the first sheet)", [Problem(
            path.name, f"只读取第一个工作表；数据在第 {position} 个工作表“{name}”，请把它移到最前面 "
                       f"(only the first sheet is read; the data is on sheet {position}, {name!r}: move it first)")])


def sheet_with_header(path: Path, is_header: files.HeaderTest) -> tuple[int, str] | None:
    """(position from 1, name) of the first sheet after the first of a workbook whose first rows
    hold a header `is_header` takes, or None: only the first sheet is read (the contract), and
    this says where the data is when that sheet is not it."""
    import fastexcel

    try:
        reader = fastexcel.read_excel(path.read_bytes())
        for position, name in enumerate(reader.sheet_names[1:], 2):
            rows = reader.load_sheet(position - 1, header_row=None, skip_rows=0, n_rows=files.TITLE_ROWS * 2,
                                     dtypes="string").to_polars().rows()
            if any(is_header(row) for row in rows):
                return position, name
    except Exception:  # noqa: BLE001 - only a hint: an unreadable sheet gives none
        return None
    return None


def check_xlsx_size(path: Path, max_expanded: int = XLSX_MAX_EXPANDED, max_ratio: float = XLSX_MAX_RATIO) -> None:
    """Refuse an XLSX whose parts would expand beyond `max_expanded` bytes, or any part of which
    expands more than `max_ratio` times, before anything is decompressed (the sizes are in the
    zip's directory)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        return  # not a zip at all: the reader says so in its own words
    expanded = sum(p.file_size for p in parts)
    worst = max((p.file_size / max(p.compress_size, 1) for p in parts), default=0.0)
    if expanded > max_expanded or worst > max_ratio:
        raise TooLarge(
            f"{path.name}: XLSX 解压后过大，拒绝读取 (the workbook expands to {expanded / 2**20:,.0f} MiB, "
            f"{worst:,.0f}× its compressed size; the limits are {max_expanded / 2**20:,.0f} MiB and {max_ratio:g}×)",
            [Problem(path.name, f"XLSX expands to {expanded / 2**20:,.0f} MiB (limit {max_expanded / 2**20:,.0f} MiB)")],
        )


def _excel_digits(reader: object, body: pl.DataFrame, skip: int) -> pl.DataFrame:
    """Numeric cells of 16+ digits to Excel's 15 significant digits.

    fastexcel writes a whole number cell as the double's exact digits (3.20303199001011E+17 →
    320303199001011008), but Excel shows and keeps 320303199001011000, which is what a
    caseworker sees and what `ids.excel_mangled` recognizes. A text cell with the same digits
    must stay untouched, so numeric cells are told apart by loading the sheet once more as
    Boolean: fastexcel gives a value there only for numeric (and boolean) cells.
    """
    long_digit = r"^[0-9]{16,19}$"
    suspects = [n for n in body.columns if body.get_column(n).str.contains(long_digit).any()]
    if not suspects:
        return body
    flags = reader.load_sheet(  # type: ignore[attr-defined]
        0, header_row=None, skip_rows=0, dtypes="boolean"
    ).to_polars().slice(skip)
    if flags.shape != body.shape:  # never seen; keep the text rather than guess
        return body
    numeric = dict(zip(body.columns, flags.columns, strict=True))
    return body.with_columns(
        pl.when(flags.get_column(numeric[n]).is_not_null() & pl.col(n).str.contains(long_digit))
        .then(files.excel_15(pl.col(n).cast(pl.Int64, strict=False)).fill_null(pl.col(n)))
        .otherwise(pl.col(n))
        .alias(n)
        for n in suspects
    )
