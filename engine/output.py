"""Flags and rejects to disk: Parquet, CSV or XLSX, chosen by the output file's extension.

    write_flags(flags, path)      .parquet / .csv: the contract's columns (CONTRACTS §4), data as is
                                  .xlsx: the same data first (sheet `flags`), then for people
                                  预警明细 + 汇总
    write_rejects(rejects, path)  `<out stem>.rejects.csv` beside the output
    summary(flags)                flags, households and overpayment per rule and township

Two audiences, two treatments:

* Parquet and CSV are data for programs. Columns are the canonical English names in the
  contract's order (extra columns follow), values are exactly what the engine produced. CSV is
  UTF-8 *with* a BOM, because Excel in a Chinese locale otherwise decodes it as GBK and the
  names turn into mojibake; every CSV reader we know skips the BOM. CSV values are not altered
  against formula injection: that would change the data for the programs reading it, and the
  cells come from the input files, which already hold the same text.
* XLSX serves both. The contract names XLSX as a flags format like the other two, so its first
  sheet, `flags`, is that data: the canonical headers in the contract's order, the values as
  the engine made them (codes, not labels), IDs as text cells (an ID written as a number loses
  its last three digits in Excel). A program reading the first sheet gets what the CSV holds.
  The sheets after it are for caseworkers: 预警明细 with Chinese headers and labels, where
  every string cell that Excel or WPS could take for a formula — one starting with
  ``= + - @``, a tab or a carriage return — gets a leading single quote ``'`` (stored and
  visible: it survives copy-paste and re-export to CSV, which a hidden "quote prefix" cell
  style would not), and 汇总. Pages and reports made for people only leave out `flags`.
  A cell holds at most 32,767 characters: evidence longer than that is shortened to the
  records that fit, still JSON, with `records_total` saying how many there were.

Every file is written to a temporary name beside the target and renamed over it, so a failed
run never leaves half a file and a file held open by Excel produces a clear message.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import polars as pl

from schemas import FLAGS, SOURCES

from .errors import CrosscheckError

__all__ = [
    "FORMATS",
    "SUMMARY_LEVELS",
    "check_format",
    "write_flags",
    "write_rejects",
    "rejects_path",
    "summary",
    "neutralise",
    "fitted_evidence",
    "DATA_SHEET",
]

FORMATS = (".parquet", ".csv", ".xlsx")
CONTRACT_COLUMNS: tuple[str, ...] = FLAGS.names

# summary_by -> how many leading digits of region_code make the group. A township (乡镇/街道)
# is the first 9 digits of the 12-digit statistical code; a shorter code is used whole.
SUMMARY_LEVELS = {"county": 6, "township": 9, "village": 12}
_SUMMARY_ZH = {"county": "县(区)", "township": "乡镇(街道)", "village": "村(居)"}

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XLSX_MAX_ROWS = 1_048_576
_XLSX_MAX_CHARS = 32_767  # Excel's limit for one cell
_TRUNCATED = "…（已截断，完整内容见 CSV/Parquet 输出）"
DATA_SHEET = "flags"

_LEVEL_ZH = {"person": "个人", "household": "家庭"}
_SOURCE_ZH = {"roll": "救助对象名册", **{key: d.zh for key, d in SOURCES.items()}}


# ---- shared ---------------------------------------------------------------------------------


def check_format(path: Path) -> str:
    """The output format of `path` ('.parquet', '.csv' or '.xlsx'); anything else is refused
    before any work is done."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise CrosscheckError(
            f"cannot write {Path(path).name}: unknown output format {Path(path).suffix or '(none)'!r}; "
            f"use .parquet, .csv or .xlsx (输出文件扩展名应为 .parquet、.csv 或 .xlsx)"
        )
    return suffix


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` that replaces it when the block succeeds."""
    path = Path(path)
    temporary: Path | None = None
    try:
        # Inside the try: a directory that cannot be made or written (a read-only disk, /proc)
        # is the user's to fix, not a crash.
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(handle)
        temporary = Path(name)
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        raise CrosscheckError(
            f"cannot write {path}: {error.strerror or error} "
            f"(无法写入输出文件；如果它在 Excel/WPS 中打开，请先关闭)"
        ) from None
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def _ordered(flags: pl.DataFrame) -> pl.DataFrame:
    """The contract's columns first, in its order, then any others as they come."""
    missing = [c for c in CONTRACT_COLUMNS if c not in flags.columns]
    if missing:
        raise ValueError(f"flags frame lacks the contract's columns {missing}")
    rest = [c for c in flags.columns if c not in CONTRACT_COLUMNS]
    return flags.select(*CONTRACT_COLUMNS, *rest)


def neutralise(text: str) -> str:
    """`text` made safe to show in a spreadsheet: a leading single quote when it would start a
    formula (= + - @, tab, carriage return)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


# ---- the summary ----------------------------------------------------------------------------


def summary(flags: pl.DataFrame, by: str = "township") -> pl.DataFrame:
    """Per rule (catalogue order) and region group: flags, distinct households, overpayment.

    Columns: rule_id, rule_label_zh, <by> (default `township`: the first 9 digits of
    region_code), flags, households, overpayment (null when no flag of the group has one, so
    that "no estimate" is not shown as 0 yuan).
    """
    from .rules import CATALOGUE  # late: keeps writing files independent of the rule engine

    if by not in SUMMARY_LEVELS:
        raise CrosscheckError(f"unknown summary level {by!r}; known: {', '.join(SUMMARY_LEVELS)}")
    rank = {r.id: i for i, r in enumerate(CATALOGUE)}
    labels = {r.id: r.label_zh for r in CATALOGUE}
    frame = flags.lazy()
    if "rule_label_zh" not in flags.columns:
        frame = frame.with_columns(
            pl.col("rule_id").replace_strict(labels, default=None, return_dtype=pl.String).alias("rule_label_zh")
        )
    return (
        frame.with_columns(pl.col("region_code").str.slice(0, SUMMARY_LEVELS[by]).alias(by))
        .group_by("rule_id", by)
        .agg(
            pl.col("rule_label_zh").first(),
            pl.len().cast(pl.Int64).alias("flags"),
            pl.col("household_id").n_unique().cast(pl.Int64).alias("households"),
            pl.when(pl.col("overpayment").count() > 0)
            .then(pl.col("overpayment").sum().round(2))
            .alias("overpayment"),
        )
        .with_columns(
            pl.col("rule_id").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_rank")
        )
        .sort("_rank", "rule_id", by, nulls_last=True)
        .select("rule_id", "rule_label_zh", by, "flags", "households", pl.col("overpayment").cast(pl.Float64))
        .collect()
    )


# ---- flags ----------------------------------------------------------------------------------


def write_flags(flags: pl.DataFrame, path: Path, *, summary_by: str = "township",
                extra_sheets: Mapping[str, pl.DataFrame] | None = None, data_sheet: bool = True) -> Path:
    """Write `flags` to `path` in the format its extension names; returns the path.

    XLSX: the `flags` sheet (the contract's data; `data_sheet=False` leaves it out of a workbook
    made for people only), 预警明细 and 汇总. `extra_sheets` ({sheet name: table}) are written
    after them, with their column names as headers (give them in Chinese): the store's report
    adds its recovery list and status counts this way."""
    path = Path(path)
    suffix = check_format(path)
    flags = _ordered(flags)
    if extra_sheets and suffix != ".xlsx":
        raise CrosscheckError(f"cannot write {path.name}: extra sheets need an .xlsx output")
    with _replacing(path) as temporary:
        if suffix == ".parquet":
            flags.write_parquet(temporary)
        elif suffix == ".csv":
            flags.write_csv(temporary, include_bom=True, date_format="%Y-%m-%d")
        else:
            _write_xlsx(flags, temporary, summary_by, extra_sheets or {}, data_sheet)
    return path


def _display_width(text: str) -> int:
    """Columns a string takes in a spreadsheet: CJK and full-width characters count twice."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _xlsx_text(value: str, neutralised: bool = True) -> str:
    text = neutralise(value) if neutralised else value
    if len(text) > _XLSX_MAX_CHARS:
        text = text[: _XLSX_MAX_CHARS - len(_TRUNCATED)] + _TRUNCATED
    return text


def fitted_evidence(evidence: str, limit: int = _XLSX_MAX_CHARS) -> str:
    """Evidence JSON within `limit` characters and still JSON: as many of its records as fit,
    in order, and `records_total` (how many there were). A household with 1,500 deposit
    accounts would otherwise be cut mid-record, which no program can read back."""
    if len(evidence) <= limit:
        return evidence
    try:
        body = json.loads(evidence)
    except ValueError:
        return evidence[:limit]
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        return json.dumps({"records_total": None}, ensure_ascii=False)

    def shown(count: int) -> str:
        return json.dumps({**body, "records": records[:count], "records_total": len(records)},
                          ensure_ascii=False, separators=(",", ":"))

    fewest, most = 0, len(records)  # the most records that fit: shown(fewest) always fits
    if len(shown(0)) > limit:
        return json.dumps({"records": [], "records_total": len(records)}, separators=(",", ":"))
    while fewest < most:
        middle = (fewest + most + 1) // 2
        fewest, most = (middle, most) if len(shown(middle)) <= limit else (fewest, middle - 1)
    return shown(fewest)


def _people_columns(flags: pl.DataFrame) -> list[tuple[str, str, Mapping[str, str] | None]]:
    """(column, Chinese header, code → label) of the 预警明细 sheet, in display order."""
    columns: list[tuple[str, str, Mapping[str, str] | None]] = []
    for column in FLAGS.columns:
        labels: Mapping[str, str] | None = column.codes
        if column.name == "source":
            labels = _SOURCE_ZH
        columns.append((column.name, column.zh, labels))
        if column.name == "rule_id" and "rule_label_zh" in flags.columns:
            columns.append(("rule_label_zh", "规则名称", None))
    extras = {"level": ("核对层级", _LEVEL_ZH), "rule_label_en": ("规则名称（英文）", None)}
    for name in flags.columns:
        if name in CONTRACT_COLUMNS or name == "rule_label_zh":
            continue
        header, labels = extras.get(name, (name, None))
        columns.append((name, header, labels))
    return columns


def _label(value: str, labels: Mapping[str, str] | None) -> str:
    """A code shown with its Chinese label; a comma-joined list (sources) label by label."""
    if not labels:
        return value
    if value in labels:
        return labels[value]
    if "," in value:
        return "、".join(labels.get(part, part) for part in value.split(","))
    return value


def _write_xlsx(flags: pl.DataFrame, path: Path, summary_by: str,
                extra_sheets: Mapping[str, pl.DataFrame] | None = None, data_sheet: bool = True) -> None:
    import xlsxwriter

    if flags.height + 1 > _XLSX_MAX_ROWS:
        raise CrosscheckError(
            f"{flags.height} flags do not fit in one XLSX sheet (at most {_XLSX_MAX_ROWS - 1} rows); "
            "write .parquet or .csv instead (预警条数超过 Excel 行数上限，请输出为 .parquet 或 .csv)"
        )
    grouped = summary(flags, summary_by)  # before opening the workbook: errors leave no file
    workbook = xlsxwriter.Workbook(
        str(path),
        {
            # Rows go straight to disk: memory stays flat for large outputs.
            "constant_memory": True,
            # We call write_string/write_number explicitly; these only guard any plain write().
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "use_zip64": True,
        },
    )
    try:
        formats = {
            "header": workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True}),
            "money": workbook.add_format({"num_format": "#,##0.00"}),
            "number": workbook.add_format({"num_format": "0.##"}),
            "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
            "text": workbook.add_format({"num_format": "@"}),
            "total": workbook.add_format({"bold": True}),
            "total_money": workbook.add_format({"bold": True, "num_format": "#,##0.00"}),
        }
        if data_sheet:
            _rows_sheet(workbook.add_worksheet(DATA_SHEET), flags, _data_columns(flags), formats, people=False)
        _rows_sheet(workbook.add_worksheet("预警明细"), flags, _people_columns(flags), formats, people=True)
        _summary_sheet(workbook.add_worksheet("汇总"), grouped, summary_by, formats)
        for name, table in (extra_sheets or {}).items():
            _table_sheet(workbook.add_worksheet(name), table, formats)
    finally:
        workbook.close()


def _table_sheet(sheet, table: pl.DataFrame, formats: dict) -> None:  # type: ignore[no-untyped-def]
    """A plain table: headers as given, strings as text cells (neutralised), numbers, dates."""
    for index, name in enumerate(table.columns):
        series = table.get_column(name)
        width = _display_width(name)
        if series.dtype == pl.String and table.height:
            width = max([width, *(_display_width(v) for v in series.drop_nulls().head(2000).to_list())])
        sheet.set_column(index, index, min(max(width, 10) + 2, 60))
        sheet.write_string(0, index, name, formats["header"])
    sheet.freeze_panes(1, 0)
    if table.width:
        sheet.autofilter(0, 0, max(table.height, 1), table.width - 1)
    for row_index, row in enumerate(table.iter_rows(), start=1):
        for col, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, str):
                sheet.write_string(row_index, col, _xlsx_text(value))
            elif isinstance(value, bool):
                sheet.write_boolean(row_index, col, value)
            elif isinstance(value, int | float):
                sheet.write_number(row_index, col, value, formats["number"] if isinstance(value, int) else formats["money"])
            elif isinstance(value, datetime):
                sheet.write_datetime(row_index, col, value.replace(tzinfo=None), formats["date"])
            elif isinstance(value, date):
                sheet.write_datetime(row_index, col, value, formats["date"])
            else:
                sheet.write_string(row_index, col, _xlsx_text(str(value)))


def _data_columns(flags: pl.DataFrame) -> list[tuple[str, str, Mapping[str, str] | None]]:
    """(column, header, no labels) of the `flags` sheet: every column under its own name, in the
    contract's order (`flags` comes ordered)."""
    return [(name, name, None) for name in flags.columns]


def _rows_sheet(sheet, flags: pl.DataFrame, columns: list[tuple[str, str, Mapping[str, str] | None]],  # type: ignore[no-untyped-def]
                formats: dict, people: bool) -> None:
    """One row a flag: `people` shows labels for codes and neutralises formula-like text; the
    data sheet writes the values as they are."""
    kinds = {c.name: c.kind for c in FLAGS.columns}
    widths = []
    for name, header, labels in columns:
        width = _display_width(header)
        series = flags.get_column(name)
        if series.dtype == pl.String and flags.height:
            shown = series.drop_nulls().unique().head(2000).to_list()
            width = max([width, *(_display_width(_label(v, labels)) for v in shown)])
        elif series.dtype == pl.Date:
            width = max(width, 10)
        else:
            width = max(width, 12)
        widths.append(min(width + 2, 60))  # evidence JSON may be long: wrap it at 60
    for index, (name, header, _) in enumerate(columns):
        text_format = formats["text"] if kinds.get(name) in ("id", "region") else None
        sheet.set_column(index, index, widths[index], text_format)
        sheet.write_string(0, index, header, formats["header"])
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(flags.height, 1), len(columns) - 1)

    money = {c.name for c in FLAGS.columns if c.kind == "money"}
    names = [name for name, _, _ in columns]
    label_maps = [labels for _, _, labels in columns]
    evidence = names.index("evidence")
    for row_index, row in enumerate(flags.select(names).iter_rows(), start=1):
        for col, value in enumerate(row):
            if value is None:
                continue  # constant_memory: an unwritten cell is blank
            if col == evidence:
                sheet.write_string(row_index, col, _xlsx_text(fitted_evidence(value), people))
            elif isinstance(value, str):
                # IDs, household numbers and region codes are strings: always text cells.
                sheet.write_string(row_index, col, _xlsx_text(_label(value, label_maps[col]), people))
            elif isinstance(value, bool):
                sheet.write_boolean(row_index, col, value)
            elif isinstance(value, int | float):
                fmt = formats["money"] if names[col] in money else formats["number"]
                sheet.write_number(row_index, col, value, fmt)
            elif isinstance(value, datetime | date):
                sheet.write_datetime(row_index, col, value, formats["date"])
            else:
                sheet.write_string(row_index, col, _xlsx_text(str(value), people))


def _summary_sheet(sheet, grouped: pl.DataFrame, by: str, formats: dict) -> None:  # type: ignore[no-untyped-def]
    headers = ["规则编号", "规则名称", f"{_SUMMARY_ZH[by]}代码", "预警数", "涉及家庭数", "多发金额合计（元）"]
    widths = [max(_display_width(h), 10) + 2 for h in headers]
    if grouped.height:
        widths[0] = max(widths[0], max(len(v) for v in grouped["rule_id"].to_list()) + 2)
        widths[1] = max(widths[1], max(_display_width(v or "") for v in grouped["rule_label_zh"].to_list()) + 2)
    for index, header in enumerate(headers):
        sheet.set_column(index, index, widths[index])
        sheet.write_string(0, index, header, formats["header"])
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(grouped.height, 1), len(headers) - 1)
    row_index = 0
    for row_index, (rule_id, label, group, count, households, overpayment) in enumerate(
        grouped.iter_rows(), start=1
    ):
        sheet.write_string(row_index, 0, _xlsx_text(rule_id))
        sheet.write_string(row_index, 1, _xlsx_text(label or ""))
        sheet.write_string(row_index, 2, _xlsx_text(group or ""))  # a region code is text
        sheet.write_number(row_index, 3, count)
        sheet.write_number(row_index, 4, households)
        if overpayment is not None:
            sheet.write_number(row_index, 5, overpayment, formats["money"])
    # Totals below the filter range, so filtering the rows never hides them. Households are not
    # summed: one household can be flagged by several rules.
    total = row_index + 2
    sheet.write_string(total, 0, "合计", formats["total"])
    sheet.write_number(total, 3, int(grouped["flags"].sum()), formats["total"])
    sheet.write_number(total, 5, float(grouped["overpayment"].fill_null(0).sum()), formats["total_money"])


# ---- rejects --------------------------------------------------------------------------------


def rejects_path(out: Path) -> Path:
    """`<out stem>.rejects.csv` beside the output."""
    out = Path(out)
    return out.with_name(f"{out.stem}.rejects.csv")


def _as_rejects(frame: pl.DataFrame, file: str | None) -> pl.DataFrame:
    """One file's rejected rows as file, row, reason, then its original cells (all text)."""
    cells = [c for c in frame.columns if c not in ("file", "_row", "row", "reason")]
    # An original column that happens to be called file/row/reason keeps its cells, renamed.
    clashes = {c: f"{c} (原列)" for c in ("file",) if file is not None and c in frame.columns}
    file_expr = pl.lit(file, pl.String) if file is not None else pl.col("file").cast(pl.String)
    row = pl.col("_row") if "_row" in frame.columns else pl.col("row")
    return frame.select(
        file_expr.alias("file"),
        row.cast(pl.Int64).alias("row"),
        pl.col("reason").cast(pl.String),
        *[pl.col(c).cast(pl.String).alias(clashes.get(c, c)) for c in cells],
        *[pl.col(c).cast(pl.String).alias(n) for c, n in clashes.items()],
    )


def write_rejects(rejects: Mapping[str, pl.DataFrame] | pl.DataFrame, out: Path) -> Path | None:
    """Write the rejected rows beside the output `out` as `<out stem>.rejects.csv` (UTF-8 with
    BOM): columns file, row, reason, then the original cells of every file (union of their
    headers). `rejects` is {file label: frame with `_row`, `reason` and the cells} or one frame
    that already has a `file` column. Returns the path, or None when there is nothing to write;
    then a rejects file left by an earlier run of the same output is removed, because it no
    longer describes that output."""
    target = rejects_path(out)
    if isinstance(rejects, pl.DataFrame):
        parts = [_as_rejects(rejects, None)] if rejects.height else []
    else:
        parts = [_as_rejects(frame, str(file)) for file, frame in rejects.items() if frame.height]
    if not parts:
        target.unlink(missing_ok=True)
        return None
    combined = pl.concat(parts, how="diagonal")
    with _replacing(target) as temporary:
        combined.write_csv(temporary, include_bom=True)
    return target
