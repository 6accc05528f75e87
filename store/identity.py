"""A finding's stable identity (the flag key) and the fingerprint of its evidence. Pure.

The key says *which* finding this is, so that the same finding in next month's run is the same
flag: rule, household, program, person (the roll person for person rules; none for household
rules, whose head may change on the roll) and the identifying fields of the evidence, as the
schemas declare them per source (`Dataset.identity`: a vehicle's plate, a property's
certificate number, a payroll employer, a bank, …). Another car is another finding; the same
car with a new price is the same finding with changed evidence.

The fingerprint says *what* was found: the evidence JSON with its records in a canonical order
and without the fields that change when nothing about the finding did (`VOLATILE`: the
overpayment estimate and the age grow with the as-of date, the roll row moves when the roll is
re-sorted). A dismissed flag is reopened when its fingerprint changes.

Two findings with the same key in one run (the same person twice in one program of one
household) are told apart by an ordinal, in the order of their fingerprints.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

import polars as pl

from engine.rules import RULES
from schemas import SOURCES

__all__ = ["VOLATILE", "identity_columns", "fingerprint", "flag_key", "identify"]

VOLATILE = frozenset({"overpayment", "age", "roll_row"})
# Of the resolver's answer only the conclusion counts: which ID it suggests and how sure it is
# allowed to be. Runner-up scores shift whenever hukou changes and say nothing new to a
# caseworker who already dismissed the flag.
RESOLUTION_KEPT = ("reason", "status", "suggested_id", "method")


@cache
def identity_columns(rule_id: str) -> tuple[str, ...]:
    """The evidence columns of `rule_id` that identify a record (declared on its sources)."""
    rule = RULES.get(rule_id)
    if rule is None:
        return ()
    declared = [c for key in (*rule.sources, *rule.optional_sources) for c in SOURCES[key].identity]
    return tuple(dict.fromkeys(c for c in declared if c in rule.evidence))


def _digest(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _records(evidence: dict[str, Any]) -> list[dict[str, Any]]:
    records = evidence.get("records")
    return records if isinstance(records, list) else []


def fingerprint(evidence: str) -> str:
    """The evidence without its volatile fields, records in canonical order, hashed."""
    parsed = json.loads(evidence) if evidence else {}
    stable = {k: v for k, v in parsed.items() if k not in VOLATILE and k != "records"}
    if isinstance(stable.get("resolution"), dict):
        stable["resolution"] = {k: stable["resolution"].get(k) for k in RESOLUTION_KEPT}
    records = [
        {k: v for k, v in record.items() if k not in VOLATILE} for record in _records(parsed) if isinstance(record, dict)
    ]
    stable["records"] = sorted(
        records, key=lambda r: json.dumps(r, ensure_ascii=False, sort_keys=True, default=str)
    )
    return _digest(stable)


def identity_values(rule_id: str, evidence: str) -> list[Any]:
    """The distinct identifying values of the evidence records, sorted (a JSON-ready list)."""
    columns = identity_columns(rule_id)
    if not columns:
        return []
    parsed = json.loads(evidence) if evidence else {}
    values = {
        json.dumps([record.get(c) for c in columns], ensure_ascii=False, default=str)
        for record in _records(parsed)
        if isinstance(record, dict)
    }
    found = [json.loads(v) for v in sorted(values)]
    return [v[0] if len(columns) == 1 else v for v in found]


def flag_key(rule_id: str, household_id: str, program: str, person: str, identity: list[Any],
             ordinal: int = 0) -> str:
    parts: list[Any] = [rule_id, household_id, program, person, identity]
    if ordinal:
        parts.append(ordinal)
    return _digest(parts)


def identify(flags: pl.DataFrame) -> pl.DataFrame:
    """`flags` (engine.run's frame) with `person`, `identity` (JSON text), `fingerprint` and
    `key` added; row order kept."""
    rows = flags.select("rule_id", "household_id", "program", "id_number", "level", "evidence").iter_rows()
    people, identities, prints, bases = [], [], [], []
    for rule_id, household_id, program, id_number, level, evidence in rows:
        person = (id_number or "") if level == "person" else ""
        identity = identity_values(rule_id, evidence)
        people.append(person)
        identities.append(identity)
        prints.append(fingerprint(evidence))
        bases.append((rule_id, household_id or "", program or "", person, json.dumps(identity, ensure_ascii=False)))
    # Ordinals for findings that share a key, in fingerprint order (then input order).
    order = sorted(range(len(bases)), key=lambda i: (bases[i], prints[i], i))
    ordinals = [0] * len(bases)
    for position, index in enumerate(order):
        if position and bases[order[position - 1]] == bases[index]:
            ordinals[index] = ordinals[order[position - 1]] + 1
    keys = [
        flag_key(b[0], b[1], b[2], b[3], identity, ordinal)
        for b, identity, ordinal in zip(bases, identities, ordinals, strict=True)
    ]
    return flags.with_columns(
        pl.Series("person", people, dtype=pl.String),
        pl.Series("identity", [json.dumps(i, ensure_ascii=False) for i in identities], dtype=pl.String),
        pl.Series("fingerprint", prints, dtype=pl.String),
        pl.Series("key", keys, dtype=pl.String),
    )
