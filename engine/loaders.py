"""A table of strings → a typed canonical frame, the rejected rows, and every problem found.

Headers are matched to a dataset's columns by canonical name, Chinese header or alias, ignoring
case and white space (engine.headers). A header that does not fit raises `SchemaError` once,
listing every problem; rows never raise. Each cell is read by its column's kind
(`schemas.model.Kind`, engine.cells); a row with any problem goes to `rejects` with all its
problems in `reason`, the others to `frame` (layout: docs/design.md, "Loaded frames"). Rows whose
cells are all empty (blank lines, trailing formatted Excel rows) are no records and are skipped
silently; a totals row (合计, a village's 小计: no ID, a cell saying only that) and the header
again (files joined one after another) are passed over with a warning (`_passed_over`).

Vectorised: the whole table is read in a few polars queries, every column at once (engine.cells);
Python runs per failing cell only (to build `Problem`s and `ids.problem`'s words). At
most `PROBLEM_CAP` problems are kept per column; further failing rows of that column are
summarised in one Problem (row None) that says how many more there are. `rejects` always keeps
every rejected row with its full `reason`. Warnings (roll rows kept with an invalid ID, whether
or not rejected for something else; invalid secondary IDs such as cadre_id_number) follow the
same cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import polars as pl

from engine import canonical, cells, clean_rows, files, ids
from engine.errors import InputError, Problem
from engine.headers import header_test, map_headers
from schemas import SOURCES, Column, Dataset, dataset

__all__ = ["PROBLEM_CAP", "Loaded", "load", "load_frame", "load_sources", "of_people", "summary", "summarized",
           "with_person"]

PROBLEM_CAP = 1000


@dataclass
class Loaded:
    """One dataset, loaded: usable rows, rejected rows, and what was wrong."""

    key: str
    file: str
    frame: pl.DataFrame
    rejects: pl.DataFrame
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # The usable rows found, when `frame` keeps only some of them (engine.batch keeps a source's
    # rows of the roll's people); None: `frame` is all of them.
    usable: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def usable_rows(self) -> int:
        return self.frame.height if self.usable is None else self.usable


def load(path: Path, key: str, as_of: date | None = None) -> Loaded:
    """Read `path` (CSV, XLSX, XLS or Parquet) as dataset `key`."""
    df, first_row = files.read_located(Path(path), numbers=True, is_header=header_test(key))
    return load_frame(df, key, Path(path).name, as_of, first_row)


def load_sources(directory: Path, as_of: date | None = None) -> tuple[dict[str, Loaded], list[str]]:
    """Every source file in `directory`, and the source keys without a file. Every file is
    tried before unusable ones raise together (one InputError of the common subclass)."""
    found = files.find_sources(Path(directory))
    loaded: dict[str, Loaded] = {}
    errors: list[InputError] = []
    for key in (k for k in SOURCES if k in found):
        try:
            loaded[key] = load(found[key], key, as_of)
        except InputError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        kinds = {type(e) for e in errors}
        raise (kinds.pop() if len(kinds) == 1 else InputError)(
            f"{len(errors)} 个数据源文件无法使用 ({len(errors)} source files cannot be used)",
            [p for e in errors for p in e.problems],
        )
    return loaded, [key for key in SOURCES if key not in found]


# ---- rows -----------------------------------------------------------------------------------


def load_frame(
    df: pl.DataFrame, key: str, file_label: str, as_of: date | None = None, first_row: int = 2,
    people: pl.Series | None = None, columns: list[str] | None = None,
) -> Loaded:
    """Read an in-memory table as dataset `key`; `first_row` is the spreadsheet row number of
    df's first row. Non-String columns are first turned to text as `files.to_text` does, but
    for amounts and numbers held as plain numbers (`_plain_numbers`). Totals rows and the header
    again are passed over (`_passed_over`). A CSV row with more fields than the header
    (`files.EXTRA`) is rejected alone (`_overlong`). With `people` (IDs), `frame` may keep only
    their rows and those of IDs written otherwise (`usable` counts all): engine.batch narrows
    it to them anyway, and a large table's canonical rows of others are then never built. With
    `columns`, `frame` may hold only those (and `_row`): the caller keeps no other; ids.PERSON
    among them, a large table's scans give it (else `with_person` makes it)."""
    extra = df.get_column(files.EXTRA) if files.EXTRA in df.columns else None
    if extra is not None:
        df = df.drop(files.EXTRA)
    loaded = _merged_hint(_passed_over(_load_frame(df, key, file_label, as_of, first_row, people, columns)))
    return loaded if extra is None else _overlong(loaded, df, extra, first_row)


