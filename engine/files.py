"""Bytes on disk → a table of strings: CSV (UTF-8, UTF-8 with BOM, GB18030/GBK), XLSX and XLS
(the first sheet) and Parquet.

Every column of the result is String and named by its header, trimmed. Nothing is typed here:
an ID read as a number is already damaged, so CSV cells are never inferred, and XLSX or Parquet
numbers are written back as the digits a spreadsheet shows (no trailing ".0"; integers of 16+
digits keep Excel's 15 significant digits, so a damaged ID ends in 000 and `engine.ids` can say
so). Excel date cells and Parquet dates become `YYYY-MM-DD`. (`read_located(path, numbers=True)`
keeps a Parquet file's integer and float columns as they are: engine.loaders turns those that are
not amounts to text itself, and reads amounts without a round trip through text.)

The header is the first row that is not blank, unless a title sits above it: spreadsheets
kept by hand often open with one ("云龙区2026年6月城乡低保名册", "填报单位：…"), or with a group
row over a two-row header. Given `is_header` (engine.headers.header_test: does a row name one of
the dataset's columns?), a first row that fails it is passed over for the first of the next
rows that passes, and the rows above are not data. When none does, the first row stays the
header, and engine.headers says what is wrong with it.

What systems export as `.xls` is often no Excel 97-2003 workbook: a workbook of today (read as
XLSX), tab-separated text (read as CSV), or an HTML or XML table (refused, saying what to do).

File-level problems raise `FileUnreadable` (missing, empty, undecodable, not a table, no sheet)
or `SchemaError` (duplicated header); rows are judged later, by `engine.loaders`.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from engine import merged
from engine.errors import FileUnreadable, Problem, SchemaError, TooLarge
from schemas import SOURCES

__all__ = ["SUFFIXES", "HeaderTest", "TITLE_ROWS", "read_table", "read_located", "csv_header", "readable_suffix",
           "find_sources", "to_text", "check_xlsx_size", "sheet_with_header", "XLSX_MAX_EXPANDED", "XLSX_MAX_RATIO"]

SUFFIXES = (".csv", ".xlsx", ".xls", ".parquet")
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a compound file: what an Excel 97-2003 workbook is
_BOM_UTF8 = b"\xef\xbb\xbf"
_INT64_SAFE = 9.2e18  # beyond this a float cannot be written through Int64
# An XLSX is a zip of XML: a few MB can expand to many GB (a "zip bomb"). A real roll of a
# million rows expands to well under 1 GB, and sheet XML compresses about 10:1, rarely 50:1.
XLSX_MAX_EXPANDED = 1 << 30
XLSX_MAX_RATIO = 200
# Does a row name the dataset's columns? (engine.headers.header_test)
HeaderTest = Callable[[Sequence[object]], bool]
TITLE_ROWS = 10  # rows from the first that is not blank in which the header is looked for


def _unreadable(path: Path, message: str, row: int | None = None) -> FileUnreadable:
    return FileUnreadable(
        f"{path}: 文件无法使用 (file cannot be used)", [Problem(path.name, message, row=row)]
    )


def read_table(path: Path, is_header: HeaderTest | None = None) -> pl.DataFrame:
    """The file's table, every column String, headers trimmed; see the module docstring."""
    return read_located(path, is_header=is_header)[0]


def read_located(path: Path, numbers: bool = False, is_header: HeaderTest | None = None) -> tuple[pl.DataFrame, int]:
    """`read_table`, plus the spreadsheet row number of the first record (2 unless blank or
    title rows precede the header), so that loaders can number rows as the user sees them.
    `numbers`: a Parquet file's integer and float columns are kept as they are (`to_text`).
    `is_header`: see the module docstring (a Parquet file's header is its schema)."""
    path = Path(path)
    suffix = readable_suffix(path)
    if suffix == ".parquet":
        return _read_parquet(path, numbers)
    return {".csv": _read_csv, ".xlsx": _read_xlsx, ".xls": _read_xls}[suffix](path, is_header)


