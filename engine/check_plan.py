"""engine.run's rules, compiled once into polars plans that are fed a small roll.

Compiling the 19 rule plans (Narwhals expressions turned into polars ones) costs tens of
milliseconds, far more than running them over one household. So `CompiledRun` compiles them once,
against placeholder inputs (polars IO sources, `polars.io.plugins.register_io_source`); each call
only hands the placeholders the household's frames:

    compiled = CompiledRun(roll_schema, source_schemas, as_of, policy, selected)
    flags, rows = compiled.flags(roll, sources)     # roll: resolved, not yet prepared

Over a few rows a polars operation costs its fixed overhead (tens of µs: planning, waking the
thread pool), not its work, so what pays is running fewer of them:

1. the rules that cannot fire are not run: those whose source has no record of the roll's
   persons (engine.patterns.needs_records), those whose screen says so (engine.screens: a
   necessary condition decided in Python over the few rows; most rules find nothing in a check,
   and each plan run costs its fixed overhead), and the rules of programs the checked households
   are not in (engine.run.fold flags a row, or a household, only for a program of the rule's);
2. the others are collected in one go, with the prepared roll; the households are made in
   Python (households_in) and fed like the roll. Each input and each derived frame every rule
   shares (the matchable rows, the members, ...) is a `cache()` node, computed once per
   collect. Each plan ends in its rule's hits, which engine.fold_small.shaped's shape annotates
   and puts as engine.run.fold reads them (sorted, the records and metrics as JSON) in Python;
3. the rules that found something are folded in Python (engine.fold_small.folded), not by a
   second polars query: most households have no flag at all and skip this step.

Plans are collected without optimizations, by the in-memory engine: optimizing a plan of this
size costs more than it can save over a few rows. A CompiledRun is fed one roll at a time:
engine.check keeps a pool of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import narwhals as nw
import polars as pl
from polars.io.plugins import register_io_source

from .context import SharedContext
from .fold_small import folded, shaped
from .frames import frame_of_rows
from .patterns import needs_records
from .policy import Policy
from .rules import Rule
from .run import HEAD_RELATION, context_of, empty_flags, households_of, prepared
from .screens import Few

__all__ = ["CompiledRun"]

_NO_OPTIMIZATIONS = pl.QueryOptFlags.none()


def _collect_all(plans: list[pl.LazyFrame]) -> list[pl.DataFrame]:
    return pl.collect_all(plans, engine="in-memory", optimizations=_NO_OPTIMIZATIONS)


class _Feed:
    """Named placeholder frames whose data is handed in before each collect."""

    def __init__(self) -> None:
        self.frames: dict[str, pl.DataFrame] = {}

    def placeholder(self, name: str, schema: pl.Schema) -> pl.LazyFrame:
        def scan(columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
                 _batch_size: int | None) -> Iterator[pl.DataFrame]:
            frame = self.frames[name]
            if columns is not None:
                frame = frame.select(columns)
            if predicate is not None:
                frame = frame.filter(predicate)
            yield frame if n_rows is None else frame.head(n_rows)

        return register_io_source(scan, schema=schema, is_pure=True, explain_name=name).cache()


_HOUSEHOLD_COLUMNS = ("household_id", "household_size", "household_region", "head_order")


def households_in(roll: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """engine.run.households_of over the prepared rows of `roll` (a fed roll: `_order` is its row
    index), in Python: size (distinct IDs, a null one among them), head (the first 户主 row,
    else the first row) and region (the head's row's), in `schema`'s columns and types."""
    first: dict[str | None, int] = {}
    persons: dict[str | None, set[str | None]] = {}
    head: dict[str | None, int] = {}
    present = set(roll.columns)
    columns = [roll.get_column(c).to_list() if c in present else [None] * roll.height
               for c in ("household_id", "id_number", "relation")]
    for order, (household, person, relation) in enumerate(zip(*columns, strict=True)):
        first.setdefault(household, order)
        persons.setdefault(household, set()).add(person)
        if relation == HEAD_RELATION and household is not None:  # a null key joins no head
            head.setdefault(household, order)
    regions = roll.get_column("region_code").to_list()
    made = [(household, len(persons[household]), regions[head.get(household, order)], head.get(household, order))
            for household, order in first.items()]
    positions = [_HOUSEHOLD_COLUMNS.index(name) for name in schema.names()]
    return frame_of_rows([tuple(row[at] for at in positions) for row in made], schema)


class CompiledRun:
    """The selected rules over placeholders `roll`, `households` and each source, each ending in
    its hits as engine.fold_small folds them."""

    def __init__(self, roll_schema: pl.Schema, source_schemas: dict[str, pl.Schema], as_of: date,
                 policy: Policy, selected: list[Rule]) -> None:
        self.selected = selected
        self.as_of = as_of
        self.policy = policy
        self.available = set(source_schemas)
        self._feed = _Feed()
        self.rows = prepared(self._feed.placeholder("roll", roll_schema)).cache()
        # The households made in Python from the few rows fed (households_in), not by the
        # households_of query: over a few rows its six nodes cost ~280 µs a collect.
        self._household_schema = households_of(nw.from_native(self.rows)).to_native().collect_schema()
        self.households = self._feed.placeholder("households", self._household_schema)
        sources = {key: self._feed.placeholder(f"source:{key}", schema) for key, schema in source_schemas.items()}
        # The rules see the rows without `resolution` (no rule reads it; Spark's never have it): a
        # nested struct of candidates, it doubled the cost of each node carrying the roll's rows
        # (a filter of 38 rows: 80 against 43 µs). The fold reads it from `rows`.
        ruled = self.rows.select(pl.exclude("resolution")).cache() if "resolution" in self.rows.collect_schema() \
            else self.rows
        context = context_of(ruled, self.households, sources, as_of, policy, context=SharedContext)
        self.plans = [rule.plan(context).to_native() for rule in selected]
        # Each plan's collected hits as fold reads them.
        self.shapes = [shaped(rule, plan, as_of) for rule, plan in zip(selected, self.plans, strict=True)]
        self.needs = [needs_records(rule.plan) for rule in selected]

    def flags(self, roll: pl.DataFrame, sources: dict[str, pl.DataFrame],
              programs: set[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """The flags of `roll` (a loaded, resolved roll frame of the schema compiled for) over
        `sources` (every key compiled for, the same schemas), and the roll as prepared (None when
        no rule could fire: nothing was run, engine.run.prepare_roll gives it). With `programs`
        (those of the households whose flags are wanted), rules of none of them are not run:
        their flags could only be other households'."""
        few = Few(roll, sources, self.as_of, self.policy)
        running = [
            index for index, (rule, needs) in enumerate(zip(self.selected, self.needs, strict=True))
            if all(sources[key].height for key in needs)
            and (programs is None or rule.programs is None or not programs.isdisjoint(rule.programs))
            and (rule.screen is None or rule.screen(few))
        ]
        if not running:  # most single households: no query at all
            return empty_flags(), None
        households = households_in(roll, self._household_schema)
        self._feed.frames = {"roll": roll, "households": households,
                             **{f"source:{key}": frame for key, frame in sources.items()}}
        try:
            rows, *collected = _collect_all([self.rows, *[self.plans[index] for index in running]])
        finally:
            self._feed.frames = {}
        found = []
        for index, hits in zip(running, collected, strict=True):
            if hits.height and (shown := self.shapes[index](hits)):  # an annotation may drop every hit
                found.append((self.selected[index], shown))
        return folded(found, rows, households, self.available, self.as_of), rows