def _overlong(loaded: Loaded, df: pl.DataFrame, extra: pl.Series, first_row: int) -> Loaded:
    """Rows that had more fields than the header: their cells are not where the header says
    (a comma typed inside a name, say), so each is rejected, whatever its first cells hold."""
    positions = extra.is_not_null().arg_true()
    rows = [first_row + at for at in positions.to_list()]
    names, _ = map_headers(df, dataset(loaded.key), loaded.file)
    reasons = []
    problems = []
    for row, cells_beyond in zip(rows, extra.gather(positions).to_list(), strict=True):
        message = (f"该行的字段比表头多，多出“{cells_beyond}”：可能是某个单元格中有未加引号的逗号，请核对后重新提交 "
                   f"(the row has more fields than the header: a comma inside a cell?)")
        reasons.append(message)
        problems.append(Problem(loaded.file, message, row, value=cells_beyond))
    # The row's other problems come of its cells standing one place off: not said.
    shifted = set(rows)
    problems += [p for p in loaded.problems if p.row not in shifted]
    as_given = df[positions].rename(names).select(
        pl.Series("_row", rows, dtype=pl.Int64), pl.all().cast(pl.String), pl.Series("reason", reasons, dtype=pl.String))
    rejects = pl.concat([loaded.rejects.filter(~pl.col("_row").is_in(rows)), as_given], how="diagonal_relaxed")
    usable = loaded.usable
    if usable is not None:  # a count of a narrowed frame's rows: those the reading kept are now rejected
        usable -= len(shifted - set(loaded.rejects.get_column("_row").to_list()))
    return replace(loaded, frame=loaded.frame.filter(~pl.col("_row").is_in(rows)), rejects=rejects.sort("_row"),
                   problems=sorted(problems, key=lambda p: p.row or 0), usable=usable)


# A cell that labels a totals row: 合计, 合 计, 总计：, 小计 (a village's subtotal), 共计, 累计.
_TOTALS = re.compile(r"^\s*[合总小共累]\s*计\s*[:：]?\s*$")
_TOTALS_ROW = "合计行，已跳过 (a totals row (合计/小计): passed over, not a record)"
_HEADER_AGAIN = ("表头再次出现（几个文件拼接而成？），已跳过 "
                 "(the header again, as where files were joined one after another: passed over, not a record)")


def _passed_over(loaded: Loaded) -> Loaded:
    """Rows of a spreadsheet kept by hand that are no records, but were rejected as ones: a 合计
    row at the end (or a 小计 under each village: no ID, a cell saying only that), and the header
    again where several townships' files were joined (its ID cell is the ID column's header).
    Each is passed over with a warning, so that it does not make the whole input unusable. Only
    rejected rows are looked at: nothing is added to the reading of a clean file."""
    rejects = loaded.rejects
    if rejects.height == 0 or "id_number" not in rejects.columns:
        return loaded
    texts = [c for c, dtype in rejects.schema.items() if dtype == pl.String and c not in ("id_number", "reason")]
    no_id = pl.col("id_number").is_null() | (pl.col("id_number").str.strip_chars() == "")
    totals = no_id & pl.any_horizontal(pl.col(texts).str.contains(_TOTALS.pattern).fill_null(False)) if texts \
        else pl.lit(False)
    reasons = dict.fromkeys(rejects.filter(totals).get_column("_row").to_list(), _TOTALS_ROW)
    names_a_column = header_test(loaded.key)
    for row, cell in rejects.filter(~no_id).select("_row", "id_number").iter_rows():
        if names_a_column([cell]):
            reasons[row] = _HEADER_AGAIN
    if not reasons:
        return loaded
    passed = [Problem(loaded.file, reason, row=row) for row, reason in sorted(reasons.items())]
    return replace(loaded, rejects=rejects.filter(~pl.col("_row").is_in(list(reasons))),
                   problems=[p for p in loaded.problems if p.row not in reasons],
                   warnings=[w for w in loaded.warnings if w.row not in reasons] + passed)


