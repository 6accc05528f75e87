"""How each column's cells are read and checked by its kind (`schemas.model.Kind`), as polars
expressions over a whole table of strings (and of amounts a Parquet file holds as numbers):
engine.loaders runs them and sorts the rows into usable and rejected.

The whole table is read in a few polars queries, each for every column at once: a query costs
0.1-1 ms however small the table, so per-column queries made small tables slow.
  1. the first pass reads each cell the cheap common way (an ID already canonical, a date as
     YYYY-MM-DD, a code as spelt in the schema) and leaves the other cells null;
  2. the general parsers run only on those left-over cells, column by column, and only when
     there are any (the general parsers are what costs on large tables): `second_pass`;
  3. the checks: each cell's error message (null when fine), ID validity, which rows are
     rejected (blank rows, all cells empty, are dropped first).
The expressions are built once per kind of table (`plan`) and reused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import polars as pl

from engine import ids
from schemas import Column, Dataset, dataset

__all__ = [
    "BAD", "BAD_DATE", "BAD_MONTH", "BAD_REGION", "CHECKED", "EMPTY", "ERR", "FIRST_DATE", "LAST_DATE",
    "NEGATIVE", "NOT_NUMBER", "PRESENT", "RAW", "REJECTED", "SMALL", "Plan", "check_characters", "spellings",
    "plan", "query_options", "second_pass",
]

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
FIRST_DATE, LAST_DATE = date(1900, 1, 1), date(2199, 12, 31)  # the dates taken
_EXCEL_EPOCH = date(1899, 12, 30)  # day 0 of Excel's serial dates (1900's false leap day included)

# Scratch columns, prefixed to a column's name, never returned by engine.loaders. Read there:
# error message, raw cell, invalid ID, check character right (small tables), not a blank row,
# rejected. Only here: non-blank cell, trimmed text (null when empty, then the default), ID empty
# after cleaning, ID was a legacy 15, ID validity.
ERR, RAW, BAD, _GIVEN = "\x00err:", "\x00raw:", "\x00bad:", "\x00given:"
_TEXT, _EMPTY, _LEGACY = "\x00text:", "\x00empty:", "\x00legacy:"
_VALID, CHECKED = "\x00valid:", "\x00checked:"
PRESENT, REJECTED = "\x00present", "\x00rejected"
_CANONICAL_ID = r"^[0-9]{17}[0-9X]$"
_ID18 = re.compile(r"[0-9]{17}[0-9X]")
# Tables of at most this many rows (an API request, a batch of them) are read with polars'
# eager settings, half the fixed cost of a query, and the ID check characters and the spellings
# the first pass left over are worked out in Python (`check_characters`, `_normalized_small`);
# larger tables need the optimizations (common sub-expressions, parallelism) and run ids'
# expressions as they are. Measured crossover: 3-5k.
SMALL = 2000


def query_options(small: bool) -> pl.QueryOptFlags:
    """What a table's queries run with: polars' eager settings for a small table."""
    eager = getattr(pl.QueryOptFlags, "_eager", None)  # what DataFrame.select runs with
    return eager() if small and eager is not None else pl.QueryOptFlags()


def _eval(expr: pl.Expr, **columns: pl.Series) -> pl.Series:
    return pl.LazyFrame(columns).select(expr.alias("v")).collect().to_series()


def _any_date(text: pl.Expr) -> pl.Expr:
    bare = text.str.replace(_TIME, "")
    dashed = bare.str.replace_all(r"[/.年月]", "-").str.strip_suffix("日")  # 2021.3.1 too, as often written
    return (
        pl.when(dashed.str.contains(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$"))
        .then(dashed.str.to_date("%Y-%m-%d", strict=False))
        .when(bare.str.contains(r"^[0-9]{8}$"))
        .then(bare.str.to_date("%Y%m%d", strict=False))
        # A date cell Excel wrote out as its serial number (a CSV saved from a sheet whose date
        # column was formatted General): five digits, 1927-05-18 to 2173-10-14.
        .when(bare.str.contains(r"^[0-9]{5}$"))
        .then(pl.lit(_EXCEL_EPOCH) + pl.duration(days=bare.cast(pl.Int64, strict=False)))
    )


def _any_month(text: pl.Expr) -> pl.Expr:
    bare = text.str.replace(_TIME, "")
    dashed = bare.str.replace_all(r"[/.年]", "-").str.strip_suffix("月")
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


def spellings(c: Column) -> dict[str, str]:
    """The usual spellings of c's codes → the code, for a plain replace in the first pass; any
    other spelling is looked up case-folded (`Column.code_lookup`) in the second."""
    lookup = c.code_lookup()
    usual = {v for code, label in (c.codes or {}).items() for s in (code, label)
             for v in (s, s.upper(), s.lower(), s.capitalize())}
    return {s: lookup[s.casefold()] for s in usual if s.casefold() in lookup}


def _first_pass(ds: Dataset, given: tuple[str, ...], unknown: list[str],
                plain: tuple[str, ...]) -> list[list[pl.Expr]]:
    """The first pass as steps of a query (each step's expressions see the previous step's
    columns, so that no sub-expression is evaluated twice). A value is null where the cell is
    empty and where the general parsers still have to try. `plain`: amount columns held as
    numbers, each a plain decimal as text (engine.loaders checked): read as they are."""
    trim: dict[str, pl.Expr] = {"_row": pl.col("_row").cast(pl.Int64)}
    trim |= {RAW + n: pl.col(n) for n in given}
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
        if c.name in plain:  # the same steps as text's below, on numbers: nothing to trim or parse
            trim[_TEXT + c.name] = cell.cast(pl.Float64)
            number = pl.col(_TEXT + c.name)
            marks[_GIVEN + c.name] = number.is_not_null()
            marks[_TEXT + c.name] = number if c.default is None else number.fill_null(float(c.default))
            values[c.name] = number + 0.0  # no -0.0
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
            value = text.replace_strict(spellings(c), default=None, return_dtype=pl.String)
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
    return [_named(trim), _named(marks), [*_named(values), present.alias(PRESENT)]]


def second_pass(c: Column, read: pl.DataFrame, small: bool) -> list[pl.Series]:
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


def check_characters(values: pl.Series) -> pl.Series:
    """Per ID, whether its last character is the check character of the first 17 (False when
    it is not 17 digits and a check character: `_valid_small` rejects it anyway)."""
    return pl.Series([
        v is not None and _ID18.fullmatch(v) is not None and ids.check_char(v[:17]) == v[17]
        for v in values.to_list()
    ], dtype=pl.Boolean)


def _valid_small(value: pl.Expr, checked: pl.Expr, as_of: date | None) -> pl.Expr:
    """`ids.valid_expr`, its check character compared beforehand by `check_characters`: the
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
            checked = pl.col(CHECKED + c.name)
            valid = _valid_small(value, checked, as_of) if small else ids.valid_expr(value, as_of)
            values[_VALID + c.name] = valid
            errors[BAD + c.name] = ~empty & ~pl.col(_VALID + c.name)
        elif c.kind == "region":
            bad_region = pl.col(_GIVEN + c.name) & ~text.str.contains(r"^[0-9]{6,12}$")
            problems.append(pl.when(bad_region).then(pl.lit(BAD_REGION)))
        elif c.kind == "code":
            problems.append(pl.when(text.is_not_null() & value.is_null()).then(pl.lit(_code_message(c))))
        elif c.kind in ("date", "month"):
            values[c.name] = pl.when(value.is_between(FIRST_DATE, LAST_DATE)).then(value)
            message = BAD_DATE if c.kind == "date" else BAD_MONTH
            problems.append(pl.when(text.is_not_null() & value.is_null()).then(pl.lit(message)))
        elif c.kind in ("money", "number"):
            problems.append(pl.when(text.is_not_null() & value.is_null()).then(pl.lit(NOT_NUMBER[c.kind])))
            problems.append(pl.when(value < 0).then(pl.lit(NEGATIVE[c.kind])))
        errors[ERR + c.name] = pl.coalesce(problems) if len(problems) > 1 else error
    if "id_number" in ds.names:
        method = pl.when(pl.col(_LEGACY + "id_number")).then(pl.lit("legacy15")).otherwise(pl.lit("exact"))
        errors |= {"id_valid": pl.col(_VALID + "id_number"), "id_method": method}
    return [_named(values), _named(errors)]


