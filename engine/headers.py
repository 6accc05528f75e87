"""A table's headers → a dataset's columns: by canonical name, Chinese header or alias,
ignoring case and white space. A header that does not fit raises `SchemaError` once, listing
every problem (a column claimed twice, a required column missing, a file of another dataset);
unknown columns are kept under names that cannot shadow what engine.loaders adds."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import lru_cache

import polars as pl

from engine.errors import Problem, SchemaError
from schemas import Dataset, dataset

__all__ = ["map_headers", "header_test"]


# What a header may carry beside its name without changing what its cells mean: the unit of an
# amount or an area (月保障金额（元）, 建筑面积(㎡)), and a template's marks of required fields
# (*姓名, 身份证号（必填）).
_NOTE = re.compile(r"^\*+|\*+$|[(（](?:单位[:：])?(?:元|人民币元|人民币|㎡|m2|m²|平方米|平米|必填|选填)[)）]$")
# An amount in 万元 is not one in 元: refused, not read 10,000 times too small.
_TEN_THOUSAND = re.compile(r"[(（](?:单位[:：])?万元[)）]$")


def _fold(header: str) -> str:
    folded = re.sub(r"\s+", "", header).casefold()
    for _ in range(2):  # *月保障金额（元）: the mark, then the unit
        folded = _NOTE.sub("", folded)
    return folded


@lru_cache(maxsize=64)
def header_test(key: str) -> Callable[[Sequence[object]], bool]:
    """Whether a row of a file could be dataset `key`'s header: one of its cells names one of
    its columns (engine.files looks past a title above the header for such a row)."""
    known = frozenset(_fold(h) for c in dataset(key).columns for h in c.headers)

    def names_a_column(cells: Sequence[object]) -> bool:
        return any(isinstance(cell, str) and _fold(cell) in known for cell in cells)

    return names_a_column


def map_headers(df: pl.DataFrame, ds: Dataset, label: str) -> tuple[dict[str, str], list[Problem]]:
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
    for header in columns:
        scaled = _TEN_THOUSAND.sub("", _fold(header))
        if scaled != _fold(header) and scaled in lookup:
            column = ds.column(lookup[scaled])
            if column.kind == "money":
                problems.append(Problem(
                    label, f"“{header}”以万元为单位，请换算为元后再导入 (column {header!r} is in 10,000 yuan: "
                           f"convert it to yuan)", column=column.name, column_zh=column.zh))
                claimed.setdefault(column.name, [])  # named here: not missing as well
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
