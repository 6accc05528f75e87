"""A table of strings → a typed canonical frame, the rejected rows, and every problem found.

Headers are matched to a dataset's columns by canonical name, Chinese header or alias, ignoring
case and white space. A header that does not fit raises `SchemaError` once, listing every
problem; rows never raise. Each cell is read by its column's kind (`schemas.model.Kind`); a row
with any problem goes to `rejects` with all its problems in `reason`, the others to `frame`
(layout: docs/design.md, "Loaded frames"). Rows whose cells are all empty (blank lines, trailing
formatted Excel rows) are no records and are skipped silently.

Vectorised: the whole table is read in a few polars queries, every column at once (see "cells"
below); Python runs per failing cell only (to build `Problem`s and `ids.problem`'s words). At
most `PROBLEM_CAP` problems are kept per column; further failing rows of that column are
summarised in one Problem (row None) that says how many more there are. `rejects` always keeps
every rejected row with its full `reason`. Warnings (roll rows kept with an invalid ID, whether
or not rejected for something else; invalid secondary IDs such as cadre_id_number) follow the
same cap.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from pathlib import Path

import polars as pl

from engine import canonical, files, ids
from engine.errors import InputError, Problem, SchemaError
from schemas import SOURCES, Column, Dataset, dataset

__all__ = ["PROBLEM_CAP", "Loaded", "load", "load_frame", "load_sources", "summary", "summarized"]

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
    # The usable rows found, when `frame` keeps only some of them (engine.batch keeps a source's
    # rows of the roll's people); None: `frame` is all of them.
    usable: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def usable_rows(self) -> int:
        return self.frame.height if self.usable is None else self.usable


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
    names, warnings = _mapped_headers(tuple(df.columns), ds.key, label)
    return dict(names), list(warnings)


@lru_cache(maxsize=256)
def _mapped_headers(
    columns: tuple[str, ...], key: str, label: str
) -> tuple[dict[str, str], tuple[Problem, ...]]:
    ds = dataset(key)
    lookup = {_fold(h): c.name for c in ds.columns for h in c.headers}
    claimed: dict[str, list[str]] = defaultdict(list)
    for header in columns:
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
    found = ", ".join(columns) or "-"
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
    suspicious = not recognized and len(columns) > 1 and len(ds.columns) > 1
    warnings = [Problem(label, foreign)] if suspicious else []
    names = {h: lookup[_fold(h)] for hs in claimed.values() for h in hs}
    reserved = {"_row", "reason", "id_valid", "id_method", *ds.names}
    reserved |= {f"{c.name}_raw" for c in ds.columns if c.kind == "id"}
    for header in (h for h in columns if h not in names):
        # Unknown columns must not shadow what the loader adds (a re-fed rejects file has
        # `_row` and `reason`).
        name = header
        while name in reserved:
            name += "_input"
        names[header] = name
        reserved.add(name)
    return names, tuple(warnings)


# ---- cells ----------------------------------------------------------------------------------
# The whole table is read in a few polars queries, each for every column at once: a query costs
# 0.1-1 ms however small the table, so per-column queries made small tables slow.
#   1. the first pass reads each cell the cheap common way (an ID already canonical, a date as
#      YYYY-MM-DD, a code as spelt in the schema) and leaves the other cells null;
#   2. the general parsers run only on those left-over cells, column by column, and only when
#      there are any (the general parsers are what costs on large tables);
#   3. the checks: each cell's error message (null when fine), ID validity, which rows are
#      rejected (blank rows, all cells empty, are dropped first).
# The expressions are built once per kind of table (`_plan`) and reused.

# Scratch columns besides _ERR, _RAW, _BAD, _GIVEN: trimmed text (null when empty, then the
# default), ID empty after cleaning, ID was a legacy 15, ID validity, check character right.
_TEXT, _EMPTY, _LEGACY = "\x00text:", "\x00empty:", "\x00legacy:"
_VALID, _CHECKED = "\x00valid:", "\x00checked:"
_PRESENT, _REJECTED = "\x00present", "\x00rejected"  # not a blank row; rejected
_CANONICAL_ID = r"^[0-9]{17}[0-9X]$"
_ID18 = re.compile(r"[0-9]{17}[0-9X]")
# Tables of at most this many rows (an API request, a batch of them) are read with polars'
# eager settings, half the fixed cost of a query, and the ID check characters and the spellings
# the first pass left over are worked out in Python (`_checked`, `_normalized_small`); larger
# tables need the optimizations (common sub-expressions, parallelism) and run ids' expressions
# as they are. Measured crossover: 3-5k.
_SMALL = 2000


def _opt(small: bool) -> pl.QueryOptFlags:
    eager = getattr(pl.QueryOptFlags, "_eager", None)  # what DataFrame.select runs with
    return eager() if small and eager is not None else pl.QueryOptFlags()


def _eval(expr: pl.Expr, **columns: pl.Series) -> pl.Series:
    return pl.LazyFrame(columns).select(expr.alias("v")).collect().to_series()


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


# Each parser is tried on the cells that the earlier ones left null; the first one on all.
_PARSERS = {
    "date": [
        lambda s: s.str.to_date("%Y-%m-%d", strict=False),
        lambda s: s.str.to_date("%Y/%m/%d", strict=False),
        lambda s: pl.when(s.str.len_bytes() == 8).then(s.str.to_date("%Y%m%d", strict=False)),
        _any_date,
    ],
    "month": [
        lambda s: (s + "-01").str.to_date("%Y-%m-%d", strict=False),
        lambda s: (s + "/01").str.to_date("%Y/%m/%d", strict=False),
        lambda s: pl.when(s.str.len_bytes() == 6).then((s + "01").str.to_date("%Y%m%d", strict=False)),
        _any_month,
    ],
}


def _code_message(c: Column) -> str:
    options = ", ".join(f"{code}/{label}" for code, label in (c.codes or {}).items())
    return f"“{c.zh}”的取值无法识别，可选：{options} (unknown value, allowed: {options})"


def _spellings(c: Column) -> dict[str, str]:
    """The usual spellings of c's codes → the code, for a plain replace in the first pass; any
    other spelling is looked up case-folded (`Column.code_lookup`) in the second."""
    lookup = c.code_lookup()
    usual = {v for code, label in (c.codes or {}).items() for s in (code, label)
             for v in (s, s.upper(), s.lower(), s.capitalize())}
    return {s: lookup[s.casefold()] for s in usual if s.casefold() in lookup}


def _first_pass(ds: Dataset, given: tuple[str, ...], unknown: list[str]) -> list[list[pl.Expr]]:
    """The first pass as steps of a query (each step's expressions see the previous step's
    columns, so that no sub-expression is evaluated twice). A value is null where the cell is
    empty and where the general parsers still have to try."""
    trim: dict[str, pl.Expr] = {"_row": pl.col("_row").cast(pl.Int64)}
    trim |= {_RAW + n: pl.col(n) for n in given}
    marks: dict[str, pl.Expr] = {}
    values: dict[str, pl.Expr] = {}
    for c in ds.columns:
        cell = pl.col(c.name) if c.name in given else pl.lit(None, pl.String)
        if c.kind == "id":
            trim[f"{c.name}_raw"] = cell
            raw = pl.col(f"{c.name}_raw")
            marks |= {
                c.name: pl.when(raw.str.contains(_CANONICAL_ID)).then(raw),
                _EMPTY + c.name: raw.is_null(),
                _LEGACY + c.name: raw.is_null() & False,
                _GIVEN + c.name: raw.str.strip_chars().str.len_bytes() > 0,
            }
            continue
        # Trimmed here, made null where empty in the next step: polars does not share a
        # sub-expression between a when and its then, so doing both at once trimmed twice
        # (~0.1 s a column of 10M cells).
        trim[_TEXT + c.name] = cell.str.strip_chars()
        text = pl.col(_TEXT + c.name)
        filled = (text.str.len_bytes() > 0).fill_null(False)
        marks[_GIVEN + c.name] = filled
        marks[_TEXT + c.name] = pl.when(filled).then(text).otherwise(
            pl.lit(c.default, pl.String) if c.default is not None else pl.lit(None, pl.String))
        if c.kind == "code":
            value = text.replace_strict(_spellings(c), default=None, return_dtype=pl.String)
        elif c.kind in ("date", "month"):
            value = _PARSERS[c.kind][0](text)
        elif c.kind in ("money", "number"):
            number = text.str.replace_all(",", "", literal=True).cast(pl.Float64, strict=False) + 0.0
            value = pl.when(text.str.contains(_NUMBER)).then(number)  # + 0.0: no -0.0
        else:
            value = text
        values[c.name] = value
    trim |= {n: pl.col(n) for n in unknown}
    marks |= {_GIVEN + n: pl.col(n).str.strip_chars().str.len_bytes() > 0 for n in unknown}
    present = pl.any_horizontal([_GIVEN + n for n in (*ds.names, *unknown)]).fill_null(False)
    return [_named(trim), _named(marks), [*_named(values), present.alias(_PRESENT)]]


def _second_pass(c: Column, read: pl.DataFrame, small: bool) -> list[pl.Series]:
    """The general parsers on the cells of column c that the first pass left over (none: []).
    Their expressions repeat sub-expressions: they need polars' default optimizations."""
    value = read.get_column(c.name)
    if c.kind == "id":
        cell = read.get_column(f"{c.name}_raw")
        if value.null_count() == cell.null_count():
            return []
        rows = (value.is_null() & cell.is_not_null()).arg_true()
        if small:
            found = _normalized_small(cell.gather(rows))
        else:
            cleaned = ids.clean_expr(pl.col("r"))
            found = pl.LazyFrame({"r": cell.gather(rows)}).select(
                value=ids.normalized_expr(pl.col("r")),
                empty=cleaned.is_null(),
                legacy=ids.legacy15_expr(cleaned).fill_null(False),
            ).collect()
        return [
            read.get_column(name).clone().scatter(rows, found.get_column(new))
            for name, new in ((c.name, "value"), (_EMPTY + c.name, "empty"), (_LEGACY + c.name, "legacy"))
        ]
    if c.kind not in ("code", "date", "month"):
        return []
    text = read.get_column(_TEXT + c.name)
    if value.null_count() == text.null_count():
        return []
    if c.kind == "code":
        # Few distinct spellings: look each up once rather than case-fold every cell.
        lookup = c.code_lookup()
        left = text.filter(value.is_null()).drop_nulls().unique().to_list()
        found = text.replace_strict({s: lookup.get(s.casefold()) for s in left}, default=None,
                                    return_dtype=pl.String)
        return [value.fill_null(found)]
    value = value.clone()
    rows = (value.is_null() & text.is_not_null()).arg_true()
    for parser in _PARSERS[c.kind][1:]:
        if rows.len() == 0:
            break
        found = _eval(parser(pl.col("s")), s=text.gather(rows))
        value.scatter(rows, found)
        rows = rows.filter(found.is_null())
    return [value]


