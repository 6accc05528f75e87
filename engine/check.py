"""Check one household (or a few) at application time against the latest sources, in milliseconds.

    index = CheckIndex(roll, sources, policy)          once per snapshot set: sorts and indexes
    result = index.check(households, as_of)            per request: a RunResult

Why: engine.run.run over one household costs ~70–100 ms, nearly all of it fixed overhead
(compiling 19 rule plans, resolving IDs with scans of hukou, folding each rule's hits), and
scanning a city's sources for one household's persons would cost more still. The API answers a
caseworker while the applicant waits, with many requests at once, so one check must cost a few
ms of CPU. A check gives exactly the flags run() would give that household over the full frames,
because it runs the same rules (engine.rules, compiled once by engine.check_plan) over the only
rows they can join with:

* the check roll: the submitted rows (a loaded roll frame, one or more households; they replace
  any roll rows of the same household_id) plus the roll's rows of the same persons in other
  households (duplicate_enrollment, program_conflict and disability_living_without_dibao read
  them);
* every source restricted to the check roll's IDs: each source is sorted by ID once (an
  engine.keyed frame: sorted in memory, or mapped from the file written with its snapshot), so
  a person's records are one slice found by binary search, never a scan (for the roll's own
  persons, read from a table of their slices made with the index: `_Slices`);
* ID resolution (engine.resolve) against hukou through `HukouIndex`, which answers the
  resolver's questions (records by ID, by the first 14 characters, by name key and township)
  by lookup; a roll row's resolution depends on that row and hukou only, so the roll's own
  rows are resolved once (invalid IDs: once per as-of date) and looked up by resolved ID.

Only flags of the submitted household_ids are returned (`RunResult.resolutions` likewise).
Checks may run concurrently: each uses its own CompiledRun from a pool.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import date

import numpy as np
import polars as pl

from schemas import ROLL

from .check_plan import CompiledRun
from .frames import gathered, picked, rows_at, signature, stacked
from .keyed import Codes, Keyed, codes_of
from .loaders import load_frame
from .policy import DEFAULT_POLICY, Policy
from .resolve import REASONS, resolve
from .rules import Rule
from .run import (
    RESOLUTION_COLUMNS,
    RunResult,
    empty_flags,
    prepare_roll,
    resolutions_of,
    select_ready,
)

__all__ = ["ROLL_COLUMNS", "CheckIndex", "HukouIndex", "household_key"]

# A loaded roll frame's columns (docs/design.md, "Loaded frames"): what a check roll carries.
ROLL_COLUMNS = ("_row", *ROLL.names, "id_number_raw", "id_valid", "id_method")
_KEEP = 8  # as-of dates (× rule selections) whose compiled runs and resolved roll rows are kept
_NO_RESOLUTIONS = pl.DataFrame(schema=RESOLUTION_COLUMNS)
# What a valid roll row is given in the index, as engine.resolve leaves a row it did not change.
_UNRESOLVED = ("roll_id_valid", "resolution", "match_method", "match_score")
_KIND = {reason: kind for kind, reason in REASONS.items()}  # a resolution's reason → what it looked for


def household_key(household_id: str | None) -> int:
    """A household's key in the roll index: Python's hash of its id, salted per process (so made
    and compared in one process). Two households may share a key: where that would matter, their
    ids are compared too."""
    return hash(household_id)


class HukouIndex:
    """Hukou keyed by ID, with its (township, name key) index: an engine.hukou_lookup HukouLookup
    answering by lookup what ScanLookup answers by scanning."""

    def __init__(self, hukou: pl.DataFrame | Keyed) -> None:
        self.keyed = hukou if isinstance(hukou, Keyed) else Keyed.of(hukou, names=True)
        # The rows holders() last found, per thread: a check then reads the same IDs' rows as a
        # source (most groups: nobody's ID resolved to another), and a lookup costs ~165 µs.
        self._last = threading.local()
        self.slices: _Slices | None = None  # the roll's persons' slices, when CheckIndex has made them
        self._known: dict[date | None, dict[tuple, dict]] = {}

    def known(self, as_of: date | None) -> dict[tuple, dict] | None:
        """The decisions resolution made at `as_of` for the roll's rows it looked for (`remember`),
        by attempt (kind, id_number, id_number_raw, name, region_code): engine.resolve_small
        takes them rather than look for candidates again (a re-check's household is the roll's)."""
        return self._known.get(as_of)

    def remember(self, as_of: date | None, resolved: list[tuple[pl.DataFrame, pl.Series]]) -> None:
        """Keep the decisions (engine.resolve's `resolution` column) of roll rows as loaded, before
        resolution, for `known`; forget those of any but the latest `_KEEP` dates."""
        known = {}
        for rows, resolutions in resolved:
            looked_for = resolutions.is_not_null()  # a few thousand of a city's 290k rows
            attempts = zip(*(rows.get_column(c).filter(looked_for).to_list()
                             for c in ("id_number", "id_number_raw", "name", "region_code")), strict=True)
            for attempt, decision in zip(attempts, resolutions.filter(looked_for).to_list(), strict=True):
                known[(_KIND[decision["reason"]], *attempt)] = decision  # its kind is its reason's
        self._known[as_of] = known
        while len(self._known) > _KEEP:
            del self._known[next(iter(self._known))]

    def _rows(self, ids: list[str] | pl.Series, codes: Codes) -> pl.DataFrame:
        if self.slices is None:
            return self.keyed.rows(ids, codes)
        return self.slices.rows(ids, codes, ("hukou",))["hukou"]

    def holders(self, ids: pl.Series) -> pl.DataFrame:
        codes = codes_of(ids)
        found = self._rows(ids, codes)
        self._last.found = (codes.values, found)
        return picked(found, ("id_number", "name"))

    def rows(self, ids: list[str], codes: Codes) -> pl.DataFrame:
        """keyed.rows(ids, codes): the rows holders() last found in this thread when they are
        of the same codes (rows without a code, matched by text, are looked for anew)."""
        last = getattr(self._last, "found", None)
        if last is not None and not self.keyed.odd.height and np.array_equal(last[0], codes.values):
            return last[1]
        return self._rows(ids, codes)

    def near(self, edit_ids: pl.Series, born14: pl.Series, named: pl.DataFrame) -> pl.DataFrame:
        # The keys as name_town spells them: names.key is key_expr's twin.
        keys = [f"{town}\x1f{name_key}" for name_key, town in named.iter_rows() if town is not None]
        found = [self.keyed.rows(edit_ids, codes_of(edit_ids)), self.keyed.starting(born14.to_list()),
                 self.keyed.named(keys)]
        return picked(stacked(found), ("id_number", "name", "region_code"))


class _RollIndex:
    """The roll's rows by resolved ID, to find an applicant's enrolments in other households.
    Valid IDs are never changed by resolution, so those rows are indexed once; the few invalid
    ones are resolved per as-of date (the resolver's candidates depend on it)."""

    def __init__(self, roll: pl.DataFrame, hukou: HukouIndex | None) -> None:
        self._hukou = hukou
        loaded = _canonical(roll)
        valid = loaded.filter(pl.col("id_valid"))
        if hukou is not None:  # as engine.resolve leaves a row it did not change (_UNRESOLVED)
            valid = valid.with_columns(
                pl.col("id_valid").alias("roll_id_valid"),
                pl.lit(None, RESOLUTION_COLUMNS["resolution"]).alias("resolution"),
                pl.col("id_method").alias("match_method"),
                pl.lit(100.0).alias("match_score"),
            )
        self._valid = Keyed.of(valid)
        # Each valid row's household as a key (household_key), beside its code: which households
        # enrol a person, and which of a person's rows are in the checked households (a re-check's
        # are all of them), are told by array. Dicts of the roll's 252k IDs and 120k households
        # cost ~2.2 ms a group of 16 in process: each lookup touched pages no check had touched for
        # seconds, which this project's VM makes slow (benchmarks/idle_pages.py).
        self._households = self._valid.frame.get_column("household_id")
        self._household_keys = np.fromiter(map(household_key, self._households.to_list()), dtype=np.int64,
                                           count=self._households.len())
        self._invalid = loaded.filter(~pl.col("id_valid"))
        self.empty = loaded.head(0)
        self._schema = self.empty.schema
        self.signature = signature(self.empty)
        self._resolved: dict[date, Keyed] = {}
        self._lock = threading.Lock()

    @property
    def schema(self) -> pl.Schema:
        return self._schema

    def persons(self) -> np.ndarray:
        """The codes of the persons on the roll under a valid ID, sorted, each once."""
        codes = self._valid.codes  # sorted already: np.unique would sort them again (~0.1 s a city)
        return codes[np.concatenate([[True], codes[1:] != codes[:-1]])] if len(codes) else codes

    def enrolled_in(self, ids: list[str]) -> dict[str, frozenset[int]]:
        """The keys of the households whose valid rows hold each of these IDs (an ID in none is
        left out): one search of the valid rows' codes for all of them."""
        codes = codes_of(ids)
        count = len(codes.values)
        if not count:
            return {}
        bounds = np.searchsorted(self._valid.codes, np.concatenate([codes.values, codes.values + 1])).tolist()
        texts = codes.texts if codes.texts is not None else codes.ids.to_list()
        keys = self._household_keys
        return {text: frozenset(keys[start:end].tolist())
                for text, start, end in zip(texts, bounds[:count], bounds[count:], strict=True) if end > start}

    def rows_of(self, ids: list[str], as_of: date, besides: set[str] | frozenset[str] = frozenset()) -> pl.DataFrame:
        """The roll's rows of these IDs, but for the valid rows of the households `besides`."""
        codes = codes_of(ids)
        positions = self._valid.positions(codes)
        if besides and len(positions):  # in Python: np.isin's setup costs more over a few rows
            keys = {household_key(household) for household in besides}
            maybe = [at for at, key in enumerate(self._household_keys[positions].tolist()) if key in keys]
            if maybe:
                named = gathered(self._households, positions[maybe]).to_list()
                inside = {at for at, household in zip(maybe, named, strict=True) if household in besides}
                positions = np.array([position for at, position in enumerate(positions.tolist()) if at not in inside],
                                     dtype=np.int64)
        found = self._valid.at(positions)
        if self._hukou is None:
            return found
        with self._lock:
            if as_of not in self._resolved:
                self._resolved[as_of] = self._resolve(self._hukou, as_of, found.columns)
                if len(self._resolved) > _KEEP:
                    del self._resolved[next(iter(self._resolved))]
            also = self._resolved[as_of].rows(ids, codes)
        return stacked([found, also]) if also.height else found

    def _resolve(self, hukou: HukouIndex, as_of: date, columns: list[str]) -> Keyed:
        """The invalid rows resolved at `as_of`, those resolved to a valid ID kept (in `columns`);
        and every decision resolution made over the roll remembered (HukouIndex.remember): the
        invalid rows', and the valid rows' it looks for too (hukou lacks their ID, or names
        someone else). A re-check of their household takes those decisions as made here: ~0.8 s
        at 120,000 households, once a date, where the invalid rows alone took ~0.3 s."""
        resolution = resolve(self._invalid, hukou, as_of)
        valid = self._valid.at(np.arange(self._valid.frame.height)).drop(*_UNRESOLVED)
        hukou.remember(as_of, [(self._invalid, resolution.get_column("resolution")),
                               (valid, resolve(valid, hukou, as_of).get_column("resolution"))])
        return Keyed.of(resolution.filter(pl.col("id_valid")).select(columns))


class _Slices:
    """Where each of the roll's persons' rows are in every source (`Keyed.bounds`), found once.

    Why: a check looks up a group's ~40 IDs in a dozen sources, and each binary search of a
    city's source touches ~25 of its codes' pages, the deeper of which no other check has touched
    for seconds: ~300 µs a group of 16 at full speed, several times that when this project's VM
    is slow to touch such pages (benchmarks/idle_pages.py). A re-check's persons are the roll's:
    their slices are then one search of the roll's 250k codes and a row of this table. Anyone
    else (an applicant new to the roll, an ID resolved from an invalid one) is searched for as
    before."""

    def __init__(self, persons: np.ndarray, sources: dict[str, Keyed]) -> None:
        self.persons = persons  # sorted, distinct
        self.sources = sources
        largest = max((keyed.frame.height for keyed in sources.values()), default=0)
        # Two columns a source, one row a person: a check reads a person's slices from one place.
        self.table = np.empty((len(persons), 2 * len(sources)), dtype=np.int32 if largest < 2**31 else np.int64)
        self._column = {key: at for at, key in enumerate(sources)}
        for at, keyed in enumerate(sources.values()):
            self.table[:, 2 * at], self.table[:, 2 * at + 1] = keyed.bounds(persons, persons + 1)

    def rows(self, ids: list[str] | pl.Series, codes: Codes, keys: Iterable[str] | None = None) -> dict[str, pl.DataFrame]:
        """The rows of these IDs (`codes`: their codes_of) in each source (of `keys`: every one
        when None), as Keyed.rows gives them."""
        wanted = [(self._column[key], key) for key in (self.sources if keys is None else keys)]
        values = codes.values
        if not len(self.persons) or not len(values):
            return {key: self.sources[key].rows(ids, codes) for _, key in wanted}
        at = np.minimum(np.searchsorted(self.persons, values), len(self.persons) - 1)
        slices = self.table[at].astype(np.int64)
        others = np.flatnonzero(self.persons[at] != values)
        if len(others):
            lower = values[others]
            for column, key in wanted:
                slices[others, 2 * column], slices[others, 2 * column + 1] = self.sources[key].bounds(lower, lower + 1)
        return {key: self.sources[key].rows_within(ids, codes, slices[:, 2 * column], slices[:, 2 * column + 1])
                for column, key in wanted}


def _canonical(roll: pl.DataFrame) -> pl.DataFrame:
    """A loaded roll frame reduced to ROLL_COLUMNS (other columns are never read by a rule)."""
    if tuple(roll.columns) == ROLL_COLUMNS:
        return roll
    missing = [c for c in ROLL_COLUMNS if c not in roll.columns]
    if missing:
        raise ValueError(f"not a loaded roll frame (engine.loaders.load_frame): no {', '.join(missing)}")
    return roll.select(ROLL_COLUMNS)


class CheckIndex:
    """The latest roll and sources, indexed by ID for `check` (see the module's docstring)."""

    def __init__(self, roll: pl.DataFrame | None, sources: dict[str, pl.DataFrame | Keyed],
                 policy: Policy | None = None) -> None:
        self.policy = policy or DEFAULT_POLICY
        self._hukou = HukouIndex(sources["hukou"]) if "hukou" in sources else None
        self._sources = {
            key: self._hukou.keyed if key == "hukou" and self._hukou is not None
            else frame if isinstance(frame, Keyed) else Keyed.of(frame)
            for key, frame in sources.items()
        }
        # What a check looks its persons up in: hukou through its index (see HukouIndex.rows).
        self._lookups: dict[str, Keyed | HukouIndex] = {**self._sources}
        if self._hukou is not None:
            self._lookups["hukou"] = self._hukou
        self._roll = _RollIndex(roll, self._hukou) if roll is not None else None
        self._slices = _Slices(self._roll.persons(), self._sources) if self._roll is not None else None
        if self._hukou is not None:
            self._hukou.slices = self._slices
        # Hukou's rows are most often those resolution found already (HukouIndex.rows).
        self._sliced = [key for key, lookup in self._lookups.items() if lookup is self._sources[key]]
        self._idle: OrderedDict[tuple, list[CompiledRun]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def available(self) -> set[str]:
        return set(self._sources)

    def enrolled_in(self, persons: list[str]) -> dict[str, frozenset[int]]:
        """The keys (`household_key`) of the roll's households enrolling each of `persons` (valid
        IDs; those enrolled nowhere are left out). store.check_queue keeps checks that could see
        each other's households apart with it."""
        return self._roll.enrolled_in(persons) if self._roll is not None else {}

    def warm(self, as_of: date, rules: list[str] | None = None, cadences: list[str] | None = None) -> None:
        """Do now what the first check of `as_of` would otherwise wait for: resolve the roll for
        that date (~0.8 s at 120,000 households: `_RollIndex._resolve`) and compile the rules
        (~50 ms)."""
        selected, _ = select_ready(rules, cadences, self.available)
        if self._roll is not None:
            self._roll.rows_of([], as_of)
        if selected:
            empty = pl.DataFrame(schema=dict.fromkeys(ROLL.names, pl.String))
            roll = self._canonical(load_frame(empty, "roll", "roll", as_of).frame)
            if self._hukou is not None:
                roll = resolve(roll, self._hukou, as_of)
            self._checkin(self._key(roll, as_of, selected), self._checkout(roll, as_of, selected))

    def resolve(self, households: pl.DataFrame, as_of: date) -> pl.DataFrame:
        """The households' rows (a loaded roll frame) with their IDs resolved, as `check` resolves
        them. A row's resolution depends on that row and hukou only, so the rows of many checks
        can be resolved in one call, then checked apart: `check` takes resolved rows as they are."""
        submitted = self._canonical(households)
        return resolve(submitted, self._hukou, as_of) if self._hukou is not None else submitted

    def check(self, households: pl.DataFrame, as_of: date, rules: list[str] | None = None,
              cadences: list[str] | None = None, resolutions: bool = True) -> RunResult:
        """run()'s result for the households of `households` (a loaded roll frame, or the rows
        `resolve` gave) as if they were on the indexed roll in place of any rows with their
        household_ids: their flags only (and, unless `resolutions` is false, what resolution
        found for their rows)."""
        selected, skipped = select_ready(rules, cadences, self.available)
        submitted = households if "roll_id_valid" in households.columns else self.resolve(households, as_of)
        checked = set(submitted.get_column("household_id").to_list())
        roll = submitted
        if self._roll is not None:
            valid = submitted.get_column("id_valid").to_list()
            persons = [i for i, v in zip(submitted.get_column("id_number").to_list(), valid, strict=True) if v]
            others = self._roll.rows_of(persons, as_of, besides=checked)
            # rows_of left out the checked households' valid rows; rows resolved from invalid IDs
            # may still be theirs. Found in Python: a polars filter over a few rows costs its dispatch.
            elsewhere = [at for at, household in enumerate(others.get_column("household_id").to_list())
                         if household not in checked]
            if elsewhere:
                roll = stacked([submitted, picked(rows_at(others, np.array(elsewhere)), submitted.columns)])
        ids = roll.get_column("id_number").to_list()
        codes = codes_of(ids)
        sliced = self._slices.rows(ids, codes, self._sliced) if self._slices is not None else {}
        sources = {key: sliced[key] if key in sliced else index.rows(ids, codes) for key, index in self._lookups.items()}
        programs = set(submitted.get_column("program").to_list())
        if selected:
            flags, rows = self._flags(roll, sources, as_of, selected, programs)
        else:
            flags, rows = empty_flags(), None
        # Made only when needed: the expression alone costs ~15 µs, and most checks need neither.
        def mine() -> pl.Expr:
            return pl.col("household_id").is_in(list(checked))

        looked_for = (resolutions and self._hukou is not None
                      and submitted.get_column("resolution").null_count() < submitted.height)
        # Other households' flags are possible only when their rows were added to the check roll.
        return RunResult(flags=flags.filter(mine()) if flags.height and roll is not submitted else flags, as_of=as_of,
                         ran=[r.id for r in selected], skipped=skipped,
                         resolutions=resolutions_of((prepare_roll(roll) if rows is None else rows).filter(mine()))
                         if looked_for else _NO_RESOLUTIONS.clear())

    def _canonical(self, households: pl.DataFrame) -> pl.DataFrame:
        """The submitted rows as the indexed roll's rows are (ROLL_COLUMNS, the same types)."""
        frame = _canonical(households)
        if self._roll is not None and signature(frame) != self._roll.signature:
            frame = frame.cast(dict(self._roll.schema))  # type: ignore[arg-type]
        return frame

    def _key(self, roll: pl.DataFrame, as_of: date, selected: list[Rule]) -> tuple:
        return (as_of, tuple(r.id for r in selected), signature(roll))

    def _checkout(self, roll: pl.DataFrame, as_of: date, selected: list[Rule],
                  key: tuple | None = None) -> CompiledRun:
        """An idle CompiledRun for this roll schema, date and rules; compiled if none is."""
        with self._lock:
            idle = self._idle.get(key or self._key(roll, as_of, selected))
            if idle:
                return idle.pop()
        schemas = {key: index.schema for key, index in self._sources.items()}
        return CompiledRun(roll.schema, schemas, as_of, self.policy, selected)

    def _checkin(self, key: tuple, compiled: CompiledRun) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(compiled)
            self._idle.move_to_end(key)
            while len(self._idle) > _KEEP:
                self._idle.popitem(last=False)

    def _flags(self, roll: pl.DataFrame, sources: dict[str, pl.DataFrame], as_of: date,
               selected: list[Rule], programs: set[str]) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        key = self._key(roll, as_of, selected)  # once: a frame's schema is made anew each time it is asked for
        compiled = self._checkout(roll, as_of, selected, key)
        try:
            return compiled.flags(roll, sources, programs)
        finally:
            self._checkin(key, compiled)
