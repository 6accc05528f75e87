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

Requests are gathered only where their checks cannot see each other (the rules that look
across households — duplicate enrolment, program conflicts — join on the person): no person in
two of them, no household of one in which the roll enrols a person of another, and none with an
ID the resolver may change (an invalid one is checked alone). Otherwise they are checked in
separate calls.

Each request's rows keep their own numbering: problems and warnings name the request's member
index, and the evidence's `roll_row` is the member index too.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import polars as pl

from engine.errors import Problem
from engine.loaders import load_frame

from .checks import Checker

__all__ = ["CheckQueue", "CheckAnswer"]

_ROLL_ROW = re.compile(r'"roll_row":\s*(\d+)')
_BLOCK = 10**9  # row numbers of the k-th gathered request start at k × _BLOCK


def _own_rows(evidence: str) -> str:
    """A gathered request's own row numbers back to its member index (roll rows are < _BLOCK)."""
    return _ROLL_ROW.sub(lambda m: f'"roll_row":{int(m.group(1)) % _BLOCK}', evidence)


@dataclass
class CheckAnswer:
    flags: pl.DataFrame  # the household's flags (engine columns)
    ran: list[str]
    skipped: list[tuple[str, str]]
    held: dict[str, Any]  # key → Snapshot the check read
    frame: pl.DataFrame | None = None  # the loaded rows of the request (its own _row numbers)
    problems: list[Problem] = field(default_factory=list)  # rows that cannot be used: nothing was checked
    warnings: list[Problem] = field(default_factory=list)
    as_of: date | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # the flags as dicts, made on the queue's thread


Columns = Mapping[str, list[Any]]  # a household's String columns as lists, one entry per member


def _frame(members: pl.DataFrame | Columns) -> pl.DataFrame:
    if isinstance(members, pl.DataFrame):
        return members
    return pl.DataFrame(dict(members), schema=dict.fromkeys(members, pl.String))


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
    def __init__(self, checker: Checker, max_households: int = 64) -> None:
        self.checker = checker
        self.max_households = max_households
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

    def _take(self) -> list[_Request] | None:
        with self._ready:
            while not self._pending and not self._stopped:
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
            try:
                answers = self._check(group)
            except BaseException as error:  # every waiting request hears it; the worker goes on
                for request in group:
                    request.future.set_exception(error)
                continue
            for request, answer in zip(group, answers, strict=True):
                request.future.set_result(answer)

    def _check(self, group: list[_Request]) -> list[CheckAnswer]:
        members = [_frame(request.members) for request in group]
        first = group[0]
        starts, offset = [], 0
        for rows in members:
            starts.append(offset)
            offset += rows.height
        loaded = load_frame(pl.concat(members, how="vertical"), "roll", "request", first.as_of,
                            first_row=0)
        owner = [index for index, rows in enumerate(members) for _ in range(rows.height)]

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
        # One partition, not a filter per request: with 32 waiting, 32 filters cost more than the check.
        block_of = pl.Series("_request", owner, dtype=pl.Int64)
        numbered = loaded.frame.with_columns(
            _request=block_of.gather(loaded.frame.get_column("_row")),
            _start=pl.Series(starts, dtype=pl.Int64).gather(block_of.gather(loaded.frame.get_column("_row"))),
        ).with_columns(pl.col("_row") - pl.col("_start") + pl.col("_request") * _BLOCK)
        parts = numbered.drop("_start").partition_by("_request", as_dict=True, include_key=False)
        frames = {index: parts[(index,)] for index in range(len(group))
                  if index not in problems and (index,) in parts}
        index_, held = self.checker.current()
        answers: dict[int, CheckAnswer] = {
            index: CheckAnswer(flags=pl.DataFrame(), ran=[], skipped=[], held=held, problems=problems[index],
                               warnings=warnings.get(index, []), as_of=first.as_of)
            for index in problems
        }
        for part in self._apart(group, frames):
            answers.update(self._run(index_, held, group, part, frames, starts, warnings, alone=len(part) == 1))
        return [answers[index] for index in range(len(group))]

    def _apart(self, group: list[_Request], frames: dict[int, pl.DataFrame]) -> list[list[int]]:
        """The requests split into parts whose checks cannot see each other: no person in two of
        them, no household of one where the roll enrols a person of another. A request with an
        ID the resolver may change is checked alone."""
        persons = {i: set(f.get_column("id_number").to_list()) for i, f in frames.items()}
        resolvable = {i for i, f in frames.items() if not f.get_column("id_valid").all()}
        everyone = set().union(*persons.values()) if persons else set()
        enrolled = self.checker.enrolled_in(list(everyone))
        parts: list[tuple[list[int], set[str], set[str], set[str]]] = []  # members, persons, households, enrolled in
        out: list[list[int]] = []
        for index in frames:
            if index in resolvable:
                out.append([index])
                continue
            mine = persons[index]
            mine_in = set().union(*(enrolled.get(p, set()) for p in mine)) if mine else set()
            household = group[index].household
            for members, their_persons, their_households, their_in in parts:
                if not (mine & their_persons) and household not in their_in and not (mine_in & their_households):
                    members.append(index)
                    their_persons |= mine
                    their_households.add(household)
                    their_in |= mine_in
                    break
            else:
                parts.append(([index], set(mine), {household}, set(mine_in)))
        return out + [members for members, *_ in parts]

    def _run(self, index_: Any, held: dict[str, Any], group: list[_Request], part: list[int],
             frames: dict[int, pl.DataFrame], starts: list[int], warnings: dict[int, list[Problem]],
             alone: bool) -> dict[int, CheckAnswer]:
        first = group[part[0]]
        frame = pl.concat([frames[i] for i in part]) if len(part) > 1 else frames[part[0]]
        result = index_.check(frame, first.as_of, rules=list(first.rules) if first.rules is not None else None,
                              cadences=list(first.cadences) if first.cadences is not None else None)
        self.calls += 1
        self.checked += len(part)
        answers = {}
        by_household = result.flags.partition_by("household_id", as_dict=True) if result.flags.height else {}
        for index in part:
            request = group[index]
            mine = by_household.get((request.household,), result.flags.clear())
            if index and mine.height:
                mine = mine.with_columns(pl.col("evidence").map_elements(_own_rows, return_dtype=pl.String))
            answers[index] = CheckAnswer(flags=mine, ran=result.ran, skipped=result.skipped, held=held,
                                         frame=frames[index].with_columns(pl.col("_row") % _BLOCK),
                                         warnings=warnings.get(index, []), as_of=first.as_of, rows=mine.to_dicts())
        return answers