def _normalized_small(cells: pl.Series) -> pl.DataFrame:
    """The ID cells the first pass left over, read by the scalar twins of ids' expressions
    (tests/engine/test_ids.py holds them equal): over a few cells a query of the expressions
    costs ~1.5 ms, these microseconds. `value` as ids.normalize, `empty` where nothing is left
    after cleaning, `legacy` where it was a valid 15-digit ID."""
    read = [ids.normalize_legacy(cell) for cell in cells.to_list()]
    return pl.DataFrame(
        {
            "value": [value for value, _ in read],
            "empty": [value is None for value, _ in read],  # cleaned to nothing (a legacy 15 is never empty)
            "legacy": [legacy for _, legacy in read],
        },
        schema={"value": pl.String, "empty": pl.Boolean, "legacy": pl.Boolean},
    )


def _checked(values: pl.Series) -> pl.Series:
    """Per ID, whether its last character is the check character of the first 17 (False when
    it is not 17 digits and a check character: `_valid_small` rejects it anyway)."""
    return pl.Series([
        v is not None and _ID18.fullmatch(v) is not None and ids.check_char(v[:17]) == v[17]
        for v in values.to_list()
    ], dtype=pl.Boolean)


def _valid_small(value: pl.Expr, checked: pl.Expr, as_of: date | None) -> pl.Expr:
    """`ids.valid_expr`, its check character compared beforehand by `_checked`: the
    expression's 17-term sum costs ~1.5 ms a query whatever the table's size, ids.check_char
    microseconds an ID. The same terms, so the same result."""
    born = ids.birth_date_expr(value)
    ok = value.str.contains(_CANONICAL_ID) & born.is_not_null() & checked
    if as_of is not None:
        ok = ok & (born <= pl.lit(as_of))
    return ok.fill_null(False)


