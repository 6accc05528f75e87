"""The full run over keyed sources (engine.keyed): look the roll's people up, never scan.

    run_indexed(roll, sources, as_of, policy, rules, cadences) -> RunResult   (sources: Keyed)

engine.run.run on Parquet scans reads and hashes every source row each night (27.75M at city
scale) to find the few percent that belong to the roll's people. Keyed sources are sorted by ID
code once per delivery, so those rows are found by binary search and read from the mapped file,
page by page:

1. every source is narrowed to the roll's IDs (rules join sources on `id_number`, and only for
   roll people: a row of someone else is never joined), on two threads, hukou's first;
2. meanwhile the roll's IDs are resolved against hukou by lookup (engine.check's `HukouIndex`:
   the same engine.resolve, its blocks answered from the keyed frame and its name index; the
   holders of the roll's IDs are the hukou rows step 1 found);
3. the people resolution found, new to the roll, are looked up too;
4. engine.run.run runs the rules on the roll and the narrowed frames (the roll comes resolved,
   so its resolution is kept as it is).

The flags and resolutions are run()'s over the whole sources (tests/engine/test_indexed.py).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import polars as pl

from .check import HukouIndex
from .keyed import Keyed, codes_of
from .policy import Policy
from .resolve import resolve
from .run import RunResult, run

__all__ = ["run_indexed"]


class _LookedUp(HukouIndex):
    """The resolver's hukou, whose holders of the roll's IDs were looked up already (for the
    rules too): `rows`, the records of every roll ID."""

    def __init__(self, keyed: Keyed, rows: pl.DataFrame) -> None:
        super().__init__(keyed)
        self.rows = rows

    def holders(self, ids: pl.Series) -> pl.LazyFrame:
        return self.rows.lazy().select("id_number", "name")  # a superset: resolve joins them on ID


def run_indexed(
    roll: pl.LazyFrame | pl.DataFrame,
    sources: dict[str, Keyed],
    as_of: date,
    policy: Policy | None = None,
    rules: list[str] | None = None,
    cadences: list[str] | None = None,
    *,
    resolve_ids: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> RunResult:
    """run()'s result for `roll` over the keyed `sources` (see the module's docstring)."""
    step = on_step or (lambda _: None)
    frame = roll.collect() if isinstance(roll, pl.LazyFrame) else roll
    # The roll's IDs as given are looked up while they are resolved: resolution changes only
    # invalid IDs, and then the rows of the ID it replaced are no roll person's, never joined.
    # Only the people it finds, new to the roll, are looked up after it.
    codes = codes_of(frame.get_column("id_number").drop_nulls())  # codes_of keeps one of each
    resolving = resolve_ids and "hukou" in sources

    def rows_of(key: str) -> pl.DataFrame:
        found = sources[key].rows(codes.ids, codes, coded=True)
        if key != "hukou" or not resolving:  # the resolver reads hukou's pages again
            sources[key].release()
        return found

    with ThreadPoolExecutor(2) as pool:  # binary searches and gathers release the interpreter's lock
        first = sorted(sources, key=lambda key: key != "hukou")  # the resolver waits for hukou's
        looked_up = {key: pool.submit(rows_of, key) for key in first}
        new: pl.Series | None = None
        if resolving:
            step("核对身份证号 resolving roll IDs against hukou")
            frame = resolve(frame, _LookedUp(sources["hukou"], looked_up["hukou"].result()), as_of)
            accepted = codes_of(frame.filter(pl.col("resolution").struct.field("status") == "resolved")
                                .get_column("id_number"))
            new = accepted.ids.filter(pl.Series(~codes.holds(accepted.values)))
            sources["hukou"].release()
        step("查找 looking up the roll's people in every source")
        narrowed = {key: looked_up[key].result() for key in sources}
        if new is not None and new.len():
            more = codes_of(new)
            added = pool.map(lambda keyed: keyed.rows(more.ids, more, coded=True), sources.values())
            narrowed = {key: pl.concat([narrowed[key], rows]) for key, rows in zip(sources, added, strict=True)}
    return run(frame, narrowed, as_of, policy, rules, cadences, resolve_ids=resolving, on_step=on_step, coded=True)