def _read_as_empty(columns: list[Column]) -> list[pl.Expr]:
    """A lenient column's value where its cell had an error: empty, or the column's default."""
    kept = []
    for c in columns:
        fallback = pl.lit(None) if c.default is None else pl.lit(float(c.default) if c.kind in ("money", "number")
                                                                  else c.default)
        kept.append(pl.when(pl.col(ERR + c.name).is_null()).then(pl.col(c.name)).otherwise(fallback).alias(c.name))
    return kept


def _named(exprs: dict[str, pl.Expr]) -> list[pl.Expr]:
    return [e.alias(n) for n, e in exprs.items()]


@dataclass(frozen=True)
class Plan:
    """How to read one kind of table (dataset, its headers, as_of, small or not, which amounts
    it holds as numbers): built once and kept, for building the polars expressions costs as
    much as running them on a few rows."""

    first: list[list[pl.Expr]]
    checks: list[list[pl.Expr]]
    outputs: list[str]  # the loaded frame's columns
    scratch: list[str]  # what the rejected rows need further: raw cells, errors, invalid IDs
    rejected: pl.Expr
    id_columns: list[Column]
    rejecting: list[Column]  # ID columns whose invalid IDs reject the row
    lenient: list[Column]  # columns whose bad cell is read as empty (its default), with a warning
    no_rejects: pl.DataFrame  # `rejects` when no row is rejected (cloned)


