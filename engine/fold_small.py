"""engine.run.fold over a check's few findings, in Python.

    plan = shaped(rule, plan)                      # compiled once: a rule's hits as fold reads them
    flags = folded(found, rows, households, available, as_of)

Why: fold is one polars query over every rule that found something. Over the few hits of a
check it cost its planning, not its work: ~0.9 ms a collect, and ~0.8 ms more to compile it for
each new set of rules that found something together (groups of 16 households found ~700 such
sets in 3,000 groups; half the folds of a fresh server were compiled anew). Here each rule's
hits leave the rules' own collect already in fold's shape (`shaped`: sorted, each record and the
metrics as JSON, made by the same polars expressions as fold's), and the rest — one finding per
key, the flagged row or the household's head and programs, the evidence object, the sort —
runs on Python lists.

The same flags, row for row: the steps follow fold's (engine.run.fold says what they are), with
its joins' null handling (a null key matches nothing) and its sort (nulls last, strings by code
point as polars orders UTF-8). tests/engine/test_check.py and test_screens.py hold a check's flags
equal to run()'s.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from .rules import Rule
from .run import _HEAD_COLUMNS, _PERSON_COLUMNS, FLAG_COLUMNS, _body, _hits, empty_flags

__all__ = ["folded", "shaped"]


def shaped(rule: Rule, plan: pl.LazyFrame) -> pl.LazyFrame:
    """The rule's hits, annotated, as fold's `_hits` shapes them: key, `_record`, `_metrics`,
    `overpayment`, sorted by key and evidence."""
    return _hits(0, rule, plan if rule.annotate is None else rule.annotate(plan)).drop("_rank")


def _findings(hits: pl.DataFrame) -> list[tuple[Any, str, str | None, float | None]]:
    """One (key, records, metrics, overpayment) per key, in order of first appearance: the
    records joined by commas, the metrics and overpayment of the key's first hit."""
    found: dict[Any, list[Any]] = {}
    for key, record, metrics, overpayment in hits.rows():
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


def _last(value: Any) -> tuple[bool, Any]:
    """A sort key putting None last."""
    return (value is None, value if value is not None else 0)


def folded(found: list[tuple[Rule, pl.DataFrame]], rows: pl.DataFrame, households: pl.DataFrame | None,
           available: set[str], as_of: date) -> pl.DataFrame:
    """fold's flags for these rules' `shaped` hits (catalogue order, each with some), over the
    prepared `rows` and `households` (households_of; None when no rule is of households)."""
    if not found:
        return empty_flags()
    # The columns zipped, not a select: over a few rows a query costs more than the work.
    person_columns = list(_PERSON_COLUMNS)
    orders = rows.get_column("_order").to_list()
    by_order = dict(zip(orders, zip(*[rows.get_column(c).to_list() for c in person_columns], strict=True), strict=True))
    flags: list[tuple[Any, ...]] = []
    for rule, hits in found:
        programs = None if rule.programs is None else set(rule.programs)
        source = ",".join(rule.used_sources(available)) or "roll"
        declared = (rule.id, rule.severity, rule.cadence)
        labels = (rule.level, rule.label_zh, rule.label_en)
        made: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []  # (sort key, flag row)
        findings = _findings(hits)
        if rule.level == "person":
            roll_metrics: dict[Any, str | None] = {}
            if rule.roll_metrics:
                wanted = {key for key, *_ in findings}
                shown = rows.select(_body(list(rule.roll_metrics))).to_series().to_list()
                roll_metrics = {order: text for order, text in zip(orders, shown, strict=True) if order in wanted}
            for order, records, metrics, overpayment in findings:
                row = by_order.get(order)
                if row is None:
                    continue
                program, household_id, id_number, roll_id_number, name, region_code, method, score = row
                if programs is not None and program not in programs:
                    continue
                evidence = _evidence(rule, records, metrics, roll_metrics.get(order))
                made.append(((household_id, id_number, program, evidence, order),
                             (*declared, program, household_id, id_number, roll_id_number, name, region_code, source,
                              method, score, evidence, overpayment, as_of, *labels)))
        else:
            assert households is not None, "a household rule's flags need the households"
            flagged = {key for key, *_ in findings}
            head_of = {household: order for household, order in zip(households.get_column("household_id").to_list(),
                                                                   households.get_column("head_order").to_list(),
                                                                   strict=True) if household in flagged}
            programs_of: dict[str, list[Any]] = {}
            for program, household, *_ in by_order.values():
                if household in flagged and program not in programs_of.setdefault(household, []):
                    programs_of[household].append(program)
            head_columns = [person_columns.index(c) for c in _HEAD_COLUMNS]
            for household, records, metrics, overpayment in findings:
                head = by_order.get(head_of.get(household))
                if head is None:
                    continue
                id_number, roll_id_number, name, region_code, method, score = (head[i] for i in head_columns)
                evidence = _evidence(rule, records, metrics, None)
                for program in programs_of.get(household, []):
                    if programs is not None and program not in programs:
                        continue
                    made.append(((household, id_number, program, evidence, None),
                                 (*declared, program, household, id_number, roll_id_number, name, region_code, source,
                                  method, score, evidence, overpayment, as_of, *labels)))
        made.sort(key=lambda pair: tuple(_last(value) for value in pair[0]))
        flags += [row for _, row in made]
    if not flags:
        return empty_flags()
    return pl.DataFrame(flags, schema=FLAG_COLUMNS, orient="row")
