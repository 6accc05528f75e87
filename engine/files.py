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

Workbooks (XLSX, XLS, and what is exported as `.xls`) are read by engine.workbooks with this
module's helpers; CSV and Parquet here.

File-level problems raise `FileUnreadable` (missing, empty, undecodable, not a table, no sheet)
or `SchemaError` (duplicated header); rows are judged later, by `engine.loaders`.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from engine.errors import FileUnreadable, Problem, SchemaError
from schemas import SOURCES

__all__ = ["SUFFIXES", "EXTRA", "HeaderTest", "TITLE_ROWS", "read_table", "read_located", "read_csv", "csv_header",
           "readable_suffix", "find_sources", "to_text", "unreadable", "first_line", "check_duplicates", "apply_header",
           "header_at", "excel_15"]

SUFFIXES = (".csv", ".xlsx", ".xls", ".parquet")
_BOM_UTF8 = b"\xef\xbb\xbf"
_INT64_SAFE = 9.2e18  # beyond this a float cannot be written through Int64
# Does a row name the dataset's columns? (engine.headers.header_test)
HeaderTest = Callable[[Sequence[object]], bool]
TITLE_ROWS = 10  # rows from the first that is not blank in which the header is looked for
# A CSV row's fields beyond the header's, joined (files._read_ragged); engine.loaders rejects it.
EXTRA = "\x00extra fields"


def unreadable(path: Path, message: str, row: int | None = None) -> FileUnreadable:
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
    if suffix == ".csv":
        return read_csv(path, is_header)
    from engine import workbooks  # which reads with this module's helpers

    return (workbooks.read_xls if suffix == ".xls" else workbooks.read_xlsx)(path, is_header)


def header_at(rows: Sequence[Sequence[object]], is_header: HeaderTest | None) -> int:
    """Which of a file's first rows that are not blank (at most TITLE_ROWS) is its header."""
    if is_header is None:
        return 0
    return next((at for at, row in enumerate(rows[:TITLE_ROWS]) if is_header(row)), 0)


def readable_suffix(path: Path) -> str:
    """The file's suffix, lower case, once it is known to be a non-empty file of a kind read here
    (else FileUnreadable)."""
    if not path.is_file():
        what = "不是文件 (not a file)" if path.exists() else "文件不存在 (file not found)"
        raise unreadable(path, what)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise unreadable(
            path,
            f"不支持的文件类型“{path.suffix}”，请另存为 CSV、XLSX 或 Parquet "
            f"(unsupported file type {path.suffix!r}: use .csv, .xlsx, .xls or .parquet)",
        )
    if path.stat().st_size == 0:
        raise unreadable(path, "文件为空（0 字节）(file is empty: 0 bytes)")
    return suffix


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# ---- headers --------------------------------------------------------------------------------


