"""A run from files: the roll and a sources directory in, a RunResult and every problem out.

    run_files(roll, sources_dir, as_of, policy, rules, cadences) -> FileRun

Shared by every adapter (CLI, API, scheduled jobs), so that all of them judge inputs the same
way (docs/design.md, "CLI exit codes"):

* the rule selection and the policy are checked first: a typo there fails in a second, not
  after loading a large roll;
* every file is tried before anything is decided, and every whole-file problem of every file
  (roll and sources alike) is raised together as one InputError: nothing is run;
* rows rejected by the loaders are returned as `problems` and `rejects`; the other rows are run.

Only the sources that the selected rules use are loaded (all of them by default): running the
monthly rules must not fail, or wait, because of this year's deposits file. A source file that
is present but not used is listed in `unused_sources`. Hukou, when present, is always used: it
is where dirty and wrong roll IDs are resolved (engine.resolve), which every rule relies on.
Each source is validated a piece at a time and kept in its contract's columns (engine.pieces.
load_joined): the same rows and problems as a whole reading, in a bounded working memory.

Every row of every file is validated (its problems listed, its rejects written), but only the
rows of the roll's people are kept: the rules join a source to the roll's rows on their ID and
on nothing else, so no other row can be flagged or shown (engine.indexed narrows keyed sources
the same way). Hukou is kept whole until the roll's IDs are resolved against it; then the
people are the roll's IDs as given and as resolved. The other sources are read meanwhile, on a
second thread (and on this one too once hukou is narrowed), each piece narrowed as it is
validated to the roll's IDs and those resolution could accept (engine.resolve.reachable: ~44k
at city scale), then to the people. At city scale (27.75M source rows) that keeps ~0.5M rows:
the run's peak fell from 3.6 to 1.9 GiB (benchmarks/HISTORY.md, the narrowing round), and
reading beside resolving saved ~1 s of 8 (the overlap round).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import polars as pl

from schemas import SOURCES

from . import clean_rows, files, ids, loaders, names, pieces
from .errors import InputError, Problem, SelectionError
from .loaders import Loaded
from .policy import Policy, load_policy
from .resolve import reachable, resolve
from .rules import RULES, Rule, select_rules
from .run import RunResult, run

__all__ = ["FileRun", "RUN_PIECE_BYTES", "run_files"]

RUN_PIECE_BYTES = 128 << 20  # a source file's bytes validated at a time (engine.pieces; ~1 GB of working memory)
_KERNEL_FILE_BYTES = 1 << 20  # smaller than any file of 500k rows (clean_rows.ROWS): see _large


@dataclass
class FileRun:
    result: RunResult
    problems: list[Problem] = field(default_factory=list)  # row-level: those rows were rejected
    warnings: list[Problem] = field(default_factory=list)  # rows kept (e.g. invalid roll IDs)
    rejects: pl.DataFrame = field(default_factory=pl.DataFrame)  # file, row, reason, cells
    missing_sources: list[str] = field(default_factory=list)  # used by a selected rule, no file
    unused_sources: list[str] = field(default_factory=list)  # a file, but no selected rule uses it
    # a file that cannot be used at all (its problems are in `problems`): its rules are skipped
    unusable_sources: list[str] = field(default_factory=list)
    # 'roll' and each loaded source: a source's usable rows of the roll's people (as given and as
    # resolved), in its contract's columns only; usable_rows counts all of them
    loaded: dict[str, Loaded] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every input row was usable."""
        return not self.problems


def _unusable_reason(rule_id: str, unusable: list[str]) -> str | None:
    """Why a skipped rule did not run, when a file it needs could not be used (rather than the
    engine's "not provided": the file was there)."""
    named = [key for key in RULES[rule_id].sources if key in unusable]
    if not named:
        return None
    return f"source file {', '.join(named)} cannot be used (数据源文件无法使用，见问题列表)"


def _rejects(loaded: dict[str, Loaded]) -> pl.DataFrame:
    parts = [
        item.rejects.select(
            pl.lit(item.file, pl.String).alias("file"),
            pl.col("_row").cast(pl.Int64).alias("row"),
            pl.col("reason").cast(pl.String),
            # An input column called file or row must not collide with ours.
            *[
                pl.col(c).cast(pl.String).alias(f"{c}_input" if c in ("file", "row") else c)
                for c in item.rejects.columns
                if c not in ("_row", "reason")
            ],
        )
        for item in loaded.values()
        if item.rejects.height
    ]
    if not parts:
        return pl.DataFrame(schema={"file": pl.String, "row": pl.Int64, "reason": pl.String})
    return pl.concat(parts, how="diagonal")


