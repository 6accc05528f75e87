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

Steps 1–3 are polars queries over a roll; over a few rows (`hukou_lookup.SMALL`: an API request) the same
steps run in Python (engine.resolve_small), with the same result.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
from rapidfuzz.distance import OSA
from rapidfuzz.process import cpdist

from . import hukou_lookup, ids, keying, names
from .hukou_lookup import HukouLookup, ScanLookup, blocks, collect, lazy
from .scores import EDIT_COST, ID_WEIGHT, NAME_WEIGHT, REGION_WEIGHT, Reading, reading

__all__ = [
    "ACCEPT",
    "SUGGEST",
    "MARGIN",
    "SHOWN",
    "CANDIDATE",
    "RESOLUTION",
    "REASONS",
    "ROW",
    "reachable",
    "resolve",
]

ACCEPT = 85.0
SUGGEST = 75.0
MARGIN = 10.0
SHOWN = 5  # candidates listed in the evidence

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

# ---- the step --------------------------------------------------------------------------------

# The scratch column numbering a roll's rows while it is resolved (engine.resolve_small's too).
ROW = "_resolve_rid"


_ATTEMPTS = {ROW: pl.UInt32, "id_number": pl.String, "id_number_raw": pl.String, "name": pl.String,
             "region_code": pl.String, "kind": pl.String}



def _attempts(frame: pl.DataFrame, hukou: HukouLookup) -> pl.DataFrame:
    """Roll rows to look for: invalid IDs, valid IDs absent from hukou, valid IDs in hukou
    under another name (the name compared as name_mismatch compares it)."""
    columns = list(_ATTEMPTS)[:-1]
    valid_ids = frame.filter(pl.col("id_valid")).get_column("id_number")
    found = lazy(hukou.holders(valid_ids)).select(
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
    ).unique(ROW, keep="first", maintain_order=True).pipe(collect, frame.height, hukou)


def _pairs(attempts: pl.DataFrame, spellings: dict[int, Reading], hukou: HukouLookup,
           as_of: date | None) -> pl.DataFrame:
    """Candidate pairs (ROW, id_number, name_key, region_code of the hukou record) from the
    three blocks."""
    sought, born = blocks(attempts.select(ROW, "kind", "id_number").iter_rows(), spellings, as_of)
    at, codes = keying.neighbour_codes([text for _, text in sought], as_of)  # over columns: a roll's thousands
    edit_keys = pl.DataFrame({ROW: np.array([rid for rid, _ in sought], dtype=np.uint32)[at],
                              "id_number": pl.Series(codes, dtype=pl.Int64)},
                             schema={ROW: pl.UInt32, "id_number": pl.Int64}).with_columns(
        ids.from_code_expr(pl.col("id_number")).alias("id_number"))
    born_keys = pl.DataFrame(born, schema={ROW: pl.UInt32, "born14": pl.String}, orient="row")
    name_keys = attempts.select(
        ROW, names.key_expr(pl.col("name")).alias("name_key"), pl.col("region_code").str.slice(0, 9).alias("town")
    )
    # The few hukou records any block can match, keys computed on those only.
    town = pl.col("region_code").str.slice(0, 9).alias("town")
    named = name_keys.select("name_key", "town").unique()
    near = (
        lazy(hukou.near(edit_keys["id_number"], born_keys["born14"], named))
        .unique("id_number")
        .with_columns(
            pl.col("id_number").str.slice(0, 14).alias("born14"),
            names.key_expr(pl.col("name")).alias("name_key"),
            town,
        )
        .pipe(collect, attempts.height, hukou)
    )
    columns = [ROW, "id_number", "name", "name_key", "region_code"]
    return pl.concat(
        [
            edit_keys.lazy().join(near.lazy(), on="id_number").select(columns),
            born_keys.lazy().join(near.lazy(), on="born14").select(columns),
            name_keys.lazy().join(near.lazy(), on=["name_key", "town"]).select(columns),
        ]
    ).unique([ROW, "id_number"], keep="first").pipe(collect, attempts.height)