def _header_at(rows: Sequence[Sequence[object]], is_header: HeaderTest | None) -> int:
    """Which of a file's first rows that are not blank (at most TITLE_ROWS) is its header."""
    if is_header is None:
        return 0
    return next((at for at, row in enumerate(rows[:TITLE_ROWS]) if is_header(row)), 0)


def readable_suffix(path: Path) -> str:
    """The file's suffix, lower case, once it is known to be a non-empty file of a kind read here
    (else FileUnreadable)."""
    if not path.is_file():
        what = "不是文件 (not a file)" if path.exists() else "文件不存在 (file not found)"
        raise _unreadable(path, what)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _unreadable(
            path,
            f"不支持的文件类型“{path.suffix}”，请另存为 CSV、XLSX 或 Parquet "
            f"(unsupported file type {path.suffix!r}: use .csv, .xlsx, .xls or .parquet)",
        )
    if path.stat().st_size == 0:
        raise _unreadable(path, "文件为空（0 字节）(file is empty: 0 bytes)")
    return suffix


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# ---- headers --------------------------------------------------------------------------------


def _letters(position: int) -> str:
    """Excel column letters of a 1-based position (1 → A, 27 → AA)."""
    letters = ""
    while position:
        position, rest = divmod(position - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _check_duplicates(path: Path, names: list[str]) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    for position, name in enumerate(names, 1):
        if name:
            seen[name].append(position)
    problems = [
        Problem(
            path.name,
            f"表头“{name}”重复，出现在第 {'、'.join(map(str, where))} 列 "
            f"(duplicated header {name!r} in columns "
            f"{', '.join(f'{p} ({_letters(p)})' for p in where)})",
            column=name,
        )
        for name, where in seen.items()
        if len(where) > 1
    ]
    if problems:
        raise SchemaError(f"{path}: 表头重复 (duplicated headers)", problems)


def _apply_header(path: Path, df: pl.DataFrame, header: list[object]) -> pl.DataFrame:
    """Name df's columns by position after the header as read by us, not by the reader library,
    which renames duplicates silently. Duplicates raise; blank headers over empty columns go."""
    names = [("" if h is None else str(h)).strip() for h in header]
    _check_duplicates(path, names)
    # Blank headers: trailing delimiters, formatted-but-empty Excel columns; kept if they hold data.
    df = df.rename(dict(zip(df.columns, [f"\x00{i}" for i in range(df.width)], strict=True)))
    keep: dict[str, str] = {}
    for i, name in enumerate(names):
        column = df.get_column(f"\x00{i}")
        if name:
            keep[column.name] = name
        elif column.dtype != pl.String:
            if column.null_count() < column.len():  # numbers kept as they are (`to_text`)
                keep[column.name] = f"column_{i + 1}"
        elif column.str.strip_chars().str.len_bytes().fill_null(0).sum() > 0:
            keep[column.name] = f"column_{i + 1}"
    return df.select(list(keep)).rename(keep)


# ---- CSV ------------------------------------------------------------------------------------


def _decode(path: Path, data: bytes) -> tuple[str, bytes]:
    """The text and its UTF-8 bytes, trying UTF-8 (with or without BOM) then GB18030."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" export
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise _unreadable(path, f"UTF-16 文件无法解码 (cannot decode UTF-16: {error})") from None
        return text, text.encode("utf-8")
    body = data[3:] if data.startswith(_BOM_UTF8) else data
    try:
        return body.decode("utf-8"), body
    except UnicodeDecodeError as utf8_error:
        try:
            text = body.decode("gb18030")
            return text, text.encode("utf-8")
        except UnicodeDecodeError as gb_error:
            # The encoding that got further is the one the file was meant to be in.
            offset = max(utf8_error.start, gb_error.start) + len(data) - len(body)
    raise _undecodable(path, data[offset], offset, data.count(b"\n", 0, offset) + 1, ("UTF-8", "GB18030"))


def _undecodable(path: Path, byte: int, offset: int, line: int, encodings: tuple[str, ...]) -> FileUnreadable:
    zh, en = ((f"既不是 {encodings[0]} 也不是 {encodings[1]}", f"neither {encodings[0]} nor {encodings[1]}")
              if len(encodings) == 2 else (f"不是 {encodings[0]}", f"not {encodings[0]}"))
    return _unreadable(
        path,
        f"无法识别文件编码：第 {line} 行（字节偏移 {offset}）的字节 0x{byte:02X} "
        f"{zh}，请另存为 UTF-8 (cannot decode byte 0x{byte:02X} "
        f"at line {line}, byte offset {offset}: {en}; save as UTF-8)",
        row=line,
    )


def _read_csv(path: Path, is_header: HeaderTest | None = None) -> tuple[pl.DataFrame, int]:
    data = path.read_bytes()
    text, utf8 = _decode(path, data)
    blank, separator, header = csv_header(path, text[: 1 << 16], is_header)
    titled = any(text[: 1 << 16].splitlines()[:blank])  # a title above the header, not only blank lines
    try:
        df = pl.read_csv(
            utf8, infer_schema=False, separator=separator, has_header=True, raise_if_empty=False,
            skip_lines=blank if titled else 0,
        )
    except pl.exceptions.PolarsError:
        try:  # polars refuses a quote inside an unquoted field (张"三); Arrow reads it as text
            df = _read_csv_arrow(utf8, separator, len(header), blank + 1)
        except Exception as error:  # noqa: BLE001 - any failure here means a malformed file
            raise _csv_error(path, text, separator, len(header), error) from None
    if df.width != len(header):
        raise _unreadable(path, "表头无法解析 (the header row could not be parsed)", row=blank + 1)
    return _apply_header(path, df, header), blank + 2


def csv_header(path: Path, head: str, is_header: HeaderTest | None = None) -> tuple[int, str, list[str]]:
    """From the file's first lines: how many lines precede the header (blank ones, and a title:
    see the module docstring), the separator, and the header's fields."""
    lines = head.splitlines()
    filled = [at for at, line in enumerate(lines) if line][:TITLE_ROWS]
    if not filled:
        raise _unreadable(path, "文件没有表头 (file has no header row)")
    rows = [next(csv.reader([lines[at]], delimiter=_separator(lines[at])), []) for at in filled]
    blank = filled[_header_at(rows, is_header)]
    header_line = lines[blank]
    separator = _separator(header_line)
    header = next(csv.reader(io.StringIO("\n".join(lines[blank:])), delimiter=separator))
    return blank, separator, header