def _letters(position: int) -> str:
    """Excel column letters of a 1-based position (1 → A, 27 → AA)."""
    letters = ""
    while position:
        position, rest = divmod(position - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def check_duplicates(path: Path, names: list[str]) -> None:
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


def apply_header(path: Path, df: pl.DataFrame, header: list[object]) -> pl.DataFrame:
    """Name df's columns by position after the header as read by us, not by the reader library,
    which renames duplicates silently. Duplicates raise; blank headers over empty columns go."""
    names = [("" if h is None else str(h)).strip() for h in header]
    check_duplicates(path, names)
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
            raise unreadable(path, f"UTF-16 文件无法解码 (cannot decode UTF-16: {error})") from None
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
    return unreadable(
        path,
        f"无法识别文件编码：第 {line} 行（字节偏移 {offset}）的字节 0x{byte:02X} "
        f"{zh}，请另存为 UTF-8 (cannot decode byte 0x{byte:02X} "
        f"at line {line}, byte offset {offset}: {en}; save as UTF-8)",
        row=line,
    )


def read_csv(path: Path, is_header: HeaderTest | None = None) -> tuple[pl.DataFrame, int]:
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
            # Usually a row with more fields than the header: that row is the problem, not the file.
            ragged = _read_ragged(text, separator, len(header), blank)
            if ragged is None:
                raise _csv_error(path, text, separator, len(header), error) from None
            df = ragged
    extra = df.get_column(EXTRA) if EXTRA in df.columns else None
    if extra is not None:
        df = df.drop(EXTRA)
    if df.width != len(header):
        raise unreadable(path, "表头无法解析 (the header row could not be parsed)", row=blank + 1)
    df = apply_header(path, df, header)
    return (df if extra is None else df.with_columns(extra)), blank + 2


def csv_header(path: Path, head: str, is_header: HeaderTest | None = None) -> tuple[int, str, list[str]]:
    """From the file's first lines: how many lines precede the header (blank ones, and a title:
    see the module docstring), the separator, and the header's fields."""
    lines = head.splitlines()
    filled = [at for at, line in enumerate(lines) if line][:TITLE_ROWS]
    if not filled:
        raise unreadable(path, "文件没有表头 (file has no header row)")
    rows = [next(csv.reader([lines[at]], delimiter=_separator(lines[at])), []) for at in filled]
    blank = filled[header_at(rows, is_header)]
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


def _read_ragged(text: str, separator: str, width: int, blank: int) -> pl.DataFrame | None:
    """The records after the header when some have more fields than it (slow: only on the
    error path). Extra fields that are all empty (a spreadsheet's trailing commas) are dropped;
    a row with more in them keeps its first `width` cells and the rest, joined, in the EXTRA
    column, for engine.loaders to reject that row alone. None when no row is longer."""
    try:
        records = list(csv.reader(io.StringIO(text), delimiter=separator))[blank + 1:]
    except csv.Error:
        return None
    if not any(len(record) > width for record in records):
        return None
    cells: list[list[str | None]] = [[] for _ in range(width)]
    extras: list[str | None] = []
    for record in records:
        for at in range(width):
            cells[at].append(record[at] if at < len(record) and record[at] != "" else None)
        extra = record[width:]
        extras.append(separator.join(extra) if any(c.strip() for c in extra) else None)
    columns = {f"c{at}": pl.Series(values, dtype=pl.String) for at, values in enumerate(cells)}
    if any(e is not None for e in extras):
        columns[EXTRA] = pl.Series(extras, dtype=pl.String)
    return pl.DataFrame(columns)


def _csv_error(path: Path, text: str, separator: str, width: int, error: Exception) -> Exception:
    """Locate a row polars refused (usually one with more fields than the header): slow, but
    only on this error path."""
    rows = csv.reader(io.StringIO(text), delimiter=separator)
    for row in rows:
        if len(row) > width:
            return unreadable(
                path,
                f"该行有 {len(row)} 个字段，多于表头的 {width} 个 "
                f"(row has {len(row)} fields, the header has {width})",
                row=rows.line_num,
            )
    return unreadable(path, f"不是有效的 CSV 文件 (not a readable CSV file: {first_line(error)})")


# ---- Parquet and in-memory frames -----------------------------------------------------------


def _read_parquet(path: Path, numbers: bool = False) -> tuple[pl.DataFrame, int]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        check_duplicates(path, [n.strip() for n in names])
        df = pl.read_parquet(path)
    except SchemaError:
        raise
    except Exception as error:  # pyarrow and polars each have their own error types
        message = f"无法读取 Parquet 文件 (cannot read the Parquet file: {first_line(error)})"
        raise unreadable(path, message) from None
    try:
        text = to_text(df, numbers)
    except TypeError as error:
        raise unreadable(path, str(error)) from None
    return apply_header(path, text, names), 2


def excel_15(whole: pl.Expr) -> pl.Expr:
    """A non-negative Int64 of 16+ digits rounded to 15 significant digits, as text."""
    digits = whole.cast(pl.String).str.len_chars()
    factor = pl.lit(10, pl.Int64).pow((digits - 15).clip(0).cast(pl.UInt32))
    return ((whole + factor // 2) // factor * factor).cast(pl.String)


def _float_text(value: pl.Expr) -> pl.Expr:
    """Floats as a spreadsheet shows them: whole numbers without ".0", and 16+ digit whole
    numbers at Excel's 15 significant digits (see `_excel_digits`)."""
    whole = value.is_finite() & (value == value.floor()) & (value.abs() < _INT64_SAFE)
    as_int = pl.when(whole).then(value.cast(pl.Int64))
    return (
        pl.when(whole & (value.abs() < 1e15)).then(as_int.cast(pl.String))
        .when(whole & (value > 0)).then(excel_15(as_int))
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
        raise unreadable(directory, "数据源目录不存在 (sources directory not found)")
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