_MERGED_HINT = ("多行“家庭编号”为空：若原表中该列是合并单元格，另存为 CSV 时只保留了每个合并区域的第一行，"
                "请直接上传 Excel 文件，或取消合并并填充后再导出 (several rows have no household_id: if the column was "
                "merged in Excel, a CSV keeps only the first row of each merge; upload the workbook itself, or unmerge "
                "and fill the column before saving as CSV)")


def _merged_hint(loaded: Loaded) -> Loaded:
    """A roll saved as CSV from a sheet whose 家庭编号 was merged over each household's members has
    it on each household's first row only: every other member is rejected for an empty
    household, and the way out is not in the file. Said once, beside the rows' problems."""
    if loaded.key != "roll" or not loaded.file.lower().endswith(".csv"):
        return loaded
    empty = sum(1 for p in loaded.problems if p.column == "household_id" and p.message == cells.EMPTY)
    if empty < 2:
        return loaded
    return replace(loaded, problems=[*loaded.problems, Problem(loaded.file, _MERGED_HINT, column="household_id",
                                                               column_zh=dataset("roll").column("household_id").zh)])


def _load_frame(df: pl.DataFrame, key: str, file_label: str, as_of: date | None, first_row: int,
                people: pl.Series | None = None, columns: list[str] | None = None) -> Loaded:
    ds = dataset(key)
    names, warnings = map_headers(df, ds, file_label)
    if df.height > cells.SMALL:
        plain = _plain_numbers(df, names, ds)
        typed = [c for c, dtype in df.schema.items() if dtype != pl.String and names[c] not in plain]
        if typed:
            df = df.with_columns(files.to_text(df.select(typed)))
        if df.height >= clean_rows.ROWS:
            return _screened(df.rename(names), ds, file_label, as_of, first_row, warnings, plain, people, columns)
        return _read(df.rename(names), ds, file_label, as_of, first_row, warnings, plain)
    if any(dtype != pl.String for dtype in df.schema.values()):
        df = files.to_text(df)
    if any(old != new for old, new in names.items()):
        # The same series renamed, not a query: over a few rows (an API request) it costs more than the work.
        df = pl.DataFrame([df.get_column(c).alias(names.get(c, c)) for c in df.columns])
    # A few rows (an API request): those in canonical form need no query (engine.canonical);
    # the others are read the usual way and numbered as they were.
    plan = cells.plan(key, tuple(df.columns), as_of, True)
    rejecting = {c.name for c in plan.rejecting}
    dates = (cells.FIRST_DATE, cells.LAST_DATE)
    quick, others, noted = canonical.read(df, ds, as_of, first_row, dates, file_label, rejecting)
    if quick is None or quick.height == 0 or len(noted) > PROBLEM_CAP:
        return _read(df, ds, file_label, as_of, first_row, warnings)
    if not others:
        return Loaded(key, file_label, quick, plan.no_rejects.clone(), [], warnings + noted)
    rest = _read(df[others], ds, file_label, as_of, 0, [])
    if len(noted) + len(rest.warnings) > PROBLEM_CAP:  # capped per column: leave the counting to one reading
        return _read(df, ds, file_label, as_of, first_row, warnings)
    rest = _renumbered(rest, pl.Series("_row", others, dtype=pl.Int64) + first_row)
    frame = pl.concat([quick, rest.frame]).sort("_row")
    # ID warnings column by column, row by row, as one reading lists them.
    noted = sorted(noted + rest.warnings, key=lambda p: (ds.names.index(p.column or ""), p.row))
    return Loaded(key, file_label, frame, rest.rejects, rest.problems, warnings + noted)