def _separator(header_line: str) -> str:
    # Tab-separated text often arrives named .csv (Excel's "Unicode text", database dumps).
    return "\t" if "," not in header_line and "\t" in header_line else ","


def _read_csv_arrow(utf8: bytes, separator: str, width: int, skip: int) -> pl.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pc

    names = [f"c{i}" for i in range(width)]
    table = pc.read_csv(
        pa.py_buffer(utf8),
        read_options=pc.ReadOptions(column_names=names, skip_rows=skip),
        parse_options=pc.ParseOptions(delimiter=separator, ignore_empty_lines=False),
        convert_options=pc.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=[""],  # Arrow's defaults would turn a cell "NA" or "NULL" into null
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    return pl.from_arrow(table)  # type: ignore[return-value]


def _csv_error(path: Path, text: str, separator: str, width: int, error: Exception) -> Exception:
    """Locate a row polars refused (usually one with more fields than the header): slow, but
    only on this error path."""
    rows = csv.reader(io.StringIO(text), delimiter=separator)
    for row in rows:
        if len(row) > width:
            return _unreadable(
                path,
                f"该行有 {len(row)} 个字段，多于表头的 {width} 个 "
                f"(row has {len(row)} fields, the header has {width})",
                row=rows.line_num,
            )
    return _unreadable(path, f"不是有效的 CSV 文件 (not a readable CSV file: {_first_line(error)})")


# ---- XLSX -----------------------------------------------------------------------------------


def _read_xls(path: Path, is_header: HeaderTest | None = None) -> tuple[pl.DataFrame, int]:
    """An `.xls` file, by what it holds (see the module docstring)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if head.startswith(_OLE2):
        return _read_xlsx(path, is_header, legacy=True)
    if head.startswith(b"PK\x03\x04"):
        return _read_xlsx(path, is_header)
    if re.search(rb"<\s*(html|table|\?xml|workbook)\b", head.lower()):
        raise _unreadable(
            path,
            "这个 .xls 文件实际是网页或 XML 表格，不是 Excel 工作簿，请用 Excel 打开后另存为 .xlsx "
            "(this .xls is a web page or an XML table, not an Excel workbook: open it in Excel and save it as .xlsx)",
        )
    return _read_csv(path, is_header)


def _read_xlsx(path: Path, is_header: HeaderTest | None = None, legacy: bool = False) -> tuple[pl.DataFrame, int]:
    """The first sheet of an XLSX workbook (`legacy`: of an Excel 97-2003 one, whose cells
    merged down a column are not filled: see engine.merged)."""
    import fastexcel

    if not legacy and not zipfile.is_zipfile(path):
        raise _unreadable(
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
            raise _unreadable(path, "工作簿中没有工作表 (workbook has no sheet)")
        # No header row and skip_rows=0: row i of the result is spreadsheet row i + 1, and the
        # header is read by us (fastexcel would rename duplicated headers).
        cells = reader.load_sheet(0, header_row=None, skip_rows=0, dtypes="string").to_polars()
    except FileUnreadable:
        raise
    except Exception as error:  # fastexcel raises its own error types for every failure
        kind = "XLS" if legacy else "XLSX"
        message = f"无法读取 {kind} 文件 (cannot read the {kind} workbook: {_first_line(error)})"
        raise _unreadable(path, message) from None
    filled = cells.select(pl.any_horizontal(pl.all().is_not_null())).to_series()
    if cells.width == 0 or not filled.any():
        if is_header is not None:
            _data_elsewhere(path, is_header)
        raise _unreadable(path, "第一个工作表是空的 (the first sheet is empty)")
    candidates = filled.arg_true().head(TITLE_ROWS).to_list()
    top = candidates[_header_at([cells.row(at) for at in candidates], is_header)]
    if is_header is not None and not is_header(cells.row(top)):
        _data_elsewhere(path, is_header)
    header = list(cells.row(top))
    body = cells.slice(top + 1)
    body = _excel_digits(reader, body, top + 1)
    # Date cells come as "YYYY-MM-DD 00:00:00"; the contract's dates have no time.
    body = body.with_columns(pl.all().str.replace(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}) 00:00:00$", "$1"))
    merges = [] if legacy else merged.down_merges(path)  # a household's 家庭编号 merged over its members' rows
    if merges and (span := merged.valued_columns(path, cells.width)):
        body = merged.filled_down(body, merges, top + 1, span[0])
    return _apply_header(path, body, header), top + 2


def _data_elsewhere(path: Path, is_header: HeaderTest) -> None:
    """Raise SchemaError naming the sheet the data is on, when the first sheet has no header of
    the dataset and a later one does: the first is a template's instructions (填表说明), or empty."""
    if found := sheet_with_header(path, is_header):
        position, name = found
        raise SchemaError(f"{path}: 数据不在第一个工作表 (the data is not on the first sheet)", [Problem(
            path.name, f"只读取第一个工作表；数据在第 {position} 个工作表“{name}”，请把它移到最前面 "
                       f"(only the first sheet is read; the data is on sheet {position}, {name!r}: move it first)")])


def sheet_with_header(path: Path, is_header: HeaderTest) -> tuple[int, str] | None:
    """(position from 1, name) of the first sheet after the first of a workbook whose first rows
    hold a header `is_header` takes, or None: only the first sheet is read (the contract), and
    this says where the data is when that sheet is not it."""
    import fastexcel

    try:
        reader = fastexcel.read_excel(path.read_bytes())
        for position, name in enumerate(reader.sheet_names[1:], 2):
            rows = reader.load_sheet(position - 1, header_row=None, skip_rows=0, n_rows=TITLE_ROWS * 2,
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
        .then(_excel_15(pl.col(n).cast(pl.Int64, strict=False)).fill_null(pl.col(n)))
        .otherwise(pl.col(n))
        .alias(n)
        for n in suspects
    )


def _excel_15(whole: pl.Expr) -> pl.Expr:
    """A non-negative Int64 of 16+ digits rounded to 15 significant digits, as text."""
    digits = whole.cast(pl.String).str.len_chars()
    factor = pl.lit(10, pl.Int64).pow((digits - 15).clip(0).cast(pl.UInt32))
    return ((whole + factor // 2) // factor * factor).cast(pl.String)


# ---- Parquet and in-memory frames -----------------------------------------------------------


def _read_parquet(path: Path, numbers: bool = False) -> tuple[pl.DataFrame, int]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        _check_duplicates(path, [n.strip() for n in names])
        df = pl.read_parquet(path)
    except SchemaError:
        raise
    except Exception as error:  # pyarrow and polars each have their own error types
        message = f"无法读取 Parquet 文件 (cannot read the Parquet file: {_first_line(error)})"
        raise _unreadable(path, message) from None
    try:
        text = to_text(df, numbers)
    except TypeError as error:
        raise _unreadable(path, str(error)) from None
    return _apply_header(path, text, names), 2


def _float_text(value: pl.Expr) -> pl.Expr:
    """Floats as a spreadsheet shows them: whole numbers without ".0", and 16+ digit whole
    numbers at Excel's 15 significant digits (see `_excel_digits`)."""
    whole = value.is_finite() & (value == value.floor()) & (value.abs() < _INT64_SAFE)
    as_int = pl.when(whole).then(value.cast(pl.Int64))
    return (
        pl.when(whole & (value.abs() < 1e15)).then(as_int.cast(pl.String))
        .when(whole & (value > 0)).then(_excel_15(as_int))
        .otherwise(value.cast(pl.String))
    )


def to_text(df: pl.DataFrame, numbers: bool = False) -> pl.DataFrame:
    """Every column of df as String: dates as YYYY-MM-DD, datetimes too when at midnight,
    floats per `_float_text`; with `numbers`, integer and float columns stay as they are. Nested
    or binary columns raise TypeError (not a flat table)."""
    exprs = []
    for name, dtype in df.schema.items():
        column = pl.col(name)
        if dtype == pl.String or (numbers and (dtype.is_integer() or dtype.is_float())):
            exprs.append(column)
        elif dtype == pl.Date:
            exprs.append(column.dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            midnight = column.dt.time() == pl.time(0)
            exprs.append(
                pl.when(midnight).then(column.dt.strftime("%Y-%m-%d"))
                .otherwise(column.dt.strftime("%Y-%m-%d %H:%M:%S"))
            )
        elif dtype.is_float():
            exprs.append(_float_text(column))
        elif dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object:
            raise TypeError(
                f"列“{name}”不是简单值（{dtype}），无法作为表格读取 "
                f"(column {name!r} holds {dtype} values, not plain cells)"
            )
        else:
            exprs.append(column.cast(pl.String))
    return df.select(e.alias(n) for e, n in zip(exprs, df.columns, strict=True))


# ---- source directory -----------------------------------------------------------------------


def find_sources(directory: Path) -> dict[str, Path]:
    """`<key>.<csv|xlsx|xls|parquet>` files of the source keys in `directory` (names compared
    case-insensitively); other files are ignored. Two files for one key raise SchemaError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise _unreadable(directory, "数据源目录不存在 (sources directory not found)")
    found: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(directory.iterdir()):
        key = path.stem.lower()
        if path.is_file() and key in SOURCES and path.suffix.lower() in SUFFIXES:
            found[key].append(path)
    problems = [
        Problem(
            directory.name,
            f"数据源“{key}”有多个文件：{', '.join(p.name for p in paths)}，请只保留一个 "
            f"(several files for source {key!r}: keep one)",
        )
        for key, paths in found.items()
        if len(paths) > 1
    ]
    if problems:
        raise SchemaError(f"{directory}: 数据源文件重复 (duplicated source files)", problems)
    return {key: paths[0] for key, paths in found.items()}
