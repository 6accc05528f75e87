"""Where engine.resolve finds hukou candidates for the roll rows it looks for (its step 1).

    blocks(attempts, spellings, as_of) -> what the `edit` and `born` blocks look for
    ScanLookup(hukou)                  -> a HukouLookup over a hukou frame or scan, by joins
    collect(plan, rows, hukou)         -> a plan's frame, planned for the rows it holds

engine.check's HukouIndex is the other HukouLookup: it answers the same two questions from
keyed snapshots, by binary search. A roll of up to SMALL rows (an API request's household) is
resolved in Python by engine.resolve_small, whose per-step cost is not a query's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

import polars as pl

from . import ids, names
from .scores import Reading

__all__ = ["SMALL", "SPELLED_NAME", "HukouLookup", "ScanLookup", "blocks", "collect", "lazy"]

# Rows: a household or a few (engine.check), not a roll. Resolved in Python by
# engine.resolve_small: the same steps, without a query's fixed cost per step.
SMALL = 1000
# Hukou names whose key differs from the name as written: one character class of the white
# space, the full-width forms and the dots (an alternation of classes tests a 10M-row hukou
# ~1.7x slower).
SPELLED_NAME = names.SPACE[:-1] + "\uff01-\uff5e" + names.DOTS[1:]


def collect(plan: pl.LazyFrame | pl.DataFrame, rows: int, hukou: HukouLookup | None = None) -> pl.DataFrame:
    """Over a few rows, planning costs more than the work: no optimizer, no streaming engine.
    Not when the plan reads a hukou scan: without projection pushdown it would read every
    column of every row (a 3-row roll against a 100M-row hukou Parquet took 24 GB). A frame
    (a lookup's rows at hand) is taken as it is."""
    if isinstance(plan, pl.DataFrame):
        return plan
    if rows <= SMALL and getattr(hukou, "in_memory", True):
        return plan.collect(engine="in-memory", optimizations=pl.QueryOptFlags.none())
    return plan.collect()


def lazy(frame: Any) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


class HukouLookup(Protocol):
    """Where resolve finds hukou records. By default (`ScanLookup`) a hukou frame scanned by
    joins; engine.check.CheckIndex answers the same questions from an index, by lookup. A lookup
    may also know decisions made already (engine.check.HukouIndex.known: the roll's), which
    engine.resolve_small then takes instead of looking for their candidates."""

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
    """HukouLookup over a whole hukou frame: filters and joins, polars hashing the small side.
    A frame that carries ids.PERSON (engine.batch's hukou: the loader's scans give the codes)
    is searched by it: integers hash and compare in a quarter of the time 18-byte text takes,
    and an ID's first 14 characters are its code // 11,000 (10M rows: 0.41 s as text slices,
    0.07 s as codes)."""

    def __init__(self, hukou: pl.DataFrame | pl.LazyFrame) -> None:
        self.hukou = lazy(hukou)
        self.in_memory = isinstance(hukou, pl.DataFrame)  # else a scan: keep the optimizer (see collect)
        self.coded = ids.PERSON in self.hukou.collect_schema()

    def holders(self, ids_: pl.Series) -> pl.LazyFrame:
        # Narrow hukou to the roll's IDs first: the semi-join hashes the small roll side, whereas
        # a left join straight onto hukou would hash all of it (0.51 -> 0.14 s at city scale).
        if self.coded:
            codes = ids.codes_of_ids(ids_).alias(ids.PERSON).to_frame().lazy()
            return self.hukou.join(codes, on=ids.PERSON, how="semi").select("id_number", "name")
        return self.hukou.join(ids_.to_frame("id_number").lazy(), on="id_number", how="semi").select("id_number", "name")

    def near(self, edit_ids: pl.Series, born14: pl.Series, named: pl.DataFrame) -> pl.LazyFrame:
        # By ID; by name and township as written; and among the names written with spaces or
        # dots, by their key: key values are computed on those few only.
        records = self.hukou.select("id_number", "name", "region_code", *([ids.PERSON] if self.coded else []))
        wanted = named.lazy()
        town = pl.col("region_code").str.slice(0, 9).alias("town")
        by_text = pl.col("id_number").is_in(edit_ids.implode()) | pl.col("id_number").str.slice(0, 14).is_in(
            born14.implode())
        if self.coded:  # (born14 holds digits only: blocks' keys)
            edit_codes = ids.codes_of_ids(edit_ids)
            born_codes = born14.cast(pl.Int64, strict=False).drop_nulls()
            code = pl.col(ids.PERSON)
            # An ID with no code (none in a loaded hukou) by its text, those rows taken first: in
            # one query the two filters became one, whose text tests ran over every row (0.2 s
            # of the 0.6 s these blocks took over a city's hukou).
            uncoded = records.filter(code.is_null()).collect().lazy()
            by_id = pl.concat([
                records.filter(code.is_in(edit_codes.implode()) | (code // 11_000).is_in(born_codes.implode())),
                uncoded.filter(by_text),
            ]).drop(ids.PERSON)
            records = records.drop(ids.PERSON)
        else:
            by_id = records.filter(by_text)
        return pl.concat(
            [
                by_id,
                records.with_columns(town).join(wanted, left_on=["name", "town"], right_on=["name_key", "town"],
                                                how="semi").drop("town"),
                records.filter(pl.col("name").str.contains(SPELLED_NAME))
                .with_columns(names.key_expr(pl.col("name")).alias("name_key"), town)
                .join(wanted, on=["name_key", "town"], how="semi")
                .select("id_number", "name", "region_code"),
            ]
        )


def blocks(attempts: Iterable[tuple[int, str, str]], spellings: dict[int, Reading],
            as_of: date | None) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """What the `edit` and `born` blocks look for, per attempt (its row number, kind, id_number): the
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
