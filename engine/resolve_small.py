"""engine.resolve over a few rows (an API request, a gathered group of them), in Python.

    per_row = resolutions(frame, hukou, as_of)    # frame: resolve's, numbered by ROW

Why: resolve's steps are four polars queries, each of a dozen joins, sorts and group-bys. Over
the few rows of a household each costs its planning and dispatch (~1–2 ms), not its work: a
group of 16 households spent ~1.6 ms finding there was nothing to look for and ~4 ms more when
there was. Here the same steps run on Python lists; only the hukou lookups (`HukouLookup`)
remain polars calls.

The same decisions, step for step (engine.resolve's docstring says what they are): who is looked
for, the three blocks, the scores (the same `score`), the ranking and the decision; or, for an
attempt the lookup knows a decision of (`HukouLookup`: engine.check's index knows the roll's),
that decision. Null
handling follows polars' joins (a null key matches nothing) and comparisons (a null compares to
nothing). tests/engine/test_resolve.py holds both paths equal over random rolls.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from . import keying, names
from .frames import frame_of_rows, series
from .hukou_lookup import SMALL, HukouLookup, blocks, collect
from .resolve import ACCEPT, MARGIN, REASONS, RESOLUTION, ROW, SHOWN, SUGGEST
from .scores import Reading, reading, score

__all__ = ["applied", "resolutions"]

_COLUMNS = [ROW, "id_number", "id_number_raw", "name", "region_code", "id_valid"]
_NAMED = {"name_key": pl.String, "town": pl.String}
# Sliced for a frame's rows: a struct Series of nulls costs ~40 µs to make.
_NO_RESOLUTION = pl.Series("resolution", [None] * SMALL, dtype=RESOLUTION)


def _key(name: str | None) -> str | None:
    """names.key_expr's value: null stays null (names.key gives "")."""
    return None if name is None else names.key(name)


def _town(region_code: str | None) -> str | None:
    return None if region_code is None else region_code[:9]


def _attempts(rows: list[tuple[Any, ...]], hukou: HukouLookup) -> list[tuple[Any, ...]]:
    """(ROW, id_number, id_number_raw, name, region_code, kind) of the rows to look for: invalid
    IDs; valid IDs hukou lacks; valid IDs hukou holds under a name whose key differs."""
    valid_ids = series("id_number", [row[1] for row in rows if row[5]], pl.String)
    held: dict[str, list[str | None]] = {}
    if valid_ids.len():
        holders = collect(hukou.holders(valid_ids), len(rows), hukou)
        for id_number, name in zip(holders.get_column("id_number").to_list(), holders.get_column("name").to_list(),
                                   strict=True):
            held.setdefault(id_number, []).append(name)
    found = []
    for rid, id_number, raw, name, region, valid in rows:
        if valid is None:  # neither filter of resolve's queries takes it
            continue
        if not valid:
            kind = "invalid"
        elif id_number not in held:
            kind = "absent"
        elif any(other is not None and name is not None and other != name and _key(other) != _key(name)
                 for other in held[id_number]):
            kind = "mismatch"
        else:
            continue
        found.append((rid, id_number, raw, name, region, kind))
    return found


