"""A table of strings → a typed canonical frame, the rejected rows, and every problem found.

Headers are matched to a dataset's columns by canonical name, Chinese header or alias, ignoring
case and white space. A header that does not fit raises `SchemaError` once, listing every
problem; rows never raise. Each cell is read by its column's kind (`schemas.model.Kind`); a row
with any problem goes to `rejects` with all its problems in `reason`, the others to `frame`
(layout: docs/design.md, "Loaded frames"). Rows whose cells are all empty (blank lines, trailing
formatted Excel rows) are no records and are skipped silently.

Vectorised: every column is read as whole polars Series; Python runs per failing cell only (to
build `Problem`s and `ids.problem`'s words). At most `PROBLEM_CAP` problems are kept per column;
further failing rows of that column are summarised in one Problem (row None) that says how many
more there are. `rejects` always keeps every rejected row with its full `reason`. Warnings (roll
rows kept with an invalid ID, whether or not rejected for something else; invalid secondary IDs
such as cadre_id_number) follow the same cap.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from engine import files, ids
from engine.errors import InputError, Problem, SchemaError
from schemas import SOURCES, Column, Dataset, dataset

__all__ = ["PROBLEM_CAP", "Loaded", "load", "load_frame", "load_sources"]

PROBLEM_CAP = 1000

EMPTY = "必填项为空 (required value is empty)"
BAD_DATE = (
    "日期无效或无法识别，应为 YYYY-MM-DD、YYYY/MM/DD 或 YYYYMMDD，年份 1900–2199 "
    "(not a valid date: use YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD, year 1900-2199)"
)
BAD_MONTH = "月份无效或无法识别，应为 YYYY-MM，年份 1900–2199 (not a valid month: use YYYY-MM)"
BAD_REGION = "行政区划代码应为 6–12 位数字 (region code must be 6 to 12 digits)"
NOT_NUMBER = {"money": "金额不是有效数字 (amount is not a number)", "number": "不是有效数字 (not a number)"}
NEGATIVE = {
    "money": "金额不能为负数 (amount must not be negative)",
    "number": "数值不能为负数 (must not be negative)",
}

_TIME = r"[ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$"  # Excel datetimes, database dumps
# Thousands separators only in their places, so that a decimal comma ("1,5") is not read as 15.
_NUMBER = r"^[+-]?([0-9]+|[0-9]{1,3}(,[0-9]{3})+)(\.[0-9]*)?$|^[+-]?\.[0-9]+$"
_FIRST, _LAST = date(1900, 1, 1), date(2199, 12, 31)
# Scratch columns, never returned: error message, raw cell, invalid ID, non-blank cell.
_ERR, _RAW, _BAD, _GIVEN = "\x00err:", "\x00raw:", "\x00bad:", "\x00given:"


@dataclass
class Loaded:
    """One dataset, loaded: usable rows, rejected rows, and what was wrong."""

    key: str
    file: str
    frame: pl.DataFrame
    rejects: pl.DataFrame
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def load(path: Path, key: str, as_of: date | None = None) -> Loaded:
    """Read `path` (CSV, XLSX or Parquet) as dataset `key`."""
    df, first_row = files.read_located(Path(path))
    return load_frame(df, key, Path(path).name, as_of, first_row)


def load_sources(directory: Path, as_of: date | None = None) -> tuple[dict[str, Loaded], list[str]]:
    """Every source file in `directory`, and the source keys without a file. Every file is
    tried before unusable ones raise together (one InputError of the common subclass)."""
    found = files.find_sources(Path(directory))
    loaded: dict[str, Loaded] = {}
    errors: list[InputError] = []
    for key in (k for k in SOURCES if k in found):
        try:
            loaded[key] = load(found[key], key, as_of)
        except InputError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        kinds = {type(e) for e in errors}
        raise (kinds.pop() if len(kinds) == 1 else InputError)(
            f"{len(errors)} 个数据源文件无法使用 ({len(errors)} source files cannot be used)",
            [p for e in errors for p in e.problems],
        )
    return loaded, [key for key in SOURCES if key not in found]


# ---- headers --------------------------------------------------------------------------------


def _fold(header: str) -> str:
    return re.sub(r"\s+", "", header).casefold()


def _map_headers(df: pl.DataFrame, ds: Dataset, label: str) -> tuple[dict[str, str], list[Problem]]:
    """Header → output name (canonical, or the header itself for unknown columns), and
    warnings. Raises SchemaError listing every header problem."""
    lookup = {_fold(h): c.name for c in ds.columns for h in c.headers}
    claimed: dict[str, list[str]] = defaultdict(list)
    for header in df.columns:
        if _fold(header) in lookup:
            claimed[lookup[_fold(header)]].append(header)
    problems = [
        Problem(
            label,
            f"多个列都对应“{ds.column(name).zh}”：{'、'.join(headers)}，请只保留一列 "
            f"(columns {', '.join(map(repr, headers))} are all {name}: keep one)",
            column=name,
            column_zh=ds.column(name).zh,
        )
        for name, headers in claimed.items()
        if len(headers) > 1
    ]
    missing = [c for c in ds.required if c.name not in claimed]
    recognized = set(claimed) - {"id_number"}
    found = ", ".join(df.columns) or "-"
    expected = ", ".join(f"{c.name}({c.zh}){'' if c.required else '?'}" for c in ds.columns)
    foreign = (
        f"文件不像是“{ds.zh}”数据。找到的列：{found}；应有的列：{expected} (the file does not "
        f"look like a {ds.key} ({ds.zh}) file; columns found: {found}; columns expected, "
        f"? = optional: {expected})"
    )
    if missing and not recognized:
        problems.insert(0, Problem(label, foreign))
    problems += [
        Problem(
            label,
            f"缺少必填列“{c.zh}”，可用的表头：{', '.join(c.headers)} "
            f"(required column {c.name} is missing; accepted headers: {', '.join(c.headers)})",
            column=c.name,
            column_zh=c.zh,
        )
        for c in missing
    ]
    if problems:
        raise SchemaError(f"{label}: 表头不符合“{ds.zh}”的要求 (header does not fit {ds.key})", problems)
    # Only optional columns besides the ID, none of them found: loadable, but suspicious.
    suspicious = not recognized and df.width > 1 and len(ds.columns) > 1
    warnings = [Problem(label, foreign)] if suspicious else []
    names = {h: lookup[_fold(h)] for hs in claimed.values() for h in hs}
    reserved = {"_row", "reason", "id_valid", "id_method", *ds.names}
    reserved |= {f"{c.name}_raw" for c in ds.columns if c.kind == "id"}
    for header in (h for h in df.columns if h not in names):
        # Unknown columns must not shadow what the loader adds (a re-fed rejects file has
        # `_row` and `reason`).
        name = header
        while name in reserved:
            name += "_input"
        names[header] = name
        reserved.add(name)
    return names, warnings


# ---- cells ----------------------------------------------------------------------------------
# Each column is computed on its own, as Series, so that no sub-expression is evaluated twice,
# and the general parsers run only on the cells that the cheap common-case parse left over.


def _nulls(n: int, dtype: pl.DataType) -> pl.Series:
    return pl.repeat(None, n, dtype=dtype, eager=True)


def _eval(expr: pl.Expr, **columns: pl.Series) -> pl.Series:
    return pl.LazyFrame(columns).select(expr.alias("v")).collect().to_series()


def _when(condition: pl.Series, message: str) -> pl.Series:
    return _eval(pl.when(pl.col("c")).then(pl.lit(message)), c=condition.fill_null(False))


def _first(*errors: pl.Series) -> pl.Series:
    """Per row, the first error message that is not null."""
    named = {f"e{i}": e for i, e in enumerate(errors)}
    return _eval(pl.coalesce(*map(pl.col, named)), **named)


def _parse_dates(text: pl.Series, parsers: list[pl.Expr]) -> pl.Series:
    """Each parser (an expression over column `s`) tried on the cells earlier ones left null."""
    value = _nulls(text.len(), pl.Date)
    rows = text.is_not_null().arg_true()
    for parser in parsers:
        if rows.len() == 0:
            break
        found = _eval(parser, s=text.gather(rows))
        value.scatter(rows, found)
        rows = rows.filter(found.is_null())
    return _eval(pl.when(pl.col("d").is_between(_FIRST, _LAST)).then(pl.col("d")), d=value)


def _any_date(text: pl.Expr) -> pl.Expr:
    bare = text.str.replace(_TIME, "")
    dashed = bare.str.replace_all(r"[/年月]", "-").str.strip_suffix("日")
    return (
        pl.when(dashed.str.contains(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$"))
        .then(dashed.str.to_date("%Y-%m-%d", strict=False))
        .when(bare.str.contains(r"^[0-9]{8}$"))
        .then(bare.str.to_date("%Y%m%d", strict=False))
    )


def _any_month(text: pl.Expr) -> pl.Expr:
    bare = text.str.replace(_TIME, "")
    dashed = bare.str.replace_all(r"[/年]", "-").str.strip_suffix("月")
    return (
        pl.when(dashed.str.contains(r"^[0-9]{4}-[0-9]{1,2}$"))
        .then((dashed + "-01").str.to_date("%Y-%m-%d", strict=False))
        .when(bare.str.contains(r"^[0-9]{6}$"))
        .then((bare + "01").str.to_date("%Y%m%d", strict=False))
        .otherwise(_any_date(text).dt.month_start())
    )


_s = pl.col("s")
_PARSERS = {
    "date": [
        _s.str.to_date("%Y-%m-%d", strict=False),
        _s.str.to_date("%Y/%m/%d", strict=False),
        pl.when(_s.str.len_bytes() == 8).then(_s.str.to_date("%Y%m%d", strict=False)),
        _any_date(_s),
    ],
    "month": [
        (_s + "-01").str.to_date("%Y-%m-%d", strict=False),
        (_s + "/01").str.to_date("%Y/%m/%d", strict=False),
        pl.when(_s.str.len_bytes() == 6).then((_s + "01").str.to_date("%Y%m%d", strict=False)),
        _any_month(_s),
    ],
}


def _code_message(c: Column) -> str:
    options = ", ".join(f"{code}/{label}" for code, label in (c.codes or {}).items())
    return f"“{c.zh}”的取值无法识别，可选：{options} (unknown value, allowed: {options})"


def _read_id(c: Column, cell: pl.Series, as_of: date | None) -> dict[str, pl.Series]:
    # Most IDs are already canonical; only the others need ids' full normalization.
    canonical = cell.str.contains(r"^[0-9]{17}[0-9X]$").fill_null(False)
    value, empty = cell.clone(), cell.is_null()
    legacy = pl.repeat(False, cell.len(), eager=True)
    rows = (~canonical).arg_true()
    if rows.len():
        part = (
            pl.LazyFrame({"r": cell.gather(rows)})
            .with_columns(cleaned=ids.clean_expr(pl.col("r")))
            .select(
                value=ids.normalized_expr(pl.col("r")),
                empty=pl.col("cleaned").is_null(),
                legacy=ids.legacy15_expr(pl.col("cleaned")).fill_null(False),
            )
            .collect()
        )
        value.scatter(rows, part["value"])
        empty.scatter(rows, part["empty"])
        legacy.scatter(rows, part["legacy"])
    valid = _eval(ids.valid_expr(pl.col("v"), as_of), v=value)
    out = {
        c.name: value,
        _ERR + c.name: _when(empty & c.required, EMPTY),
        _BAD + c.name: ~empty & ~valid,
        _GIVEN + c.name: cell.str.strip_chars().str.len_bytes() > 0,
        f"{c.name}_raw": cell,
    }
    if c.name == "id_number":
        method = pl.when(pl.col("l")).then(pl.lit("legacy15")).otherwise(pl.lit("exact"))
        out |= {"id_valid": valid, "id_method": _eval(method, l=legacy)}
    return out


def _read_column(c: Column, cell: pl.Series, as_of: date | None) -> dict[str, pl.Series]:
    """The Series of one column: its value, its error message (null when fine), whether the
    cell was filled, and for ID columns the raw cell, validity and method."""
    if c.kind == "id":
        return _read_id(c, cell, as_of)
    t = pl.col("t")
    text = _eval(pl.when(t.str.len_bytes() > 0).then(t), t=cell.str.strip_chars())
    given = text.is_not_null()
    if c.default is not None:
        text = text.fill_null(c.default)
    error = _when(~given & c.required, EMPTY)
    if c.kind == "region":
        value = text
        error = _first(error, _when(given & ~text.str.contains(r"^[0-9]{6,12}$"), BAD_REGION))
    elif c.kind == "code":
        # Few distinct spellings: look each up once rather than case-fold every cell.
        lookup = c.code_lookup()
        spellings = {s: lookup.get(s.casefold()) for s in text.drop_nulls().unique().to_list()}
        value = text.replace_strict(spellings, default=None, return_dtype=pl.String)
        error = _first(error, _when(text.is_not_null() & value.is_null(), _code_message(c)))
    elif c.kind in ("date", "month"):
        value = _parse_dates(text, _PARSERS[c.kind])
        message = BAD_DATE if c.kind == "date" else BAD_MONTH
        error = _first(error, _when(text.is_not_null() & value.is_null(), message))
    elif c.kind in ("money", "number"):
        number = t.str.replace_all(",", "", literal=True).cast(pl.Float64, strict=False) + 0.0
        value = _eval(pl.when(t.str.contains(_NUMBER)).then(number), t=text)  # + 0.0: no -0.0
        error = _first(
            error,
            _when(text.is_not_null() & value.is_null(), NOT_NUMBER[c.kind]),
            _when(value < 0, NEGATIVE[c.kind]),
        )
    else:
        value = text
    return {c.name: value, _ERR + c.name: error, _GIVEN + c.name: given}


# ---- rows -----------------------------------------------------------------------------------


def load_frame(
    df: pl.DataFrame, key: str, file_label: str, as_of: date | None = None, first_row: int = 2
) -> Loaded:
    """Read an in-memory table as dataset `key`; `first_row` is the spreadsheet row number of
    df's first row. Non-String columns are first turned to text as `files.to_text` does."""
    ds = dataset(key)
    if any(dtype != pl.String for dtype in df.schema.values()):
        df = files.to_text(df)
    names, warnings = _map_headers(df, ds, file_label)
    df = df.rename(names)
    given, unknown = list(df.columns), [n for n in df.columns if n not in ds.names]
    base = df.with_row_index("_row", offset=first_row).with_columns(pl.col("_row").cast(pl.Int64))
    absent = _nulls(base.height, pl.String)
    columns: dict[str, pl.Series] = {"_row": base["_row"]}
    columns |= {_RAW + n: base[n] for n in given}
    for c in ds.columns:
        columns |= _read_column(c, base[c.name] if c.name in given else absent, as_of)
    columns |= {n: base[n] for n in unknown}
    columns |= {_GIVEN + n: base[n].str.strip_chars().str.len_bytes() > 0 for n in unknown}
    full = pl.DataFrame([s.alias(n) for n, s in columns.items()])
    marks = [_GIVEN + n for n in (*ds.names, *unknown)]
    present = full.select(pl.any_horizontal(marks).fill_null(False)).to_series()
    if not present.all():
        full = full.filter(present)  # blank rows are no records

    id_columns = [c for c in ds.columns if c.kind == "id"]
    for c in id_columns:
        if key != "roll" and c.name == "id_number":
            full = _id_messages(full, c, as_of)  # an invalid ID can match nobody: reject
        else:
            warnings += _id_warnings(full, c, file_label, as_of)

    errors = [c for c in ds.columns if full.get_column(_ERR + c.name).null_count() < full.height]
    failed = [pl.col(_ERR + c.name).is_not_null() for c in errors]
    rejected = full.select(pl.any_horizontal(failed)).to_series() if errors else None
    extras = [f"{c.name}_raw" for c in id_columns]
    extras += ["id_valid", "id_method"] if "id_number" in ds.names else []
    frame = full.select("_row", *ds.names, *extras, *unknown)
    # Only the rejected rows' scratch columns are needed further: filter a narrow frame.
    bad = full.select("_row", *[_RAW + n for n in given], *[_ERR + c.name for c in errors])
    bad = bad.filter(rejected) if rejected is not None else bad.clear()
    if bad.height:
        frame = frame.filter(~rejected)
    parts = [pl.lit(f"{c.name}({c.zh}): ") + pl.col(_ERR + c.name) for c in errors]
    reason = pl.concat_str(parts, separator="; ", ignore_nulls=True) if parts else pl.lit(None)
    rejects = bad.select(
        "_row", *[pl.col(_RAW + n).alias(n) for n in given], reason.cast(pl.String).alias("reason")
    )
    problems = _problems(bad, errors, file_label, given)
    return Loaded(key, file_label, frame, rejects, problems, warnings)