def _checks(ds: Dataset, as_of: date | None, small: bool) -> list[list[pl.Expr]]:
    """The third pass as steps of a query: final values and ID validity, then each column's
    error message (an invalid ID's words are put in later, on the rejected rows only)."""
    values: dict[str, pl.Expr] = {}
    errors: dict[str, pl.Expr] = {}
    for c in ds.columns:
        value = pl.col(c.name)
        empty = pl.col(_EMPTY + c.name) if c.kind == "id" else ~pl.col(_GIVEN + c.name)
        error = pl.when(empty).then(pl.lit(EMPTY)) if c.required else pl.lit(None, pl.String)
        text = pl.col(_TEXT + c.name)
        problems = [error]
        if c.kind == "id":
            checked = pl.col(_CHECKED + c.name)
            valid = _valid_small(value, checked, as_of) if small else ids.valid_expr(value, as_of)
            values[_VALID + c.name] = valid
            errors[_BAD + c.name] = ~empty & ~pl.col(_VALID + c.name)
        elif c.kind == "region":
            bad_region = pl.col(_GIVEN + c.name) & ~text.str.contains(r"^[0-9]{6,12}$")
            problems.append(pl.when(bad_region).then(pl.lit(BAD_REGION)))
        elif c.kind == "code":
            problems.append(pl.when(text.is_not_null() & value.is_null()).then(pl.lit(_code_message(c))))
        elif c.kind in ("date", "month"):
            values[c.name] = pl.when(value.is_between(_FIRST, _LAST)).then(value)
            message = BAD_DATE if c.kind == "date" else BAD_MONTH
            problems.append(pl.when(text.is_not_null() & value.is_null()).then(pl.lit(message)))
        elif c.kind in ("money", "number"):
            problems.append(pl.when(text.is_not_null() & value.is_null()).then(pl.lit(NOT_NUMBER[c.kind])))
            problems.append(pl.when(value < 0).then(pl.lit(NEGATIVE[c.kind])))
        errors[_ERR + c.name] = pl.coalesce(problems) if len(problems) > 1 else error
    if "id_number" in ds.names:
        method = pl.when(pl.col(_LEGACY + "id_number")).then(pl.lit("legacy15")).otherwise(pl.lit("exact"))
        errors |= {"id_valid": pl.col(_VALID + "id_number"), "id_method": method}
    return [_named(values), _named(errors)]