def _pairs(attempts: list[tuple[Any, ...]], spellings: dict[int, Reading], hukou: HukouLookup,
           as_of: date | None) -> dict[tuple[int, str], tuple[str | None, str | None, str | None]]:
    """(ROW, candidate id_number) → the candidate's (name, name key, region_code)."""
    sought, born = blocks(((rid, kind, id_number) for rid, id_number, *_, kind in attempts), spellings, as_of)
    edit = [(rid, neighbour) for rid, text in sought for neighbour in keying.neighbours(text, as_of)]
    named_keys = [(rid, _key(name), _town(region)) for rid, _, _, name, region, _ in attempts]
    named = frame_of_rows(list(dict.fromkeys((k, t) for _, k, t in named_keys)), _NAMED)
    edit_ids = series("", [n for _, n in edit], pl.String)
    near = hukou.near(edit_ids, series("", [b for _, b in born], pl.String), named)
    records: dict[str, tuple[str | None, str | None, str | None]] = {}  # id_number → (name, key, region)
    by_born: dict[str, list[str]] = {}
    by_name: dict[tuple[str, str], list[str]] = {}
    found = collect(near, len(attempts), hukou)
    for id_number, name, region in zip(*(found.get_column(c).to_list() for c in ("id_number", "name", "region_code")),
                                       strict=True):
        if id_number is None or id_number in records:
            continue  # a null key joins nothing; one record per ID, as unique("id_number") keeps
        key, town = _key(name), _town(region)
        records[id_number] = (name, key, region)
        by_born.setdefault(id_number[:14], []).append(id_number)
        if key is not None and town is not None:
            by_name.setdefault((key, town), []).append(id_number)
    found: list[tuple[int, str]] = [(rid, n) for rid, n in edit if n in records]
    found += [(rid, n) for rid, b in born for n in by_born.get(b, [])]
    found += [(rid, n) for rid, k, t in named_keys if k is not None and t is not None for n in by_name.get((k, t), [])]
    return {(rid, n): records[n] for rid, n in dict.fromkeys(found)}


def _decision(kind: str, ranked: list[tuple[Any, ...]], margin: float | None) -> dict[str, Any]:
    """One RESOLUTION (engine.resolve._resolution) from the attempt's candidates, best first:
    (score, id_score, name_score, region_score, edits, id_number, name, region_code) each.
    `margin`: the best score less the second's, rounded as polars rounds (None: no second)."""
    candidates = [
        {"id_number": n, "name": name, "region_code": region, "score": total, "id_score": id_part,
         "name_score": name_part, "region_score": region_part}
        for total, id_part, name_part, region_part, _, n, name, region in ranked[:SHOWN]
    ]
    decided = {"reason": REASONS[kind], "status": "none", "suggested_id": None, "method": None, "score": None,
               "candidates": candidates}
    if not ranked:
        return decided
    top, _, top_name, _, top_edits, top_id, _, _ = ranked[0]
    likely = kind != "absent" and top_name >= names.COMPATIBLE and top >= SUGGEST
    clear = margin is None or margin >= MARGIN
    accepted = likely and clear and kind == "invalid" and top >= ACCEPT
    status = "weak" if not likely else "ambiguous" if not clear else "resolved" if accepted else "suggested"
    decided["status"] = status
    if status in ("resolved", "suggested"):
        decided["suggested_id"], decided["score"] = top_id, top
    if accepted:
        decided["method"] = "repaired" if top_edits == 1 else "fuzzy"
    return decided


def resolutions(frame: pl.DataFrame, hukou: HukouLookup, as_of: date | None) -> pl.Series | None:
    """The `resolution` column engine.resolve gives `frame` (its rows numbered by ROW), or
    None when no row is looked for (every column null)."""
    # The columns' values zipped, not a select: over a few rows a query costs more than the work.
    rows = list(zip(*[frame.get_column(c).to_list() for c in _COLUMNS], strict=True))
    attempts = _attempts(rows, hukou)
    if not attempts:
        return None
    decided = _known(attempts, hukou, as_of)
    if len(decided) < len(attempts):
        decided |= _decided([attempt for attempt in attempts if attempt[0] not in decided], hukou, as_of)
    return pl.Series("resolution", [decided.get(row[0]) for row in rows], dtype=RESOLUTION)


def _known(attempts: list[tuple[Any, ...]], hukou: HukouLookup, as_of: date | None) -> dict[int, dict[str, Any]]:
    """The decisions the lookup knows already (engine.check's HukouIndex.known: those made for
    the roll's own rows), by attempt's row number. A decision depends on its attempt (kind, ID,
    spelling, name, region) and hukou only, so a known one is the one made again."""
    known = getattr(hukou, "known", None)
    decisions = known(as_of) if known is not None else None
    if not decisions:
        return {}
    found = {}
    for rid, id_number, raw, name, region, kind in attempts:
        decision = decisions.get((kind, id_number, raw, name, region))
        if decision is not None:
            found[rid] = decision
    return found