def _scored(attempts: pl.DataFrame, spellings: dict[int, Reading], pairs: pl.DataFrame) -> pl.DataFrame:
    """Every pair scored as engine.scores.score scores it, over columns: tens of thousands of pairs at city
    scale (66k: 0.39 s one by one in Python). The edits by rapidfuzz over both lists at once; the
    name similarity once per distinct pair of names; the region as expressions; Python's own
    `round` once per distinct total (numpy's rounds some halves the other way)."""
    rows = pairs.lazy().join(
        attempts.lazy().select(ROW, names.key_expr(pl.col("name")).alias("roll_key"),
                               pl.col("region_code").alias("roll_region")),
        on=ROW,
    ).pipe(collect, attempts.height)
    values_schema = dict(zip(["score", "id_score", "name_score", "region_score", "edits"],
                             [pl.Float64] * 4 + [pl.Int64], strict=True))
    if rows.height == 0:
        return pl.concat([rows.select(ROW, "id_number", "name", "region_code"), pl.DataFrame(schema=values_schema)],
                         how="horizontal")
    readings = [spellings[rid] for rid in rows.get_column(ROW).to_list()]
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
    id_part = np.maximum(0.0, 100.0 - EDIT_COST * edits)
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
    total = (ID_WEIGHT * id_part + NAME_WEIGHT * name_part + REGION_WEIGHT * region_part) / 20
    distinct, where = np.unique(total, return_inverse=True)
    rounded = np.array([round(value, 2) for value in distinct.tolist()], dtype=np.float64)[where]
    values = pl.DataFrame({"score": rounded, "id_score": id_part, "name_score": name_part,
                           "region_score": region_part, "edits": edits}, schema=values_schema)
    return pl.concat([rows.select(ROW, "id_number", "name", "region_code"), values], how="horizontal")


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
    kinds = attempts.lazy().select(ROW, "kind", pl.col("id_number").alias("holder"))
    ranked = (
        scored.lazy().join(kinds, on=ROW)
        # the holder of a mismatched ID is whom hukou names: the right person is someone else
        .filter((pl.col("kind") != "mismatch") | (pl.col("id_number") != pl.col("holder")))
        .sort([ROW, "score", "id_number"], descending=[False, True, False])
        .group_by(ROW, maintain_order=True)
        .agg(_TOP)
    )
    return (
        kinds.join(ranked, on=ROW, how="left")
        .select(ROW, _RESOLUTION)
        .cast({"resolution": RESOLUTION})
        .pipe(collect, attempts.height)
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
    frame = (frame.with_columns(missing) if missing else frame).with_row_index(ROW)
    lookup = ScanLookup(hukou) if isinstance(hukou, (pl.DataFrame, pl.LazyFrame)) else hukou
    per_row: pl.Series | None = None
    if frame.height <= hukou_lookup.SMALL:
        from .resolve_small import applied, resolutions  # it builds on this module's parts

        return applied(frame, resolutions(frame, lookup, as_of))
    if (attempts := _attempts(frame, lookup)).height:
        spellings = {rid: reading(raw) for rid, raw in attempts.select(ROW, "id_number_raw").iter_rows()}
        scored = _scored(attempts, spellings, _pairs(attempts, spellings, lookup, as_of))
        decided = _decisions(attempts, scored)
        # Joined on the row number alone, so the roll's other columns are shared, not copied.
        per_row = frame.select(ROW).join(decided, on=ROW, how="left", maintain_order="left")["resolution"]
    if per_row is None:  # every ID valid and in hukou under its name (most households): nothing to look for
        return frame.lazy().with_columns(_UNCHANGED).drop(ROW).pipe(collect, frame.height)
    return frame.lazy().with_columns(per_row).with_columns(_APPLIED).drop(ROW).pipe(collect, frame.height)


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


# ---- what resolution can reach, known before hukou is read -------------------------------------

# The least id_score a candidate can be accepted with: its name and region score 100 at most.
_LEAST_ID_SCORE = (ACCEPT * (ID_WEIGHT + NAME_WEIGHT + REGION_WEIGHT) - 100.0 * (NAME_WEIGHT + REGION_WEIGHT)) / ID_WEIGHT
_EDITS_ACCEPTED = int((100.0 - _LEAST_ID_SCORE) // EDIT_COST)  # keying errors an accepted candidate can be from the spelling
_DIGITS_ACCEPTED = math.ceil(_LEAST_ID_SCORE * 18 / 100 - 1e-9)  # digits Excel kept, at least, for an accepted one


def reachable(roll: pl.DataFrame, as_of: date | None = None) -> pl.Series | None:
    """Every ID that `resolve` could accept for a row of `roll` (ID text; a superset, found from
    the roll alone): engine.batch narrows the other sources to these and the roll's own IDs
    while hukou is read and the roll resolved against it. None when the scores would accept a
    candidate more than one keying error away (then no small set is known).

    Why a superset: only an `invalid` row is resolved, to a candidate scoring at least ACCEPT.
    Its name and region score 100 at most, so its id_score is at least _LEAST_ID_SCORE (70): it
    is one keying error from the spelling at most (keying.neighbours lists every valid ID that
    is), or it agrees with the digits Excel kept, and at least _DIGITS_ACCEPTED (13) of them
    (every such ID is listed). A resolution outside this set would be a bug in the reasoning:
    engine.batch checks and then reads the sources again."""
    if _EDITS_ACCEPTED > 1:
        return None
    if "roll_id_valid" in roll.columns:  # resolved already: resolve changes nothing
        return pl.Series("id_number", [], pl.String)
    valid = pl.col("id_valid") if "id_valid" in roll.columns else ids.valid_expr(pl.col("id_number"), as_of)
    raw = "id_number_raw" if "id_number_raw" in roll.columns else "id_number"
    spellings = [reading(text) for text in roll.filter(~valid).get_column(raw).to_list()]
    found = [keying.neighbour_codes([spelling.text for spelling in spellings], as_of)[1]]
    found += [keying.agreeing_codes(s.kept, s.rounded) for s in spellings if len(s.kept) >= _DIGITS_ACCEPTED]
    codes = pl.Series("code", np.concatenate(found), pl.Int64).unique()
    return codes.to_frame().select(ids.from_code_expr(pl.col("code")).alias("id_number")).to_series()
