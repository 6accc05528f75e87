"""Find the hukou person behind a dirty or wrong roll ID, before the rules run.

    resolve(roll, hukou, as_of) -> the roll, with resolved IDs and a `resolution` per attempt

Precision first: a wrong match sends a caseworker to the wrong family, a missed one only leaves
the ID to be corrected by hand (id_invalid still fires for it). So a candidate is accepted only
when the evidence is strong and no other hukou person comes close; otherwise the row stays as it
was and the flag lists the candidates considered.

Who is looked for (an *attempt*, one per roll row):
* `invalid` — the ID is invalid after normalization: resolved when the evidence allows;
* `absent`  — the ID is valid but hukou does not have it: candidates are looked for and listed
  in the evidence, never used nor suggested. A valid ID passed the check character: it is
  somebody's number, most likely of a person hukou lacks (a same-name, same-birthday neighbour
  is the hard decoy), not a typo; a legacy 15-digit ID has no check character, but repairing
  one was the only source of wrong matches in benchmarks/accuracy.py under heavy decoys;
* `mismatch` — the ID is valid and in hukou under another name: never re-pointed (a valid ID
  found in hukou is kept); the likely right person (the roll's name, an ID at most two keying
  errors away: the roll ID was mistyped into someone else's) is *suggested* for name_mismatch.

1. Blocking, polars joins against hukou on what survives of the spelling:
   * `edit`: the valid IDs one keying error away from it (keying.neighbours) = hukou id_number;
   * `born`: region and birth date, its first 14 characters when they are digits and a real
     date (or the first 14 digits Excel kept) = the first 14 of hukou's IDs;
   * `name`: the normalized name in the row's township (region_code[:9]) = hukou's.
2. Scoring, in Python on the few candidate pairs (rapidfuzz, pypinyin):
   * `id_score` 100 − 20 per edit between the spelling and the candidate (optimal string
     alignment: a swap of two adjacent digits is one edit; a 15-digit spelling is compared with
     the candidate's legacy form); for Excel damage, 100 × the digits Excel kept ÷ 18 when the
     candidate agrees with every one of them (15 cut for `…000`, the mantissa's rounded for
     `3.20303E+17`);
   * `name_score` names.similarity: 100 equal, 95 homophone, below 90 otherwise;
   * `region_score` 100 where the roll says (village or township), 60 same township, 30 same
     county, 0 elsewhere;
   * `score` = (10 × id + 9 × name + 1 × region) ÷ 20.
3. Decision, in polars over the ranked candidates: the best is accepted when its score ≥
   ACCEPT (85), its name is compatible (≥ 90: the same, or a homophone) and it leads the
   runner-up by ≥ MARGIN (10). `repaired` when it is one edit from the spelling, `fuzzy`
   otherwise. A candidate that
   passes all but ACCEPT with a score ≥ SUGGEST (75: the right name two edits away) is only
   *suggested*: named in the evidence, not used. For a `mismatch` row that is all it can be.
   Only `invalid` rows are resolved. Every attempt lists its best candidates with their scores.

What the numbers mean. One keying error with the right name where the roll says scores 90; with
a homophone 87.75; with the right name in another county (the person moved) exactly 85. Two
edits score at most 80 (suggested at best), and a same-name, same-birthday neighbour two edits
away stays 10 behind a one-edit candidate. Excel's `…000` keeps 15 digits (id 83.3): with the
right name it scores 91.7, and a namesake twin sharing those 15 digits ties it, so it stays
unresolved. `3.20303E+17` keeps 6 digits (id 33.3): never enough.

Steps 1–3 are polars queries over a roll; over a few rows (`_SMALL`: an API request) the same
steps run in Python (engine.resolve_small), with the same result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import numpy as np
import polars as pl
from rapidfuzz.distance import OSA
from rapidfuzz.process import cpdist

from . import ids, keying, names

__all__ = [
    "ACCEPT",
    "SUGGEST",
    "MARGIN",
    "SHOWN",
    "CANDIDATE",
    "RESOLUTION",
    "REASONS",
    "Reading",
    "reading",
    "region_score",
    "score",
    "resolve",
    "HukouLookup",
    "ScanLookup",
]

ACCEPT = 85.0
SUGGEST = 75.0
MARGIN = 10.0
SHOWN = 5  # candidates listed in the evidence
_EDIT = 20.0  # id_score lost per edit
_W_ID, _W_NAME, _W_REGION = 10, 9, 1

CANDIDATE = pl.Struct(
    {
        "id_number": pl.String,
        "name": pl.String,
        "region_code": pl.String,
        "score": pl.Float64,
        "id_score": pl.Float64,
        "name_score": pl.Float64,
        "region_score": pl.Float64,
    }
)
# Why a row is looked for: its ID is invalid, valid but not in hukou, in hukou under another name.
REASONS = {"invalid": "id_invalid", "absent": "not_in_hukou", "mismatch": "name_differs"}
# reason: REASONS' values; status: see `_decisions`
RESOLUTION = pl.Struct(
    {
        "reason": pl.String,
        "status": pl.String,
        "suggested_id": pl.String,
        "method": pl.String,
        "score": pl.Float64,
        "candidates": pl.List(CANDIDATE),
    }
)

# After ids.clean (upper case, no spaces): 3.20303E+17, 3.203031990E17, ...
_SCIENTIFIC = re.compile(r"^([0-9])(?:\.([0-9]+))?E\+?([0-9]+)$")
_EXCEL_CUT = re.compile(r"^[0-9]{15}000$")
_SPELLED_NAME = r"[\s•‧・･‐\.．·]"  # hukou names whose key differs from the name as written


# ---- what a spelling still says ------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """A roll ID spelling as evidence: the cleaned text, and for Excel damage the leading digits
    Excel kept (`kept`): cut to 15 (Excel stores 15 significant digits and turns the rest into
    zeros), or rounded to the digits its scientific display shows (`rounded`)."""

    text: str
    kept: str = ""
    rounded: bool = False

    def agrees(self, candidate: str) -> bool:
        """True when Excel's damage of `candidate` could have left `kept`."""
        if not self.kept or not candidate.isdigit():  # an ID ending in X stays text in Excel
            return False
        scale = 10 ** (18 - len(self.kept))
        value = (int(candidate) + scale // 2) if self.rounded else int(candidate)
        return value // scale == int(self.kept)

    def edits(self, candidate: str) -> int:
        """Keying errors between the spelling and `candidate` (a 15-digit spelling is compared
        with the candidate's legacy form)."""
        if len(self.text) == 15 and candidate[6:8] == "19":
            return OSA.distance(self.text, candidate[:6] + candidate[8:17])
        return OSA.distance(self.text, candidate)

    def id_score(self, candidate: str) -> tuple[float, int]:
        edits = self.edits(candidate)
        found = max(0.0, 100.0 - _EDIT * edits)
        if self.agrees(candidate):
            found = max(found, round(100.0 * len(self.kept) / 18, 2))
        return found, edits

    def born14(self, as_of: date | None) -> str | None:
        """Region and birth date (the first 14 characters) when the spelling still has them."""
        head = self.kept if len(self.kept) >= 15 else self.text
        if len(head) < 14 or not head[:14].isdigit():
            return None
        born = ids.birth_date(head[:14] + "0000")
        return head[:14] if born is not None and (as_of is None or born <= as_of) else None


def reading(raw: object) -> Reading:
    """Read a roll spelling: Excel's scientific notation of an 18-digit number (`3.20303E+17`)
    keeps its mantissa's digits, rounded; an invalid 18-digit number ending in 000 keeps its
    first 15, cut."""
    text = ids.clean(raw) or ""
    scientific = _SCIENTIFIC.match(text)
    if scientific:
        head, tail, exponent = scientific.groups()
        digits = (head + (tail or "")).rstrip("0") or "0"
        if int(exponent) == 17 and len(digits) <= 18:
            return Reading(text, digits, rounded=True)
        return Reading(text)
    if _EXCEL_CUT.match(text) and not ids.is_valid(text):
        return Reading(text, text[:15])
    return Reading(text)


# ---- scores ----------------------------------------------------------------------------------


def region_score(roll_region: str | None, hukou_region: str | None) -> float:
    """100 where the roll says (its code is a prefix of hukou's, or the reverse), 60 same
    township (9 digits), 30 same county (6 digits), else 0."""
    if not roll_region or not hukou_region:
        return 0.0
    if hukou_region.startswith(roll_region) or roll_region.startswith(hukou_region):
        return 100.0
    if len(roll_region) >= 9 and len(hukou_region) >= 9 and roll_region[:9] == hukou_region[:9]:
        return 60.0
    return 30.0 if roll_region[:6] == hukou_region[:6] else 0.0


def score(spelling: Reading, roll_name_key: str, roll_region: str | None, candidate_id: str,
          candidate_name_key: str, candidate_region: str | None) -> tuple[float, float, float, float, int]:
    """One hukou candidate against a roll row: (score, id_score, name_score, region_score,
    edits). Names are given as names.key values."""
    id_part, edits = spelling.id_score(candidate_id)
    name_part = names.key_similarity(roll_name_key, candidate_name_key)
    region_part = region_score(roll_region, candidate_region)
    total = round((_W_ID * id_part + _W_NAME * name_part + _W_REGION * region_part) / 20, 2)
    return total, id_part, name_part, region_part, edits


# ---- the step --------------------------------------------------------------------------------

_RID = "_resolve_rid"


# Rows: a household or a few (engine.check), not a roll. Resolved in Python by
# engine.resolve_small: the same steps, without a query's fixed cost per step.
_SMALL = 1000


def _collect(plan: pl.LazyFrame | pl.DataFrame, rows: int, hukou: HukouLookup | None = None) -> pl.DataFrame:
    """Over a few rows, planning costs more than the work: no optimizer, no streaming engine.
    Not when the plan reads a hukou scan: without projection pushdown it would read every
    column of every row (a 3-row roll against a 100M-row hukou Parquet took 24 GB). A frame
    (a lookup's rows at hand) is taken as it is."""
    if isinstance(plan, pl.DataFrame):
        return plan
    if rows <= _SMALL and getattr(hukou, "in_memory", True):
        return plan.collect(engine="in-memory", optimizations=pl.QueryOptFlags.none())
    return plan.collect()


def _lazy(frame: Any) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


class HukouLookup(Protocol):
    """Where resolve finds hukou records. By default (`ScanLookup`) a hukou frame scanned by
    joins; engine.check.CheckIndex answers the same questions from an index, by lookup."""

    # Each answers with a plan, or with a frame when it has the rows at hand: a query to pick two
    # columns of a few rows costs ~30 µs, its columns picked ~9 µs.

    def holders(self, ids: pl.Series) -> pl.LazyFrame | pl.DataFrame:
        """(id_number, name) of the hukou records whose id_number is one of `ids` (records of
        other IDs do no harm: they are joined on the ID)."""
        ...

    def near(self, edit_ids: pl.Series, born14: pl.Series, named: pl.DataFrame) -> pl.LazyFrame | pl.DataFrame:
        """(id_number, name, region_code) of the hukou records any block can match: id_number in
        `edit_ids`, its first 14 characters in `born14`, or (names.key of its name, its region
        code's first 9) a (name_key, town) of `named`. More records do no harm: each block is
        then joined on its exact key."""
        ...


class ScanLookup:
    """HukouLookup over a whole hukou frame: filters and joins, polars hashing the small side."""

    def __init__(self, hukou: pl.DataFrame | pl.LazyFrame) -> None:
        self.hukou = _lazy(hukou)
        self.in_memory = isinstance(hukou, pl.DataFrame)  # else a scan: keep the optimizer (see _collect)

    def holders(self, ids: pl.Series) -> pl.LazyFrame:
        # Narrow hukou to the roll's IDs first: the semi-join hashes the small roll side, whereas
        # a left join straight onto hukou would hash all of it (0.51 -> 0.14 s at city scale).
        return self.hukou.join(ids.to_frame("id_number").lazy(), on="id_number", how="semi").select("id_number", "name")

    def near(self, edit_ids: pl.Series, born14: pl.Series, named: pl.DataFrame) -> pl.LazyFrame:
        # By ID; by name and township as written; and among the names written with spaces or
        # dots, by their key: key values are computed on those few only.
        records = self.hukou.select("id_number", "name", "region_code")
        wanted = named.lazy()
        town = pl.col("region_code").str.slice(0, 9).alias("town")
        return pl.concat(
            [
                records.filter(
                    pl.col("id_number").is_in(edit_ids.implode())
                    | pl.col("id_number").str.slice(0, 14).is_in(born14.implode())
                ),
                records.with_columns(town).join(wanted, left_on=["name", "town"], right_on=["name_key", "town"],
                                                how="semi").drop("town"),
                records.filter(pl.col("name").str.contains(_SPELLED_NAME))
                .with_columns(names.key_expr(pl.col("name")).alias("name_key"), town)
                .join(wanted, on=["name_key", "town"], how="semi")
                .select("id_number", "name", "region_code"),
            ]
        )


_ATTEMPTS = {_RID: pl.UInt32, "id_number": pl.String, "id_number_raw": pl.String, "name": pl.String,
             "region_code": pl.String, "kind": pl.String}



def _attempts(frame: pl.DataFrame, hukou: HukouLookup) -> pl.DataFrame:
    """Roll rows to look for: invalid IDs, valid IDs absent from hukou, valid IDs in hukou
    under another name (the name compared as name_mismatch compares it)."""
    columns = list(_ATTEMPTS)[:-1]
    valid_ids = frame.filter(pl.col("id_valid")).get_column("id_number")
    found = _lazy(hukou.holders(valid_ids)).select(
        "id_number", pl.col("name").alias("_hukou_name"), pl.lit(True).alias("_hit")
    )
    rows = frame.lazy().select(*columns, "id_valid")
    # One join; the names' keys are computed only where the spellings differ at all.
    valid = (
        rows.filter(pl.col("id_valid"))
        .join(found, on="id_number", how="left")
        .filter(pl.col("_hit").is_null() | (pl.col("name") != pl.col("_hukou_name")))
    )
    differs = names.key_expr(pl.col("name")) != names.key_expr(pl.col("_hukou_name"))
    return pl.concat(
        [
            rows.filter(~pl.col("id_valid")).select(columns).with_columns(pl.lit("invalid").alias("kind")),
            valid.filter(pl.col("_hit").is_null()).select(columns).with_columns(pl.lit("absent").alias("kind")),
            valid.filter(pl.col("_hit") & differs).select(columns).with_columns(pl.lit("mismatch").alias("kind")),
        ]
    ).unique(_RID, keep="first", maintain_order=True).pipe(_collect, frame.height, hukou)


def _blocks(attempts: Iterable[tuple[int, str, str]], spellings: dict[int, Reading],
            as_of: date | None) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """What the `edit` and `born` blocks look for, per attempt (_RID, kind, id_number): the
    spellings whose neighbours (keying.neighbours: the valid IDs one keying error away) are
    wanted; the first 14 characters."""
    sought: list[tuple[int, str]] = []
    born: list[tuple[int, str]] = []
    for rid, kind, id_number in attempts:
        spelling = spellings[rid]
        if kind == "invalid" or len(spelling.text) == 15:  # legacy IDs have no check character
            sought.append((rid, spelling.text))
        key = id_number[:14] if kind != "invalid" else spelling.born14(as_of)
        if key:
            born.append((rid, key))
    return sought, born


def _pairs(attempts: pl.DataFrame, spellings: dict[int, Reading], hukou: HukouLookup,
           as_of: date | None) -> pl.DataFrame:
    """Candidate pairs (_RID, id_number, name_key, region_code of the hukou record) from the
    three blocks."""
    sought, born = _blocks(attempts.select(_RID, "kind", "id_number").iter_rows(), spellings, as_of)
    at, codes = keying.neighbour_codes([text for _, text in sought], as_of)  # over columns: a roll's thousands
    edit_keys = pl.DataFrame({_RID: np.array([rid for rid, _ in sought], dtype=np.uint32)[at],
                              "id_number": pl.Series(codes, dtype=pl.Int64)},
                             schema={_RID: pl.UInt32, "id_number": pl.Int64}).with_columns(
        ids.from_code_expr(pl.col("id_number")).alias("id_number"))
    born_keys = pl.DataFrame(born, schema={_RID: pl.UInt32, "born14": pl.String}, orient="row")
    name_keys = attempts.select(
        _RID, names.key_expr(pl.col("name")).alias("name_key"), pl.col("region_code").str.slice(0, 9).alias("town")
    )
    # The few hukou records any block can match, keys computed on those only.
    town = pl.col("region_code").str.slice(0, 9).alias("town")
    named = name_keys.select("name_key", "town").unique()
    near = (
        _lazy(hukou.near(edit_keys["id_number"], born_keys["born14"], named))
        .unique("id_number")
        .with_columns(
            pl.col("id_number").str.slice(0, 14).alias("born14"),
            names.key_expr(pl.col("name")).alias("name_key"),
            town,
        )
        .pipe(_collect, attempts.height, hukou)
    )
    columns = [_RID, "id_number", "name", "name_key", "region_code"]
    return pl.concat(
        [
            edit_keys.lazy().join(near.lazy(), on="id_number").select(columns),
            born_keys.lazy().join(near.lazy(), on="born14").select(columns),
            name_keys.lazy().join(near.lazy(), on=["name_key", "town"]).select(columns),
        ]
    ).unique([_RID, "id_number"], keep="first").pipe(_collect, attempts.height)


def _scored(attempts: pl.DataFrame, spellings: dict[int, Reading], pairs: pl.DataFrame) -> pl.DataFrame:
    """Every pair scored as `score` scores it, over columns: tens of thousands of pairs at city
    scale (66k: 0.39 s one by one in Python). The edits by rapidfuzz over both lists at once; the
    name similarity once per distinct pair of names; the region as expressions; Python's own
    `round` once per distinct total (numpy's rounds some halves the other way)."""
    rows = pairs.lazy().join(
        attempts.lazy().select(_RID, names.key_expr(pl.col("name")).alias("roll_key"),
                               pl.col("region_code").alias("roll_region")),
        on=_RID,
    ).pipe(_collect, attempts.height)
    values_schema = dict(zip(["score", "id_score", "name_score", "region_score", "edits"],
                             [pl.Float64] * 4 + [pl.Int64], strict=True))
    if rows.height == 0:
        return pl.concat([rows.select(_RID, "id_number", "name", "region_code"), pl.DataFrame(schema=values_schema)],
                         how="horizontal")
    readings = [spellings[rid] for rid in rows.get_column(_RID).to_list()]
    spelled = pl.Series("spelled", [r.text for r in readings], dtype=pl.String)
    candidate, roll_region, region = pl.col("id_number"), pl.col("roll_region"), pl.col("region_code")
    legacy = (pl.col("spelled").str.len_chars() == 15) & (candidate.str.slice(6, 2) == "19")
    empty = roll_region.is_null() | region.is_null() | (roll_region == "") | (region == "")
    same_town = ((roll_region.str.len_chars() >= 9) & (region.str.len_chars() >= 9)
                 & (roll_region.str.slice(0, 9) == region.str.slice(0, 9)))
    columns = rows.with_columns(spelled).select(
        pl.when(legacy).then(candidate.str.slice(0, 6) + candidate.str.slice(8, 9)).otherwise(candidate)
        .alias("compared"),
        pl.when(empty).then(0.0)
        .when(region.str.starts_with(roll_region) | roll_region.str.starts_with(region)).then(100.0)
        .when(same_town).then(60.0)
        .when(roll_region.str.slice(0, 6) == region.str.slice(0, 6)).then(30.0)
        .otherwise(0.0).alias("region_score"),
    )
    edits = cpdist(spelled.to_list(), columns.get_column("compared").to_list(), scorer=OSA.distance,
                   dtype=np.int64)
    id_part = np.maximum(0.0, 100.0 - _EDIT * edits)
    damaged = [at for at, reading_ in enumerate(readings) if reading_.kept]  # Excel's damage: a few rows
    if damaged:
        candidates = rows.get_column("id_number").gather(damaged).to_list()
        for at, candidate_id in zip(damaged, candidates, strict=True):
            if readings[at].agrees(candidate_id):
                id_part[at] = max(id_part[at], round(100.0 * len(readings[at].kept) / 18, 2))
    named = rows.select("roll_key", "name_key")
    distinct_names = named.unique()
    similar = distinct_names.with_columns(
        pl.Series("name_score", [names.key_similarity(a, b) for a, b in distinct_names.iter_rows()], dtype=pl.Float64)
    )
    name_part = named.join(similar, on=["roll_key", "name_key"], how="left", maintain_order="left",
                           nulls_equal=True).get_column("name_score").to_numpy()
    region_part = columns.get_column("region_score").to_numpy()
    total = (_W_ID * id_part + _W_NAME * name_part + _W_REGION * region_part) / 20
    distinct, where = np.unique(total, return_inverse=True)
    rounded = np.array([round(value, 2) for value in distinct.tolist()], dtype=np.float64)[where]
    values = pl.DataFrame({"score": rounded, "id_score": id_part, "name_score": name_part,
                           "region_score": region_part, "edits": edits}, schema=values_schema)
    return pl.concat([rows.select(_RID, "id_number", "name", "region_code"), values], how="horizontal")


# The decision as expressions, built once (building them costs more than running them over
# one household's few attempts).
_TOP = [
    pl.col("id_number").first().alias("top_id"),
    pl.col("score").first().alias("top"),
    pl.col("name_score").first().alias("top_name"),
    pl.col("edits").first().alias("top_edits"),
    pl.col("score").get(1, null_on_oob=True).alias("second"),
    pl.struct(*CANDIDATE.to_schema()).head(SHOWN).alias("candidates"),
]


def _resolution() -> pl.Expr:
    kind = pl.col("kind")
    # A valid ID (`absent`) is somebody's number: its candidates are only listed.
    likely = (kind != "absent") & (pl.col("top_name") >= names.COMPATIBLE) & (pl.col("top") >= SUGGEST)
    clear = pl.col("second").is_null() | ((pl.col("top") - pl.col("second")).round(2) >= MARGIN)
    accepted = likely & clear & (kind == "invalid") & (pl.col("top") >= ACCEPT)
    status = (
        pl.when(pl.col("top_id").is_null()).then(pl.lit("none"))
        .when(~likely).then(pl.lit("weak"))
        .when(~clear).then(pl.lit("ambiguous"))
        .when(accepted).then(pl.lit("resolved"))
        .otherwise(pl.lit("suggested"))
    )
    named = status.is_in(["resolved", "suggested"])
    return pl.struct(
        kind.replace_strict(REASONS, return_dtype=pl.String).alias("reason"),
        status.alias("status"),
        pl.when(named).then(pl.col("top_id")).alias("suggested_id"),
        pl.when(accepted).then(pl.when(pl.col("top_edits") == 1).then(pl.lit("repaired"))
                               .otherwise(pl.lit("fuzzy"))).alias("method"),
        pl.when(named).then(pl.col("top")).alias("score"),
        pl.col("candidates").fill_null(pl.lit([], dtype=pl.List(CANDIDATE))),
    ).alias("resolution")


_RESOLUTION = _resolution()


def _decisions(attempts: pl.DataFrame, scored: pl.DataFrame) -> pl.DataFrame:
    """One RESOLUTION per attempt (see the module's docstring, "Decision").

    status: `resolved` (accepted: the rules use it), `suggested` (likely, not used: for the
    caseworker), `ambiguous` (likely, but another candidate within MARGIN), `weak` (no likely
    candidate), `none` (no candidate at all)."""
    kinds = attempts.lazy().select(_RID, "kind", pl.col("id_number").alias("holder"))
    ranked = (
        scored.lazy().join(kinds, on=_RID)
        # the holder of a mismatched ID is whom hukou names: the right person is someone else
        .filter((pl.col("kind") != "mismatch") | (pl.col("id_number") != pl.col("holder")))
        .sort([_RID, "score", "id_number"], descending=[False, True, False])
        .group_by(_RID, maintain_order=True)
        .agg(_TOP)
    )
    return (
        kinds.join(ranked, on=_RID, how="left")
        .select(_RID, _RESOLUTION)
        .cast({"resolution": RESOLUTION})
        .pipe(_collect, attempts.height)
    )


def resolve(roll: pl.DataFrame | pl.LazyFrame, hukou: pl.DataFrame | pl.LazyFrame | HukouLookup,
            as_of: date | None = None) -> pl.DataFrame:
    """The roll (a loaded frame: docs/design.md, "Loaded frames") with the resolution applied:

    * `id_number`, `id_valid`: the resolved ID (and True) where a candidate was accepted;
    * `roll_id_valid`: the roll ID's own validity (id_invalid reads it);
    * `match_method`, `match_score`: `repaired`/`fuzzy` and the score where resolved, else the
      loader's `id_method` and 100;
    * `resolution` (RESOLUTION): per attempt, what was found; null for rows not looked for.
    """
    frame = roll if isinstance(roll, pl.DataFrame) else roll.collect()
    names = set(frame.columns)
    if "roll_id_valid" in names:  # resolved already: its spelling's validity is known
        return frame
    defaults = {
        "id_number_raw": lambda: pl.col("id_number"),
        "id_method": lambda: pl.lit("exact"),
        "id_valid": lambda: ids.valid_expr(pl.col("id_number"), as_of),
    }
    missing = [expr().alias(name) for name, expr in defaults.items() if name not in names]
    frame = (frame.with_columns(missing) if missing else frame).with_row_index(_RID)
    lookup = ScanLookup(hukou) if isinstance(hukou, (pl.DataFrame, pl.LazyFrame)) else hukou
    per_row: pl.Series | None = None
    if frame.height <= _SMALL:
        from .resolve_small import applied, resolutions  # it builds on this module's parts

        return applied(frame, resolutions(frame, lookup, as_of))
    if (attempts := _attempts(frame, lookup)).height:
        spellings = {rid: reading(raw) for rid, raw in attempts.select(_RID, "id_number_raw").iter_rows()}
        scored = _scored(attempts, spellings, _pairs(attempts, spellings, lookup, as_of))
        decided = _decisions(attempts, scored)
        # Joined on the row number alone, so the roll's other columns are shared, not copied.
        per_row = frame.select(_RID).join(decided, on=_RID, how="left", maintain_order="left")["resolution"]
    if per_row is None:  # every ID valid and in hukou under its name (most households): nothing to look for
        return frame.lazy().with_columns(_UNCHANGED).drop(_RID).pipe(_collect, frame.height)
    return frame.lazy().with_columns(per_row).with_columns(_APPLIED).drop(_RID).pipe(_collect, frame.height)


def _applied() -> list[pl.Expr]:
    """The columns a row's resolution sets (built once: see _RESOLUTION)."""
    resolution = pl.col("resolution")
    accepted = resolution.struct.field("status") == "resolved"
    return [
        pl.col("id_valid").alias("roll_id_valid"),
        pl.when(accepted).then(resolution.struct.field("suggested_id")).otherwise(pl.col("id_number"))
        .alias("id_number"),
        (pl.col("id_valid") | accepted.fill_null(False)).alias("id_valid"),
        pl.when(accepted).then(resolution.struct.field("method")).otherwise(pl.col("id_method"))
        .alias("match_method"),
        pl.when(accepted).then(resolution.struct.field("score")).otherwise(pl.lit(100.0))
        .alias("match_score"),
    ]


_APPLIED = _applied()
# What _APPLIED sets where no row was looked for (resolution null), in the same column order.
_UNCHANGED = [
    pl.lit(None, RESOLUTION).alias("resolution"),
    pl.col("id_valid").alias("roll_id_valid"),
    pl.col("id_method").alias("match_method"),
    pl.lit(100.0).alias("match_score"),
]