def _decided(attempts: list[tuple[Any, ...]], hukou: HukouLookup, as_of: date | None) -> dict[int, dict[str, Any]]:
    """The decisions of these attempts, by row number: their candidates found, scored, ranked."""
    spellings = {rid: reading(raw) for rid, _, raw, _, _, _ in attempts}
    pairs = _pairs(attempts, spellings, hukou, as_of)
    of_attempt = {rid: (id_number, name, region, kind) for rid, id_number, _, name, region, kind in attempts}
    ranked: dict[int, list[tuple[Any, ...]]] = {rid: [] for rid in of_attempt}
    for (rid, candidate), (name, key, region) in pairs.items():
        holder, roll_name, roll_region, kind = of_attempt[rid]
        if kind == "mismatch" and candidate == holder:  # whom hukou names is not the right person
            continue
        scores = score(spellings[rid], _key(roll_name), roll_region, candidate, key, region)  # type: ignore[arg-type]
        ranked[rid].append((*scores, candidate, name, region))
    for candidates in ranked.values():
        candidates.sort(key=lambda c: c[5])  # id_number ascending among equal scores
        candidates.sort(key=lambda c: c[0], reverse=True)  # stable: score descending
    # Rounded by polars, as engine.resolve rounds: its half-to-even on decimals is not round()'s.
    seconds = [rid for rid, candidates in ranked.items() if len(candidates) > 1]
    margins: dict[int, float] = {}
    if seconds:  # a Series' round is a query (~60 µs), worth sparing when no attempt has two candidates
        differences = pl.Series([ranked[rid][0][0] - ranked[rid][1][0] for rid in seconds], dtype=pl.Float64)
        margins = dict(zip(seconds, differences.round(2).to_list(), strict=True))
    return {rid: _decision(of_attempt[rid][3], ranked[rid], margins.get(rid)) for rid in of_attempt}


def applied(frame: pl.DataFrame, per_row: pl.Series | None) -> pl.DataFrame:
    """resolve's last step over `frame` (its rows numbered by ROW) and `resolutions`' column, as
    column operations (a query costs ~150 µs here): `resolution`, `roll_id_valid`,
    `match_method` and `match_score` added in that order, and where a row's resolution was
    accepted, its `id_number`, `id_valid`, method and score (engine.resolve._applied)."""
    resolved = frame.clone()  # shallow: columns are replaced, not changed
    resolved.drop_in_place(ROW)
    valid, method = resolved.get_column("id_valid"), resolved.get_column("id_method")
    height = resolved.height
    if per_row is None:  # nobody looked for (most households)
        return resolved.hstack([_NO_RESOLUTION.slice(0, height), valid.alias("roll_id_valid"),
                                method.alias("match_method"),
                                series("match_score", [100.0] * height, pl.Float64)])
    decided = per_row.to_list()
    accepted = [d is not None and d["status"] == "resolved" for d in decided]
    if any(accepted):
        ids_ = [d["suggested_id"] if ok else old
                for d, ok, old in zip(decided, accepted, resolved.get_column("id_number").to_list(), strict=True)]
        valid_now = [True if ok else old for ok, old in zip(accepted, valid.to_list(), strict=True)]
        for name, dtype, values in (("id_number", pl.String, ids_), ("id_valid", pl.Boolean, valid_now)):
            resolved.replace_column(resolved.get_column_index(name), series(name, values, dtype))
    methods = [d["method"] if ok else old for d, ok, old in zip(decided, accepted, method.to_list(), strict=True)]
    scores = [d["score"] if ok else 100.0 for d, ok in zip(decided, accepted, strict=True)]
    return resolved.hstack([per_row, valid.alias("roll_id_valid"), series("match_method", methods, pl.String),
                            series("match_score", scores, pl.Float64)])