def _renumbered(rest: Loaded, numbers: pl.Series) -> Loaded:
    """`rest`, the usual reading of some of a table's rows numbered from 0 in their order, with
    their rows' numbers in the table (`numbers`, Int64, by position)."""

    def renumbered(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(numbers.gather(frame.get_column("_row")).alias("_row"))

    def moved(problems: list[Problem]) -> list[Problem]:  # (at most PROBLEM_CAP a column: one by one)
        return [replace(p, row=int(numbers[p.row])) if p.row is not None else p for p in problems]

    return replace(rest, frame=renumbered(rest.frame), rejects=renumbered(rest.rejects), problems=moved(rest.problems),
                   warnings=moved(rest.warnings))


def _screened(df: pl.DataFrame, ds: Dataset, file_label: str, as_of: date | None, first_row: int,
              warnings: list[Problem], plain: tuple[str, ...], people: pl.Series | None,
              columns: list[str] | None = None) -> Loaded:
    """A large table (its headers mapped): the rows already in canonical form read by compiled
    scans (engine.clean_rows), the others the usual way (`_read`); the same frame, rejects,
    problems and warnings as reading every row the usual way. With `people`, the canonical rows
    of others are left out of `frame` (counted in `usable`)."""
    screened = clean_rows.read(df, ds, as_of, first_row, plain, people, columns)
    if screened is None:  # mostly rows in other spellings: the usual reading of them all
        return _read(df, ds, file_label, as_of, first_row, warnings, plain)
    if screened.others.len() == 0:
        no_rejects = cells.plan(ds.key, tuple(df.columns), as_of, False, plain).no_rejects.clone()
        return Loaded(ds.key, file_label, screened.frame, no_rejects, [], warnings,
                      None if people is None else screened.clean)
    numbers = screened.others.cast(pl.Int64) + first_row
    rest = _renumbered(_read(df[screened.others], ds, file_label, as_of, 0, [], plain), numbers)
    usable = None if people is None else screened.clean + rest.frame.height
    kept = rest.frame if people is None else of_people(rest.frame, people)
    if ids.PERSON in screened.frame.columns:
        kept = with_person(kept)
    frame = clean_rows.joined(screened, kept, first_row)
    return Loaded(ds.key, file_label, frame, rest.rejects, rest.problems, warnings + rest.warnings, usable)


def with_person(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (a loaded frame: id_number, id_valid) with ids.PERSON, its valid IDs' codes."""
    return frame.with_columns(pl.when(pl.col("id_valid")).then(ids.code_expr(pl.col("id_number"))).alias(ids.PERSON))


def of_people(frame: pl.DataFrame, people: pl.Series) -> pl.DataFrame:
    """The rows of `frame` whose id_number is one of `people`, in order. The smaller side is
    hashed: a piece's few rows against a city roll's 0.5M people, a set of the piece's IDs
    (hashing the people each time cost ~30 ms a piece)."""
    ids = frame.get_column("id_number")
    if frame.height < people.len():
        people = people.filter(people.is_in(ids.implode()))
    return frame.filter(ids.is_in(people.implode()))


def _plain_numbers(df: pl.DataFrame, names: dict[str, str], ds: Dataset) -> tuple[str, ...]:
    """The amount and number columns (their canonical names) that df holds as integers or floats
    (a Parquet file's) whose every value `files.to_text` would spell as a plain decimal: these
    are read as they are, for a round trip through text gives the same value and costs ~0.1 s a
    million cells (2 s of a city's run from files). The others (NaN, infinities, |x| ≥ 1e15 or
    below 1e-5, which text spells otherwise) are read as text, as they always were."""
    numeric = {c.name for c in ds.columns if c.kind in ("money", "number")}
    candidates = [h for h, dtype in df.schema.items()
                  if names[h] in numeric and (dtype.is_integer() or dtype.is_float())]
    if not candidates:
        return ()
    value = pl.col(candidates).cast(pl.Float64).abs()
    plain = value.is_null() | (value.is_finite() & (value < 1e15) & ((value == 0) | (value >= 1e-5)))
    found = df.select(plain.all()).row(0)
    return tuple(names[h] for h, ok in zip(candidates, found, strict=True) if ok)


def _read(df: pl.DataFrame, ds: Dataset, file_label: str, as_of: date | None, first_row: int,
          warnings: list[Problem], plain: tuple[str, ...] = ()) -> Loaded:
    """load_frame's usual reading of `df` (its headers mapped already): three passes of queries.
    `plain`: amount columns held as numbers (`_plain_numbers`)."""
    key = ds.key
    given = tuple(df.columns)
    small = df.height <= cells.SMALL
    plan, opt = cells.plan(key, given, as_of, small, plain), cells.query_options(small)

    query = df.lazy().with_row_index("_row", offset=first_row)
    for step in plan.first:
        query = query.with_columns(step)
    read = query.collect(optimizations=opt)
    redone = [s for c in ds.columns for s in cells.second_pass(c, read, small)]
    if redone:
        read = read.with_columns(redone)
    if small:
        read = read.with_columns(
            cells.check_characters(read.get_column(c.name)).alias(cells.CHECKED + c.name)
            for c in plan.id_columns
        )
    query = read.lazy()
    if not read.get_column(cells.PRESENT).all():
        query = query.filter(cells.PRESENT)  # blank rows are no records
    for step in plan.checks:
        query = query.with_columns(step)
    full = query.select(*plan.outputs, *plan.scratch, plan.rejected).collect(optimizations=opt)

    for c in plan.id_columns:
        if c not in plan.rejecting:
            warnings += _id_warnings(full, c, file_label, as_of)
    rejected = full.get_column(cells.REJECTED)
    for c in plan.lenient:
        warnings += _read_as_empty(full, rejected, c, file_label, given)
    if not rejected.any():
        return Loaded(key, file_label, full[plan.outputs], plan.no_rejects.clone(), [], warnings)
    # (df[names], not df.select(names), which copies every column of a large frame.)
    frame = full[plan.outputs].filter(~rejected)
    # Only the rejected rows' scratch columns are needed further: filter a narrow frame.
    bad = full[["_row", *plan.scratch]].filter(rejected)
    if plain:  # their cells as the text path spells them, for rejects and problems
        raws = [cells.RAW + n for n in plain]
        bad = bad.with_columns(files.to_text(bad.select(raws)))
    for c in plan.rejecting:
        bad = _id_messages(bad, c, as_of)
    errors = [c for c in ds.columns if bad.get_column(cells.ERR + c.name).null_count() < bad.height]
    parts = [pl.lit(f"{c.name}({c.zh}): ") + pl.col(cells.ERR + c.name) for c in errors]
    rejects = bad.select(
        "_row", *[pl.col(cells.RAW + n).alias(n) for n in given],
        pl.concat_str(parts, separator="; ", ignore_nulls=True).cast(pl.String).alias("reason"),
    )
    problems = _problems(bad, errors, file_label, given)
    return Loaded(key, file_label, frame, rejects, problems, warnings)


def _id_messages(bad: pl.DataFrame, c: Column, as_of: date | None) -> pl.DataFrame:
    """Put `ids.problem`'s words in the error column of invalid IDs. It is a scalar function,
    so it runs once per distinct failing value and nowhere else."""
    invalid = pl.col(cells.BAD + c.name)
    raws = bad.filter(invalid).get_column(cells.RAW + c.name)
    if raws.len() == 0:
        return bad
    messages = {v: ids.problem(v, as_of) or "" for v in raws.unique().to_list()}
    found = pl.col(cells.RAW + c.name).replace_strict(messages, default=None, return_dtype=pl.String)
    error = pl.col(cells.ERR + c.name)
    filled = pl.when(invalid & error.is_null()).then(found).otherwise(error)
    return bad.with_columns(filled.alias(cells.ERR + c.name))


def _read_as_empty(full: pl.DataFrame, rejected: pl.Series, c: Column, label: str,
                   given: tuple[str, ...]) -> list[Problem]:
    """Kept rows whose lenient cell had an error (cells.Plan.lenient): warnings, capped. (Every
    roll is read through here: only the failing rows' few columns are copied, not the roll.)"""
    failed = full.get_column(cells.ERR + c.name).is_not_null() & ~rejected
    count = int(failed.sum())
    if not count:
        return []
    columns = ["_row", cells.ERR + c.name, *([cells.RAW + c.name] if c.name in given else [])]
    failing = full[columns].filter(failed)
    shown = failing.head(PROBLEM_CAP)
    if c.name in given:  # the cell as the text path spells it (an amount held as a number too)
        raw = shown.select(cells.RAW + c.name)
        values = (raw if raw.dtypes[0] == pl.String else files.to_text(raw)).to_series().to_list()
    else:
        values = [None] * shown.height
    read_as = f"已按 {c.default} 处理 (read as {c.default})" if c.default is not None else "已按空值处理 (read as empty)"
    warnings = [Problem(label, f"{error}；{read_as}", row, c.name, c.zh, value)
                for (row, error), value in zip(shown.select("_row", cells.ERR + c.name).iter_rows(), values,
                                               strict=True)]
    if failing.height > PROBLEM_CAP:
        warnings.append(summary(label, c, failing.height - PROBLEM_CAP))
    return warnings


def _id_warnings(full: pl.DataFrame, c: Column, label: str, as_of: date | None) -> list[Problem]:
    """Rows kept with an invalid ID (the roll, secondary ID columns): warnings, capped."""
    count = full.get_column(cells.BAD + c.name).sum()
    if not count:
        return []
    shown = full.select(pl.col("_row", f"{c.name}_raw").filter(pl.col(cells.BAD + c.name)).head(PROBLEM_CAP))
    warnings = [
        Problem(label, ids.problem(raw, as_of) or "", row, c.name, c.zh, raw)
        for row, raw in shown.iter_rows()
    ]
    if count > PROBLEM_CAP:
        warnings.append(summary(label, c, count - PROBLEM_CAP))
    return warnings


def summary(label: str, c: Column, more: int) -> Problem:
    """The problem saying how many more rows of column `c` had one than are listed."""
    return Problem(
        label,
        f"另有 {more} 行“{c.zh}”列的问题未逐条列出 "
        f"({more} more rows with a problem in column {c.name} are not listed one by one)",
        column=c.name,
        column_zh=c.zh,
    )


_SUMMARY = re.compile(r"^另有 (\d+) 行“")


def summarized(problem: Problem) -> int | None:
    """How many rows a `summary` problem stands for (None: not a summary). Pieces of a file read
    apart (engine.pieces) add theirs up."""
    if problem.row is not None or problem.column is None:
        return None
    found = _SUMMARY.match(problem.message)
    return int(found.group(1)) if found else None


def _problems(
    bad: pl.DataFrame, errors: list[Column], label: str, given: tuple[str, ...]
) -> list[Problem]:
    """One Problem per failing cell, sorted by row then column, at most PROBLEM_CAP per column;
    then one summary per column that had more. One query gathers every column's cells."""
    shown = []
    for c in errors:
        error = pl.col(cells.ERR + c.name)
        raw = pl.col(cells.RAW + c.name) if c.name in given else pl.when(False).then(error)  # null
        shown += [
            e.filter(error.is_not_null()).head(PROBLEM_CAP).implode()
            for e in (pl.col("_row"), raw, error)
        ]
    lists = bad.select(e.alias(str(i)) for i, e in enumerate(shown)).row(0)
    found: list[tuple[int, int, Problem]] = []
    summaries = []
    for position, c in enumerate(errors):
        rows, values, messages = lists[3 * position : 3 * position + 3]
        for row, value, message in zip(rows, values, messages, strict=True):
            found.append((row, position, Problem(label, message, row, c.name, c.zh, value)))
        failing = bad.height - bad.get_column(cells.ERR + c.name).null_count()
        if failing > PROBLEM_CAP:
            summaries.append(summary(label, c, failing - PROBLEM_CAP))
    return [p for _, _, p in sorted(found, key=lambda t: t[:2])] + summaries