def _people(roll: pl.DataFrame | None, resolved: pl.DataFrame | None) -> pl.Series:
    """The IDs whose source rows the rules can read: the roll's, as given and as resolved (the
    rules join sources to the roll's rows on their ID, and on nothing else). No roll: none (the
    sources are then only checked: nothing is run)."""
    given = [frame.get_column("id_number") for frame in (roll, resolved) if frame is not None]
    if not given:
        return pl.Series("id_number", [], pl.String)
    return pl.concat(given).drop_nulls().unique()


def _narrowed(item: Loaded, people: pl.Series) -> Loaded:
    """`item` with only the rows of `people`, counting all its usable rows; by its IDs' codes
    where it has them (hukou's 10M rows: 0.44 s by the IDs' text, 0.12 s by their codes)."""
    frame = item.frame
    if ids.PERSON in frame.columns:
        codes = ids.codes_of_ids(people)
        # (Series.is_in: in a query the same test took 3x as long, 0.34 s.)
        frame = frame.filter(frame.get_column(ids.PERSON).is_in(codes.implode()))
    else:
        frame = pieces.of_people(frame, people)
    return replace(item, frame=frame, usable=item.usable_rows)


def _coded(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (a source's kept rows) with its IDs' codes, ids.PERSON, which the rules then join
    on: 0.18 s less of the city's 0.85 s of rules than on the IDs' text (benchmarks/HISTORY.md,
    the passes round). Hukou has them already; the others' few kept rows are coded here."""
    if ids.PERSON in frame.columns:
        return frame
    return frame.with_columns(ids.code_expr(pl.col("id_number")).alias(ids.PERSON))


def _load_ahead(kernels: bool, resolving: bool) -> None:
    """What the run will need and would load on first use, loaded while the roll and hukou are
    read (polars and the kernels release the GIL): the kernels (~0.5 s) and, when roll IDs are
    resolved, pypinyin's tables (~0.05 s without its phrases: engine.names)."""
    if kernels:
        clean_rows.load_kernels()
    if resolving:
        names.load()


def _large(roll: Path, sources_dir: Path) -> bool:
    """Whether an input file may hold a table the kernels read (clean_rows.ROWS rows: its IDs
    alone are megabytes in any format, compressed or not); a small run does not start numba at
    all. Only a matter of time: a large table met without it loads the kernels on first use."""
    try:
        sizes = [Path(roll).stat().st_size, *(entry.stat().st_size for entry in os.scandir(sources_dir))]
    except OSError:  # told apart by the loaders, with their own messages
        return True
    return max(sizes) >= _KERNEL_FILE_BYTES


def run_files(
    roll: Path,
    sources_dir: Path,
    as_of: date,
    policy: Path | None = None,
    rules: list[str] | None = None,
    cadences: list[str] | None = None,
    on_step: Callable[[str], None] | None = None,
    *,
    resolve_ids: bool = True,
) -> FileRun:
    """Load, check and run; raises InputError when the roll (or the sources' directory) cannot be
    used (every file problem at once), PolicyError or SelectionError. A source file that cannot
    be used is as good as missing: its problems are listed, its rules skipped, the others run.
    `on_step` is told what is being done, for a progress display. `resolve_ids=False` runs
    without ID resolution (for comparison)."""
    step = on_step or (lambda _: None)
    selected = select_rules(rules, cadences)
    if not selected:
        raise SelectionError(
            f"没有同时符合所选规则和周期的规则 (no rule is both in --rules {','.join(rules or [])} "
            f"and of cadence {','.join(cadences or [])})"
        )
    settings = load_policy(policy)
    # Joined before the run returns, not left to the interpreter's exit: a thread still starting
    # numba (LLVM's C++) when the process ends is stopped inside it and aborts the process
    # ("FATAL: exception not rethrown", SIGABRT after the flags were written), as a small run
    # that finished first once did.
    loading = threading.Thread(target=_load_ahead, args=(_large(roll, sources_dir), resolve_ids), name="load-ahead")
    loading.start()
    try:
        return _run_files(roll, sources_dir, as_of, settings, selected, rules, cadences, step, resolve_ids)
    finally:
        loading.join()


def _run_files(roll: Path, sources_dir: Path, as_of: date, settings: Policy, selected: list[Rule],
               rules: list[str] | None, cadences: list[str] | None, step: Callable[[str], None],
               resolve_ids: bool) -> FileRun:
    """run_files' work, once the rule selection and the policy are known to be good."""
    used = {s for r in selected for s in (*r.sources, *r.optional_sources)}
    needed = used | ({"hukou"} if resolve_ids else set())

    file_problems: list[Problem] = []  # the roll's and the directory's: nothing can run
    source_problems: dict[str, list[Problem]] = {}  # a source file's: its rules are skipped
    loaded: dict[str, Loaded] = {}
    step(f"读取名册 reading {Path(roll).name}")
    try:
        loaded["roll"] = loaders.load(Path(roll), "roll", as_of)
    except InputError as error:
        file_problems += error.problems or [Problem(Path(roll).name, error.message)]
    try:
        found = files.find_sources(Path(sources_dir))
    except InputError as error:
        file_problems += error.problems or [Problem(Path(sources_dir).name, error.message)]
        found = {}

    def read(key: str, people: pl.Series | None, coded: bool = False) -> None:
        step(f"读取数据源 reading {found[key].name}")
        try:
            # A piece at a time, each piece's rows kept in the contract's columns only, as a
            # snapshot's are (store.snapshots): the rules read no other. Read whole, a city's
            # hukou took ~3.4 GB to validate, and the loader's own columns (_row,
            # id_number_raw, id_valid, id_method) were held to the end: ~1 GB of its sources.
            # `coded`: with the IDs' codes (ids.PERSON), which the loader's scans give, to resolve
            # and narrow by (integers: engine.hukou_lookup.ScanLookup).
            columns = [*SOURCES[key].names, *([ids.PERSON] if coded else [])]
            loaded[key] = pieces.load_joined(found[key], key, as_of, RUN_PIECE_BYTES, columns, people)
        except InputError as error:
            source_problems[key] = error.problems or [Problem(found[key].name, error.message)]

    keys = [key for key in SOURCES if key in found and key in needed]  # contract order: stable messages
    others = [key for key in keys if key != "hukou"]
    roll_frame = loaded["roll"].frame if "roll" in loaded else None
    resolving = resolve_ids and "hukou" in keys and roll_frame is not None
    given = _people(roll_frame, None)
    # The other sources are read beside hukou and the resolution (~3 s at city scale, on a
    # second thread: polars, pyarrow and the kernels release the GIL; then on both threads),
    # narrowed to `early`, the IDs the resolved roll can hold: its own and those resolution
    # could accept (a superset). None: not known, the sources wait for the people.
    early: pl.Series | None = given
    if resolving:
        reach = reachable(roll_frame, as_of)
        early = None if reach is None else pl.concat([given, reach]).unique()
    waiting = list(others) if early is not None else []  # taken in order by whichever thread is free
    taking = threading.Lock()

    def read_waiting() -> None:
        while True:
            with taking:
                if not waiting:
                    return
                key = waiting.pop(0)
            read(key, early)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sources") as pool:
        pending = pool.submit(read_waiting)
        if "hukou" in keys:  # whole: the roll's IDs are resolved against all of it
            read("hukou", None, coded=True)
        resolved = None
        if resolving and "hukou" in loaded:
            step("核对身份证号 resolving roll IDs against hukou")
            resolved = resolve(roll_frame, loaded["hukou"].frame.lazy(), as_of)
        people = _people(roll_frame, resolved)
        if "hukou" in loaded:  # (its 10M rows let go before this thread reads sources too)
            loaded["hukou"] = _narrowed(loaded["hukou"], people)
        read_waiting()
        pending.result()
    if early is None or not people.is_in(early.implode()).all():
        # Read now, narrowed to the people themselves (no reach known, or a resolution outside
        # it, which `reachable` rules out: this keeps the result right regardless).
        for key in others:
            source_problems.pop(key, None)
            read(key, people)
    elif early is not given:
        for key in others:
            if key in loaded:
                loaded[key] = _narrowed(loaded[key], people)
    loaded = {key: loaded[key] for key in ("roll", *keys) if key in loaded}  # in contract order, however read
    unusable = [key for key in keys if key in source_problems]
    if file_problems:
        file_problems += [p for key in unusable for p in source_problems[key]]
        files_named = sorted({p.file for p in file_problems})
        raise InputError(
            f"输入文件无法使用，未执行比对 (input cannot be used, nothing was run): {', '.join(files_named)}",
            file_problems,
        )

    sources = {key: _coded(item.frame) for key, item in loaded.items() if key != "roll"}
    result = run(loaded["roll"].frame if resolved is None else resolved, sources, as_of, settings, rules, cadences,
                 resolve_ids=resolve_ids, on_step=step, coded=True)
    # What the caller is given is in the contract's columns, as a snapshot's are.
    loaded = {key: replace(item, frame=item.frame.drop(ids.PERSON, strict=False)) for key, item in loaded.items()}
    if unusable:
        result.skipped = [(rule_id, _unusable_reason(rule_id, unusable) or reason) for rule_id, reason in result.skipped]
    return FileRun(
        result=result,
        problems=[*(p for key in unusable for p in source_problems[key]),
                  *(p for item in loaded.values() for p in item.problems)],
        unusable_sources=unusable,
        warnings=[p for item in loaded.values() for p in item.warnings],
        rejects=_rejects(loaded),
        missing_sources=[key for key in SOURCES if key in used and key not in found],
        unused_sources=[key for key in SOURCES if key in found and key not in needed],
        loaded=loaded,
    )
