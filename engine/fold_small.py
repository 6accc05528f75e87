"""engine.run.fold over a check's few findings, in Python.

    shape = shaped(rule, plan, as_of)              # once per compiled plan: its hits as fold reads them
    flags = folded([(rule, shape(collected)), ...], rows, households, available, as_of)

Why: fold is one polars query over every rule that found something. Over the few hits of a
check it cost its planning, not its work: ~0.9 ms a collect, and ~0.8 ms more to compile it for
each new set of rules that found something together (groups of 16 households found ~700 such
sets in 3,000 groups; half the folds of a fresh server were compiled anew). Here each rule's
hits leave the rules' own collect as they are, and are annotated and put in fold's shape in
Python (`shaped`: sorted, each record and the metrics as the JSON polars writes,
engine.json_text): made by polars inside the plan, that shape cost ~0.1 ms a rule over a few
rows, and an annotation (a Python function in the plan) ~0.1 ms more.
The rest — one finding per key, the flagged row or the household's head and programs, the
evidence object, the sort — runs on Python lists.

The same flags, row for row: the steps follow fold's (engine.run.fold says what they are), with
its joins' null handling (a null key matches nothing) and its sort (nulls last, strings by code
point as polars orders UTF-8, NaN after every number). A rule whose evidence has a type
engine.json_text does not cover is shaped by fold's own expressions, over its collected hits.
tests/engine/test_fold_small.py (fold's cases, table-driven), test_check.py and test_screens.py
(a planted city) hold a check's flags equal to run()'s.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from .frames import frame_of_rows, gathered
from .json_text import body_encoder
from .rules import Rule
from .run import _PERSON_COLUMNS, FLAG_COLUMNS, _body, _hits, empty_flags

__all__ = ["Hit", "folded", "shaped"]

# A rule's hit as fold reads it: the finding's key (a roll row's _order, or a household_id), the
# record's evidence JSON, the finding's metrics JSON (an object's members) and overpayment.
Hit = tuple[Any, str | None, str | None, float | None]
Shape = Callable[[pl.DataFrame], list[Hit]]


def _last(value: Any) -> tuple[bool, Any]:
    """A sort key putting None last."""
    return (value is None, value if value is not None else 0)


def _last_float(value: float | None) -> tuple[bool, bool, float]:
    """A float's sort key as polars sorts: NaN after every number, None after NaN."""
    nan = value is not None and math.isnan(value)
    return (value is None, nan, 0.0 if value is None or nan else value)


def shaped(rule: Rule, plan: pl.LazyFrame, as_of: date) -> Shape:
    """What makes the rule's collected hits (of `plan`) fold's: annotated at `as_of`, sorted by
    key and evidence, the records and metrics JSON."""
    def annotated(hits: pl.DataFrame) -> pl.DataFrame:
        return hits if rule.annotate is None else rule.annotate(hits, as_of)

    schema = annotated(pl.DataFrame(schema=plan.collect_schema())).schema
    key = "_order" if rule.level == "person" else "household_id"
    evidence, metrics = list(rule.evidence), list(rule.metrics)
    record = body_encoder({c: schema[c] for c in evidence})
    metric = body_encoder({c: schema[c] for c in metrics})
    if record is None or metric is None or schema[key] != (pl.Int64 if key == "_order" else pl.String):
        def by_polars(hits: pl.DataFrame) -> list[Hit]:  # no rank: one rule
            return _hits(None, rule, annotated(hits).lazy()).collect().rows()

        return by_polars
    sort_keys = [_last_float if schema[c] == pl.Float64 else _last for c in (key, *evidence)]
    overpayment = metrics.index("overpayment") if "overpayment" in metrics else None

    def shape(collected: pl.DataFrame) -> list[Hit]:
        hits = annotated(collected)
        keys = hits.get_column(key).to_list()
        shown = list(zip(*[hits.get_column(c).to_list() for c in evidence], strict=True)) if evidence \
            else [()] * hits.height
        measured = list(zip(*[hits.get_column(c).to_list() for c in metrics], strict=True)) if metrics \
            else [()] * hits.height
        order = range(hits.height) if hits.height < 2 else sorted(
            range(hits.height),
            key=lambda at: tuple(last(value) for last, value in zip(sort_keys, (keys[at], *shown[at]), strict=True)))
        return [(keys[at], "{" + record(shown[at]) + "}" if evidence else None,
                 metric(measured[at]) if metrics else None,
                 None if overpayment is None or measured[at][overpayment] is None else float(measured[at][overpayment]))
                for at in order]

    return shape


def _findings(hits: list[Hit]) -> list[tuple[Any, str, str | None, float | None]]:
    """One (key, records, metrics, overpayment) per key, in order of first appearance: the
    records joined by commas, the metrics and overpayment of the key's first hit."""
    found: dict[Any, list[Any]] = {}
    for key, record, metrics, overpayment in hits:
        if key is None:
            continue  # a null key joins nothing in fold
        if key in found:
            if record is not None:
                found[key][0].append(record)
        else:
            found[key] = [[] if record is None else [record], metrics, overpayment]
    return [(key, ",".join(records), metrics, overpayment) for key, (records, metrics, overpayment) in found.items()]