@lru_cache(maxsize=256)
def plan(key: str, given: tuple[str, ...], as_of: date | None, small: bool,
         plain: tuple[str, ...] = ()) -> Plan:
    """How to read a table of dataset `key` with columns `given` (canonical names, or a header
    not of the dataset); `plain`: amount and number columns held as numbers (engine.loaders'
    `_plain_numbers`), the others String."""
    ds = dataset(key)
    unknown = [n for n in given if n not in ds.names]
    id_columns = [c for c in ds.columns if c.kind == "id"]
    # An invalid ID in a source can match nobody: the row is rejected. The roll keeps it (and
    # so do secondary ID columns) with a warning.
    rejecting = [c for c in id_columns if key != "roll" and c.name == "id_number"]
    # The roll's optional cells (relation, declared income, enrolled on) do not reject the person:
    # a roll row is someone every rule checks, so a bad one is read as empty (or its default)
    # with a warning. A source's are part of its record: that record is rejected, as before.
    lenient = [c for c in ds.columns if key == "roll" and not c.required and c.kind != "id"]
    failed = [pl.col(ERR + c.name).is_not_null() for c in ds.columns if c not in lenient]
    failed += [pl.col(BAD + c.name) for c in rejecting]
    extras = [f"{c.name}_raw" for c in id_columns]
    extras += ["id_valid", "id_method"] if "id_number" in ds.names else []
    return Plan(
        first=_first_pass(ds, given, unknown, plain),
        checks=_checks(ds, as_of, small) + ([_read_as_empty(lenient)] if lenient else []),
        outputs=["_row", *ds.names, *extras, *unknown],
        scratch=[*[RAW + n for n in given], *[ERR + c.name for c in ds.columns],
                 *[BAD + c.name for c in id_columns]],
        rejected=pl.any_horizontal(failed).alias(REJECTED),
        id_columns=id_columns,
        rejecting=rejecting,
        lenient=lenient,
        no_rejects=pl.DataFrame(
            schema={"_row": pl.Int64, **dict.fromkeys(given, pl.String), "reason": pl.String}
        ),
    )