def _named(exprs: dict[str, pl.Expr]) -> list[pl.Expr]:
    return [e.alias(n) for n, e in exprs.items()]


@dataclass(frozen=True)
class _Plan:
    """How to read one kind of table (dataset, its headers, as_of, small or not): built once
    and kept, for building the polars expressions costs as much as running them on a few rows."""

    first: list[list[pl.Expr]]
    checks: list[list[pl.Expr]]
    outputs: list[str]  # the loaded frame's columns
    scratch: list[str]  # what the rejected rows need further: raw cells, errors, invalid IDs
    rejected: pl.Expr
    id_columns: list[Column]
    rejecting: list[Column]  # ID columns whose invalid IDs reject the row
    no_rejects: pl.DataFrame  # `rejects` when no row is rejected (cloned)


@lru_cache(maxsize=256)
def _plan(key: str, given: tuple[str, ...], as_of: date | None, small: bool) -> _Plan:
    ds = dataset(key)
    unknown = [n for n in given if n not in ds.names]
    id_columns = [c for c in ds.columns if c.kind == "id"]
    # An invalid ID in a source can match nobody: the row is rejected. The roll keeps it (and
    # so do secondary ID columns) with a warning.
    rejecting = [c for c in id_columns if key != "roll" and c.name == "id_number"]
    failed = [pl.col(_ERR + c.name).is_not_null() for c in ds.columns]
    failed += [pl.col(_BAD + c.name) for c in rejecting]
    extras = [f"{c.name}_raw" for c in id_columns]
    extras += ["id_valid", "id_method"] if "id_number" in ds.names else []
    return _Plan(
        first=_first_pass(ds, given, unknown),
        checks=_checks(ds, as_of, small),
        outputs=["_row", *ds.names, *extras, *unknown],
        scratch=[*[_RAW + n for n in given], *[_ERR + c.name for c in ds.columns],
                 *[_BAD + c.name for c in id_columns]],
        rejected=pl.any_horizontal(failed).alias(_REJECTED),
        id_columns=id_columns,
        rejecting=rejecting,
        no_rejects=pl.DataFrame(
            schema={"_row": pl.Int64, **dict.fromkeys(given, pl.String), "reason": pl.String}
        ),
    )


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
    if df.height > _SMALL:
        return _read(df.rename(names), ds, file_label, as_of, first_row, warnings)
    if any(old != new for old, new in names.items()):
        # The same series renamed, not a query: over a few rows (an API request) it costs more than the work.
        df = pl.DataFrame([df.get_column(c).alias(names.get(c, c)) for c in df.columns])
    # A few rows (an API request): those in canonical form need no query (engine.canonical);
    # the others are read the usual way and numbered as they were.
    plan = _plan(key, tuple(df.columns), as_of, True)
    rejecting = {c.name for c in plan.rejecting}
    quick, others, noted = canonical.read(df, ds, as_of, first_row, (_FIRST, _LAST), file_label, rejecting)
    if quick is None or quick.height == 0 or len(noted) > PROBLEM_CAP:
        return _read(df, ds, file_label, as_of, first_row, warnings)
    if not others:
        return Loaded(key, file_label, quick, plan.no_rejects.clone(), [], warnings + noted)
    rest = _read(df[others], ds, file_label, as_of, 0, [])
    if len(noted) + len(rest.warnings) > PROBLEM_CAP:  # capped per column: leave the counting to one reading
        return _read(df, ds, file_label, as_of, first_row, warnings)
    numbers = pl.Series("_row", [first_row + position for position in others], dtype=pl.Int64)

    def renumbered(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(numbers.gather(frame.get_column("_row")))

    def moved(problems: list[Problem]) -> list[Problem]:
        return [replace(p, row=first_row + others[p.row]) if p.row is not None else p for p in problems]

    frame = pl.concat([quick, renumbered(rest.frame)]).sort("_row")
    # ID warnings column by column, row by row, as one reading lists them.
    noted = sorted(noted + moved(rest.warnings), key=lambda p: (ds.names.index(p.column or ""), p.row))
    return Loaded(key, file_label, frame, renumbered(rest.rejects), moved(rest.problems), warnings + noted)


def _read(df: pl.DataFrame, ds: Dataset, file_label: str, as_of: date | None, first_row: int,
          warnings: list[Problem]) -> Loaded:
    """load_frame's usual reading of `df` (its headers mapped already): three passes of queries."""
    key = ds.key
    given = tuple(df.columns)
    small = df.height <= _SMALL
    plan, opt = _plan(key, given, as_of, small), _opt(small)

    query = df.lazy().with_row_index("_row", offset=first_row)
    for step in plan.first:
        query = query.with_columns(step)
    read = query.collect(optimizations=opt)
    redone = [s for c in ds.columns for s in _second_pass(c, read, small)]
    if redone:
        read = read.with_columns(redone)
    if small:
        read = read.with_columns(
            _checked(read.get_column(c.name)).alias(_CHECKED + c.name) for c in plan.id_columns
        )
    query = read.lazy()
    if not read.get_column(_PRESENT).all():
        query = query.filter(_PRESENT)  # blank rows are no records
    for step in plan.checks:
        query = query.with_columns(step)
    full = query.select(*plan.outputs, *plan.scratch, plan.rejected).collect(optimizations=opt)

    for c in plan.id_columns:
        if c not in plan.rejecting:
            warnings += _id_warnings(full, c, file_label, as_of)
    rejected = full.get_column(_REJECTED)
    if not rejected.any():
        return Loaded(key, file_label, full[plan.outputs], plan.no_rejects.clone(), [], warnings)
    # (df[names], not df.select(names), which copies every column of a large frame.)
    frame = full[plan.outputs].filter(~rejected)
    # Only the rejected rows' scratch columns are needed further: filter a narrow frame.
    bad = full[["_row", *plan.scratch]].filter(rejected)
    for c in plan.rejecting:
        bad = _id_messages(bad, c, as_of)
    errors = [c for c in ds.columns if bad.get_column(_ERR + c.name).null_count() < bad.height]
    parts = [pl.lit(f"{c.name}({c.zh}): ") + pl.col(_ERR + c.name) for c in errors]
    rejects = bad.select(
        "_row", *[pl.col(_RAW + n).alias(n) for n in given],
        pl.concat_str(parts, separator="; ", ignore_nulls=True).cast(pl.String).alias("reason"),
    )
    problems = _problems(bad, errors, file_label, given)
    return Loaded(key, file_label, frame, rejects, problems, warnings)


def _id_messages(bad: pl.DataFrame, c: Column, as_of: date | None) -> pl.DataFrame:
    """Put `ids.problem`'s words in the error column of invalid IDs. It is a scalar function,
    so it runs once per distinct failing value and nowhere else."""
    invalid = pl.col(_BAD + c.name)
    raws = bad.filter(invalid).get_column(_RAW + c.name)
    if raws.len() == 0:
        return bad
    messages = {v: ids.problem(v, as_of) or "" for v in raws.unique().to_list()}
    found = pl.col(_RAW + c.name).replace_strict(messages, default=None, return_dtype=pl.String)
    error = pl.col(_ERR + c.name)
    filled = pl.when(invalid & error.is_null()).then(found).otherwise(error)
    return bad.with_columns(filled.alias(_ERR + c.name))


def _id_warnings(full: pl.DataFrame, c: Column, label: str, as_of: date | None) -> list[Problem]:
    """Rows kept with an invalid ID (the roll, secondary ID columns): warnings, capped."""
    count = full.get_column(_BAD + c.name).sum()
    if not count:
        return []
    shown = full.select(pl.col("_row", f"{c.name}_raw").filter(pl.col(_BAD + c.name)).head(PROBLEM_CAP))
    warnings = [
        Problem(label, ids.problem(raw, as_of) or "", row, c.name, c.zh, raw)
        for row, raw in shown.iter_rows()
    ]
    if count > PROBLEM_CAP:
        warnings.append(summary(label, c, count - PROBLEM_CAP))
    return warnings


def summary(label: str, c: Column, more: int) -> Problem:
    """The problem saying how many more rows of column `c` had one than are listed."""
    return Problem(
        label,
        f"另有 {more} 行“{c.zh}”列的问题未逐条列出 "
        f"({more} more rows with a problem in column {c.name} are not listed one by one)",
        column=c.name,
        column_zh=c.zh,
    )


_SUMMARY = re.compile(r"^另有 (\d+) 行“")


def summarized(problem: Problem) -> int | None:
    """How many rows a `summary` problem stands for (None: not a summary). Pieces of a file read
    apart (engine.pieces) add theirs up."""
    if problem.row is not None or problem.column is None:
        return None
    found = _SUMMARY.match(problem.message)
    return int(found.group(1)) if found else None


def _problems(
    bad: pl.DataFrame, errors: list[Column], label: str, given: tuple[str, ...]
) -> list[Problem]:
    """One Problem per failing cell, sorted by row then column, at most PROBLEM_CAP per column;
    then one summary per column that had more. One query gathers every column's cells."""
    shown = []
    for c in errors:
        error = pl.col(_ERR + c.name)
        raw = pl.col(_RAW + c.name) if c.name in given else pl.when(False).then(error)  # null
        shown += [
            e.filter(error.is_not_null()).head(PROBLEM_CAP).implode()
            for e in (pl.col("_row"), raw, error)
        ]
    lists = bad.select(e.alias(str(i)) for i, e in enumerate(shown)).row(0)
    found: list[tuple[int, int, Problem]] = []
    summaries = []
    for position, c in enumerate(errors):
        rows, values, messages = lists[3 * position : 3 * position + 3]
        for row, value, message in zip(rows, values, messages, strict=True):
            found.append((row, position, Problem(label, message, row, c.name, c.zh, value)))
        failing = bad.height - bad.get_column(_ERR + c.name).null_count()
        if failing > PROBLEM_CAP:
            summaries.append(summary(label, c, failing - PROBLEM_CAP))
    return [p for _, _, p in sorted(found, key=lambda t: t[:2])] + summaries
