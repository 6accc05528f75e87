"""Concurrent single-household checks gathered into one engine call.

    queue = CheckQueue(checker); queue.start()
    answer = queue.submit(members, as_of, rules, cadences).result()   # a concurrent.futures.Future

Why: one check costs a few ms of fixed overhead (validating the rows, resolving IDs, the 19
compiled rule plans, folding evidence) and only a fraction of a ms per household beyond that —
checking 32 households at once costs about three times one, not thirty-two. A server answering
32 clients at once on 2 cores would queue them one behind another; instead a single worker
thread takes every request that has arrived meanwhile (same as-of date and rule selection,
distinct household ids), validates their rows with one engine.loaders call, checks them with
one CheckIndex call and hands each request its own flags. With one client there is nothing to
gather and a request goes straight through.

Their IDs are resolved in one call (a row's resolution depends on that row and hukou only).
Requests are then checked together only where their checks cannot see each other (the rules that
look across households — duplicate enrolment, program conflicts — join on the person): no person
in two of them, no household of one in which the roll enrols a person of another. Otherwise they
are checked in separate calls.

Each request's rows keep their own numbering: problems and warnings name the request's member
index, and the evidence's `roll_row` is the member index too.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import polars as pl

from engine.check import household_key
from engine.errors import Problem
from engine.frames import frame_of_series, series
from engine.loaders import load_frame
from engine.run import empty_flags

from .checks import Checker

__all__ = ["CheckQueue", "CheckAnswer", "settle"]

_ROLL_ROW = re.compile(r'"roll_row":\s*(\d+)')
_BLOCK = 10**9  # row numbers of the k-th gathered request start at k × _BLOCK
_FLAG_SCHEMA = empty_flags().schema  # once: a frame makes its schema anew each time it is asked (~20 µs)


def _own_rows(evidence: str) -> str:
    """A gathered request's own row numbers back to its member index (roll rows are < _BLOCK)."""
    return _ROLL_ROW.sub(lambda m: f'"roll_row":{int(m.group(1)) % _BLOCK}', evidence)


@dataclass
class CheckAnswer:
    # The household's flags (engine columns), or None from a queue keeping no frames (the check
    # process's, which sends `rows` only): see flags_frame.
    flags: pl.DataFrame | None
    ran: list[str]
    skipped: list[tuple[str, str]]
    held: dict[str, Any]  # key → Snapshot the check read
    frame: pl.DataFrame | None = None  # the loaded rows of the request (its own _row numbers)
    problems: list[Problem] = field(default_factory=list)  # rows that cannot be used: nothing was checked
    warnings: list[Problem] = field(default_factory=list)
    as_of: date | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # the flags as dicts, made on the queue's thread
    # The group it was gathered into: how many requests, and the group's time from validation to
    # flags (one engine call, or a few when some of its checks could see each other's households;
    # the check's wait before it, and the HTTP around it, are not in it).
    together: int = 0
    engine_seconds: float = 0.0

    def flags_frame(self) -> pl.DataFrame:
        """The flags as a frame: `flags`, else made from `rows` once asked. Only a check that is
        recorded asks: made for every answer with flags, the frame cost the server ~70 µs of its
        GIL each, in the thread that hands the check process's answers to the event loop."""
        if self.flags is None:
            self.flags = pl.DataFrame(self.rows, schema=_FLAG_SCHEMA, orient="row") if self.rows else empty_flags()
        return self.flags


Columns = Mapping[str, list[Any]]  # a household's String columns as lists, one entry per member


def _together(households: list[pl.DataFrame | Columns]) -> tuple[pl.DataFrame, list[int]]:
    """The households' rows as one frame, and how many rows each has. Given as lists (as the
    API gives them), they are joined as lists and made into one frame: a frame each costs more."""
    keys = list(households[0]) if not isinstance(households[0], pl.DataFrame) else None
    if keys is not None and all(not isinstance(h, pl.DataFrame) and list(h) == keys for h in households):
        heights = [len(household[keys[0]]) for household in households]  # type: ignore[index]
        # A Series per column: a dict of lists costs polars a third more checking (83 -> 60 µs).
        return frame_of_series([series(key, [value for household in households for value in household[key]], pl.String)
                                for key in keys]), heights
    frames = [h if isinstance(h, pl.DataFrame) else pl.DataFrame(dict(h), schema=dict.fromkeys(h, pl.String))
              for h in households]
    return pl.concat(frames, how="vertical"), [frame.height for frame in frames]


def settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Give a request its answer, unless its caller has given up on it (a cancelled future would
    raise, and take the worker with it)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


@dataclass
class _Request:
    members: pl.DataFrame | Columns  # String columns of the roll, one household
    as_of: date
    rules: tuple[str, ...] | None
    cadences: tuple[str, ...] | None
    future: Future[CheckAnswer]
    household: str = ""

    def __post_init__(self) -> None:
        ids = self.members["household_id"]
        self.household = str(ids[0])

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.as_of, self.rules, self.cadences)


class CheckQueue:
    def __init__(self, checker: Checker, max_households: int = 64, keep_frames: bool = True) -> None:
        self.checker = checker
        self.max_households = max_households
        # Each answer's frames (CheckAnswer.frame, .flags): the check process sends the rows only.
        self.keep_frames = keep_frames
        self._pending: list[_Request] = []
        self._ready = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.calls = 0  # engine calls made, and households checked: for /metrics and tests
        self.checked = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="check-queue", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._ready:
            self._stopped = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def state(self) -> str:
        """"ok" while the worker runs (for /health)."""
        return "ok" if self._thread is not None and self._thread.is_alive() else "stopped"

    def submit(self, members: pl.DataFrame | Columns, as_of: date, rules: list[str] | None = None,
               cadences: list[str] | None = None) -> Future[CheckAnswer]:
        """Queue one household's rows (String columns as a roll file has them). Given as lists,
        the frame is made on the queue's thread: on an event loop every polars call may wait
        for the GIL the checking thread holds."""
        request = _Request(members, as_of, tuple(rules) if rules is not None else None,
                           tuple(cadences) if cadences is not None else None, Future())
        with self._ready:
            if self._stopped:
                raise RuntimeError("the check queue is stopped")
            self._pending.append(request)
            self._ready.notify()
        return request.future

    @property
    def waiting(self) -> bool:
        """Whether a request waits to be checked."""
        return bool(self._pending)

    def step(self) -> bool:
        """Check the next group of what waits, in the calling thread, and settle its requests;
        False when nothing waited. For a queue that is not started: the check process drives its
        queue so, between reading requests and sending answers, with no thread to hand over to."""
        group = self._take(wait=False)
        if not group:
            return False
        self._settle(group)
        return True

    def _take(self, wait: bool = True) -> list[_Request] | None:
        with self._ready:
            while wait and not self._pending and not self._stopped:
                self._ready.wait()
            if not self._pending:
                return None
            first = self._pending[0]
            group, rest, households = [], [], set()
            for request in self._pending:
                if (request.key == first.key and request.household not in households
                        and len(group) < self.max_households):
                    group.append(request)
                    households.add(request.household)
                else:
                    rest.append(request)
            self._pending = rest
            return group

    def _loop(self) -> None:
        while (group := self._take()) is not None:
            self._settle(group)

    def _settle(self, group: list[_Request]) -> None:
        try:
            answers = self._check(group)
        except BaseException as error:  # every waiting request hears it; the worker goes on
            for request in group:
                settle(request.future, error=error)
            return
        for request, answer in zip(group, answers, strict=True):
            settle(request.future, answer)

    def _check(self, group: list[_Request]) -> list[CheckAnswer]:
        started = time.perf_counter()
        rows, heights = _together([request.members for request in group])
        first = group[0]
        starts, offset = [], 0
        for height in heights:
            starts.append(offset)
            offset += height
        loaded = load_frame(rows, "roll", "request", first.as_of, first_row=0)
        owner = [index for index, height in enumerate(heights) for _ in range(height)]

        def local(problem: Problem, index: int) -> Problem:
            return replace(problem, row=problem.row - starts[index]) if problem.row is not None else problem

        problems: dict[int, list[Problem]] = {}
        warnings: dict[int, list[Problem]] = {}
        for problem in loaded.problems:
            index = owner[problem.row] if problem.row is not None else 0
            problems.setdefault(index, []).append(local(problem, index))
        for warning in loaded.warnings:
            if warning.row is not None:
                warnings.setdefault(owner[warning.row], []).append(local(warning, owner[warning.row]))
        # Each request's rows numbered from 0 again, in a block of its own far beyond any roll
        # row, so that its evidence can name its own members and nobody else's rows change.
        # Worked out in Python, in one column: with 32 waiting, a filter each cost more than the check.
        numbers = [owner[row] * _BLOCK + row - starts[owner[row]] for row in loaded.frame.get_column("_row").to_list()]
        numbered = loaded.frame.clone()  # a shallow copy, its _row replaced in place: no query
        numbered.replace_column(numbered.get_column_index("_row"), series("_row", numbers, pl.Int64))
        if problems:  # their requests are not checked
            numbered = numbered.filter(series("", [n // _BLOCK not in problems for n in numbers], pl.Boolean))
        index_, held = self.checker.current()
        # Resolved together (a row's resolution depends on that row and hukou only), so that the
        # parts below are formed by the IDs the rules will join on.
        resolved = index_.resolve(numbered, first.as_of)
        persons: dict[int, set[str]] = {}
        for row, person in zip(resolved.get_column("_row").to_list(), resolved.get_column("id_number").to_list(),
                               strict=True):
            persons.setdefault(row // _BLOCK, set()).add(person)
        answers: dict[int, CheckAnswer] = {
            index: CheckAnswer(flags=pl.DataFrame(), ran=[], skipped=[], held=held, problems=problems.get(index, []),
                               warnings=warnings.get(index, []), as_of=first.as_of)
            for index in range(len(group)) if index not in persons  # a problem, or only blank rows
        }
        parts = self._apart(index_, group, persons)
        for part in parts:
            frame = resolved if len(parts) == 1 else resolved.filter((pl.col("_row") // _BLOCK).is_in(part))
            answers.update(self._run(index_, held, group, part, frame, warnings))
        elapsed = time.perf_counter() - started
        for answer in answers.values():
            answer.together, answer.engine_seconds = len(group), elapsed
        return [answers[index] for index in range(len(group))]

    def _apart(self, index_: Any, group: list[_Request], persons: dict[int, set[str]]) -> list[list[int]]:
        """The requests (by the IDs of their rows, resolved) split into parts whose checks cannot
        see each other: no person in two of them, no household of one where the roll enrols a
        person of another (households compared by their engine.check.household_key)."""
        everyone = set().union(*persons.values()) if persons else set()
        enrolled = index_.enrolled_in(list(everyone))
        parts: list[tuple[list[int], set[str], set[int], set[int]]] = []  # members, persons, households, enrolled in
        for index, mine in persons.items():
            mine_in = set().union(*(enrolled.get(p, ()) for p in mine)) if mine else set()
            household = household_key(group[index].household)
            for members, their_persons, their_households, their_in in parts:
                if not (mine & their_persons) and household not in their_in and not (mine_in & their_households):
                    members.append(index)
                    their_persons |= mine
                    their_households.add(household)
                    their_in |= mine_in
                    break
            else:
                parts.append(([index], set(mine), {household}, set(mine_in)))
        return [members for members, *_ in parts]

    def _run(self, index_: Any, held: dict[str, Any], group: list[_Request], part: list[int],
             frame: pl.DataFrame, warnings: dict[int, list[Problem]]) -> dict[int, CheckAnswer]:
        first = group[part[0]]
        # An answer carries no resolutions: not worked out.
        result = index_.check(frame, first.as_of, rules=list(first.rules) if first.rules is not None else None,
                              cadences=list(first.cadences) if first.cadences is not None else None,
                              resolutions=False)
        self.calls += 1
        self.checked += len(part)
        flags = result.flags
        # The flags as rows, split and renumbered in Python: over a few rows each polars call
        # (a UDF over the evidence, a partition, a to_dicts per answer) costs more than the loop.
        by_household: dict[str, list[dict[str, Any]]] = {}
        for row in flags.to_dicts() if flags.height else []:
            if any(part):  # request 0's rows are numbered as its members already
                row["evidence"] = _own_rows(row["evidence"])
            by_household.setdefault(row["household_id"], []).append(row)
        frames: dict[Any, pl.DataFrame] = {}
        if self.keep_frames:
            own = frame.with_columns(pl.col("_row") % _BLOCK, (pl.col("_row") // _BLOCK).alias("_request"))
            frames = own.partition_by("_request", as_dict=True, include_key=False)
        answers = {}
        for index in part:
            rows = by_household.get(group[index].household, [])
            # The check process sends the rows only: no frame of them is made there (flags_frame).
            mine = pl.DataFrame(rows, schema=flags.schema, orient="row") if self.keep_frames else None
            answers[index] = CheckAnswer(flags=mine, ran=result.ran, skipped=result.skipped, held=held,
                                         frame=frames.get((index,)), warnings=warnings.get(index, []),
                                         as_of=first.as_of, rows=rows)
        return answers