def _id_messages(full: pl.DataFrame, c: Column, as_of: date | None) -> pl.DataFrame:
    """Put `ids.problem`'s words in the error column of invalid IDs. It is a scalar function,
    so it runs once per distinct failing value and nowhere else."""
    rows = full.get_column(_BAD + c.name).arg_true()
    if rows.len() == 0:
        return full
    raws = full.get_column(f"{c.name}_raw").gather(rows)
    messages = {v: ids.problem(v, as_of) or "" for v in raws.unique().to_list()}
    found = raws.replace_strict(messages, return_dtype=pl.String)
    error = full.get_column(_ERR + c.name)
    return full.with_columns(error.clone().scatter(rows, error.gather(rows).fill_null(found)))


def _id_warnings(full: pl.DataFrame, c: Column, label: str, as_of: date | None) -> list[Problem]:
    """Rows kept with an invalid ID (the roll, secondary ID columns): warnings, capped."""
    bad = full.filter(pl.col(_BAD + c.name))
    rows = bad.head(PROBLEM_CAP).select("_row", f"{c.name}_raw").iter_rows()
    warnings = [
        Problem(label, ids.problem(raw, as_of) or "", row, c.name, c.zh, raw) for row, raw in rows
    ]
    if bad.height > PROBLEM_CAP:
        warnings.append(_summary(label, c, bad.height - PROBLEM_CAP))
    return warnings


def _summary(label: str, c: Column, more: int) -> Problem:
    return Problem(
        label,
        f"另有 {more} 行“{c.zh}”列的问题未逐条列出 "
        f"({more} more rows with a problem in column {c.name} are not listed one by one)",
        column=c.name,
        column_zh=c.zh,
    )


def _problems(
    bad: pl.DataFrame, errors: list[Column], label: str, given: list[str]
) -> list[Problem]:
    """One Problem per failing cell, sorted by row then column, at most PROBLEM_CAP per column;
    then one summary per column that had more."""
    found: list[tuple[int, int, Problem]] = []
    summaries = []
    for position, c in enumerate(errors):
        raw = pl.col(_RAW + c.name) if c.name in given else pl.lit(None, pl.String)
        failing = bad.filter(pl.col(_ERR + c.name).is_not_null())
        shown = failing.head(PROBLEM_CAP).select("_row", raw, _ERR + c.name)
        for row, value, message in shown.iter_rows():
            found.append((row, position, Problem(label, message, row, c.name, c.zh, value)))
        if failing.height > PROBLEM_CAP:
            summaries.append(_summary(label, c, failing.height - PROBLEM_CAP))
    return [p for _, _, p in sorted(found, key=lambda t: t[:2])] + summaries