def _evidence(rule: Rule, records: str, metrics: str | None, roll_metrics: str | None) -> str:
    parts = [f'"records":[{records}]'] if rule.evidence else []
    parts += [part for part in (metrics, roll_metrics) if part is not None]
    return "{" + ",".join(parts) + "}"


@functools.lru_cache(maxsize=64)
def _roll_body(columns: tuple[tuple[str, pl.DataType], ...]) -> Callable[[tuple[Any, ...]], str] | None:
    """body_encoder of these roll columns, made once (the resolution struct's takes ~20 µs)."""
    return body_encoder(dict(columns))


# A finding made a flag, before the rule's columns: (program, household_id, the person named:
# id_number, roll_id_number, name, region_code, match_method, match_score; evidence, the roll
# row's _order (None for a household), overpayment).
Made = tuple[Any, str, tuple[Any, ...], str, int | None, float | None]


def _of_persons(rule: Rule, findings: list[tuple[Any, ...]], rows: pl.DataFrame, orders: list[int],
                by_order: dict[int, tuple[Any, ...]]) -> list[Made]:
    """A person rule's flags: the flagged row's, if it is in one of the rule's programs."""
    roll_metrics: dict[int, str | None] = {}
    if rule.roll_metrics:
        wanted = {key for key, *_ in findings}
        columns = [rows.get_column(c) for c in rule.roll_metrics]
        body = _roll_body(tuple((column.name, column.dtype) for column in columns))
        if body is None:  # a type engine.json_text does not cover: encoded by polars, every row
            shown = rows.select(_body(list(rule.roll_metrics))).to_series().to_list()
            roll_metrics = {order: text for order, text in zip(orders, shown, strict=True) if order in wanted}
        else:  # the flagged rows' only (a few of the check's)
            at = np.array([position for position, order in enumerate(orders) if order in wanted], dtype=np.int64)
            values = zip(*[gathered(column, at).to_list() for column in columns], strict=True)
            roll_metrics = {orders[position]: body(row) for position, row in zip(at.tolist(), values, strict=True)}
    made: list[Made] = []
    for order, records, metrics, overpayment in findings:
        row = by_order.get(order)
        if row is None or (rule.programs is not None and row[0] not in rule.programs):
            continue
        program, household_id, *person = row
        made.append((program, household_id, tuple(person), _evidence(rule, records, metrics, roll_metrics.get(order)),
                     order, overpayment))
    return made


def _of_households(rule: Rule, findings: list[tuple[Any, ...]], households: pl.DataFrame | None,
                   by_order: dict[int, tuple[Any, ...]]) -> list[Made]:
    """A household rule's flags: its head named, once per program the household has among the
    rule's."""
    assert households is not None, "a household rule's flags need the households"
    flagged = {key for key, *_ in findings}
    head_of = {household: order for household, order in zip(households.get_column("household_id").to_list(),
                                                           households.get_column("head_order").to_list(),
                                                           strict=True) if household in flagged}
    programs_of: dict[str, list[Any]] = {}
    for program, household, *_ in by_order.values():
        if household in flagged and program not in programs_of.setdefault(household, []):
            programs_of[household].append(program)
    made: list[Made] = []
    for household, records, metrics, overpayment in findings:
        head = by_order.get(head_of.get(household))  # type: ignore[arg-type]
        if head is None:
            continue
        evidence = _evidence(rule, records, metrics, None)
        made += [(program, household, tuple(head[2:]), evidence, None, overpayment)
                 for program in programs_of.get(household, [])
                 if rule.programs is None or program in rule.programs]
    return made


def folded(found: list[tuple[Rule, list[Hit]]], rows: pl.DataFrame, households: pl.DataFrame | None,
           available: set[str], as_of: date) -> pl.DataFrame:
    """fold's flags for these rules' `shaped` hits (catalogue order, each with some), over the
    prepared `rows` and `households` (households_of; None when no rule is of households)."""
    # The columns zipped, not a select: over a few rows a query costs more than the work.
    orders = rows.get_column("_order").to_list() if found else []
    by_order = dict(zip(orders, zip(*[rows.get_column(c).to_list() for c in _PERSON_COLUMNS], strict=True),
                        strict=True)) if found else {}
    flags: list[tuple[Any, ...]] = []
    for rule, hits in found:
        findings = _findings(hits)
        made = (_of_persons(rule, findings, rows, orders, by_order) if rule.level == "person"
                else _of_households(rule, findings, households, by_order))
        # As fold sorts a rule's flags: household, ID, program, evidence, roll order; nulls last.
        made.sort(key=lambda m: (_last(m[1]), _last(m[2][0]), _last(m[0]), _last(m[3]), _last(m[4])))
        source = ",".join(rule.used_sources(available)) or "roll"
        flags += [(rule.id, rule.severity, rule.cadence, program, household, *person[:4], source, *person[4:],
                   evidence, overpayment, as_of, rule.level, rule.label_zh, rule.label_en)
                  for program, household, person, evidence, _, overpayment in made]
    if not flags:
        return empty_flags()
    return frame_of_rows(flags, FLAG_COLUMNS)
