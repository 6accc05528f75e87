"""A large delivery read and validated a piece at a time, so that memory stays bounded.

    for loaded in load_pieces(path, "hukou", as_of):      # engine.loaders.Loaded, one per piece
        ...write loaded.frame, keep loaded.rejects...
    problems = merged_problems(parts, "hukou", path.name)  # as one reading would list them

Why: engine.loaders reads a file whole, and validating it takes several times its size in
memory: a city's hukou (10M rows, a 494 MB CSV) peaked at 3.6 GB, so a province's (100M rows)
would need ~36 GB. Read here, a piece of about PIECE_BYTES of the file at a time, the peak is a
piece's working memory whatever the file's size. Each piece is validated by
engine.loaders.load_frame with its records' own spreadsheet row numbers, so problems, rejects
and warnings name the rows a whole reading would.

CSV: pieces end at a line break outside quotes (a quoted cell may span lines); the encoding is
settled by the first piece that is not plain ASCII (UTF-8, else GB18030) and every later piece
must decode in it. A UTF-16 file (Excel's "Unicode text") is read whole. Parquet: in slices of
as many rows as a CSV piece would hold (a file of no more rows is read whole). XLSX: whole (a
sheet holds at most 1,048,576 rows).

A header column with no name is kept or dropped as the first piece decides (a whole reading
keeps it when any row fills it): such a column is never a contract column, only its cells in
the rejects file can differ.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import polars as pl

from schemas import dataset

from . import files, ids, loaders
from .errors import FileUnreadable, Problem, SchemaError
from .headers import header_test
from .loaders import PROBLEM_CAP, Loaded, of_people

__all__ = ["PIECE_BYTES", "load_joined", "load_pieces", "merged_problems", "of_people", "read_pieces"]

PIECE_BYTES = 512 << 20  # a city's largest delivery (hukou, 494 MB) is one; ~3.6 GB of working memory
_HEAD = 1 << 16  # bytes in which the header must be found (as engine.files reads it)
_BACK = 64  # line breaks tried back from a piece's end for one outside quotes
_MOST = 4  # pieces' worth of bytes read looking for that line break before cutting anyway
_SAMPLE_ROWS = 10_000  # a Parquet file's first rows, measured for its pieces' size


def load_pieces(path: Path, key: str, as_of: date | None = None, piece_bytes: int | None = None,
                people: pl.Series | None = None, columns: list[str] | None = None) -> Iterator[Loaded]:
    """engine.loaders.load of `path`, a piece of about `piece_bytes` (default PIECE_BYTES) at a
    time (see the module's docstring); `people` and `columns` as engine.loaders.load_frame
    takes them."""
    path = Path(path)
    for table, first_row in read_pieces(path, piece_bytes or PIECE_BYTES, header_test(key)):
        yield loaders.load_frame(table, key, path.name, as_of, first_row, people, columns)


def load_joined(path: Path, key: str, as_of: date | None = None, piece_bytes: int | None = None,
                columns: list[str] | None = None, people: pl.Series | None = None) -> Loaded:
    """engine.loaders.load of `path`, read a piece at a time and joined again: the rows, rejects,
    problems and warnings a whole reading gives. Each piece's rows are kept in `columns` only
    (None: all) as soon as they are validated, so that the peak is one piece's working memory
    on top of the rows kept, not the whole file's. With `people` (IDs), only the rows of those
    IDs are kept, and `usable` counts them all."""
    label = Path(path).name
    frames: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    problems: list[list[Problem]] = []
    warnings: list[list[Problem]] = []
    usable = 0
    for loaded in load_pieces(path, key, as_of, piece_bytes, people, columns):
        frame = loaded.frame
        if columns is not None and ids.PERSON in columns and ids.PERSON not in frame.columns:
            frame = loaders.with_person(frame)  # (a large piece's scans gave it already)
        frame = frame if columns is None else frame.select(columns)
        usable += loaded.usable_rows
        if people is not None and loaded.usable is None:  # (a large piece's is narrowed already)
            frame = of_people(frame, people)
        frames.append(frame)
        rejects.append(loaded.rejects)
        problems.append(loaded.problems)
        warnings.append(loaded.warnings)
    counted = None if people is None else usable
    if len(frames) == 1:
        return Loaded(key, label, frames[0], rejects[0], problems[0], warnings[0], counted)
    return Loaded(key, label, pl.concat(frames, rechunk=False), pl.concat(rejects, how="diagonal_relaxed"),
                  merged_problems(problems, key, label), merged_problems(warnings, key, label), counted)


def read_pieces(path: Path, piece_bytes: int | None = None,
                is_header: files.HeaderTest | None = None) -> Iterator[tuple[pl.DataFrame, int]]:
    """engine.files.read_located(path, numbers=True, is_header=is_header), a piece at a time:
    tables with the same columns (String, and a Parquet file's numbers as they are), each with
    the spreadsheet row number of its first record."""
    path = Path(path)
    piece_bytes = piece_bytes or PIECE_BYTES
    suffix = files.readable_suffix(path)
    if suffix == ".csv":
        yield from _csv_pieces(path, piece_bytes, is_header)
    elif suffix == ".parquet":
        yield from _parquet_pieces(path, piece_bytes)
    else:
        yield files.read_located(path, numbers=True, is_header=is_header)


def merged_problems(parts: Iterable[list[Problem]], key: str, label: str) -> list[Problem]:
    """The problems (or warnings) of a file's pieces as one reading lists them: at most
    PROBLEM_CAP rows per column, then one summary per column of how many more; a problem of the
    whole file once."""
    columns = {c.name: c for c in dataset(key).columns}
    shown: Counter[str | None] = Counter()
    more: Counter[str] = Counter()
    merged: list[Problem] = []
    for problems in parts:
        for problem in problems:
            count = loaders.summarized(problem)
            if count is not None and problem.column in columns:
                more[problem.column] += count
            elif problem.row is None:
                if problem not in merged:
                    merged.append(problem)
            elif problem.column in columns and shown[problem.column] >= PROBLEM_CAP:
                more[problem.column] += 1
            else:
                shown[problem.column] += 1
                merged.append(problem)
    return merged + [loaders.summary(label, columns[name], count) for name, count in more.items()]


# ---- CSV ------------------------------------------------------------------------------------


def _csv_pieces(path: Path, piece_bytes: int, is_header: files.HeaderTest | None) -> Iterator[tuple[pl.DataFrame, int]]:
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16: never large in practice
            yield files.read_located(path, numbers=True, is_header=is_header)
            return
        start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
        blank, separator, header = files.csv_header(path, _head_text(head[start:]), is_header)
        # The header record ends at the line break after the header line; every piece is read
        # with it in front, so that polars knows the width as it does reading the file whole.
        offset = start
        for _ in range(blank):
            offset = head.index(b"\n", offset) + 1
        header_start = offset
        offset = head.index(b"\n", offset) + 1 if b"\n" in head[offset:] else len(head)
        header_line = head[header_start:offset]
        header_line += b"" if header_line.endswith(b"\n") else b"\n"
        reader = _Decoder(path, separator, header, blank + 1)
        keep: list[tuple[int, str]] | None = None
        first_row = blank + 2
        handle.seek(offset)
        carry = b""
        while True:
            # Each piece's bytes begin with the header line, in the file's encoding: polars then
            # knows the width as when it reads the file whole, and a file of one piece (every
            # city delivery) is copied once, not twice.
            block = handle.read(piece_bytes)
            at_end = len(block) < piece_bytes  # a file's read is short only at its end
            data = header_line + carry + block
            del block
            if at_end and len(data) == len(header_line) and keep is not None:
                return
            end = len(data) if at_end else reader.piece_end(data, len(header_line))
            if end <= 0:  # no line break outside quotes yet: a piece is at least one record
                if len(data) < _MOST * piece_bytes + _HEAD:
                    carry = data[len(header_line):]
                    continue
                end = max(data.rfind(b"\n") + 1, len(header_line) + 1)  # a quote never closed: cut anyway
            piece = data if end == len(data) else data[:end]
            carry = data[end:]
            del data
            table = reader.table(piece, len(header_line), offset, last=at_end)
            offset += len(piece) - len(header_line)
            del piece
            extra = table.get_column(files.EXTRA) if files.EXTRA in table.columns else None
            if keep is None:
                keep = _kept(path, table.drop(files.EXTRA, strict=False), list(header))
            table = table.select([pl.nth(i).alias(name) for i, name in keep] + ([] if extra is None else [extra]))
            yield table, first_row
            first_row += table.height
            if at_end:
                return


def _head_text(head: bytes) -> str:
    """The first lines as text (a multi-byte character may be cut at the end of `head`)."""
    whole = head[: head.rfind(b"\n") + 1] or head
    for encoding in ("utf-8", "gb18030"):
        try:
            return whole.decode(encoding)
        except UnicodeDecodeError:
            pass
    return whole.decode("utf-8", errors="replace")  # the pieces will say where it fails


class _Decoder:
    """Pieces of a CSV's bytes, each after the header line, to String tables; the encoding
    settled once."""

    def __init__(self, path: Path, separator: str, header: list[str], lines: int) -> None:
        self.path, self.separator, self.header = path, separator, header
        self.encoding: str | None = None
        self.lines = lines  # line breaks before the piece being read (the header's included)
        # A quote with no separator, line break or quote on either side (张"三) opens no cell:
        # not counted when looking for a line break outside quotes.
        # (The quote first, then what is around it: a pattern that starts with a literal is
        # searched for at C speed, 0.08 s for 256 MB against 3.5 s with the look-behind first.)
        plain = rb'[^' + re.escape(separator.encode()) + rb'\r\n"]'
        self._stray = re.compile(rb'"(?=' + plain + rb')(?<=' + plain + rb'")')

    def piece_end(self, data: bytes, start: int) -> int:
        """Just after one of the last line breaks of `data` outside quoted cells (counted from
        `start`, where none is open); 0 when there is none after `start`."""
        candidate = data.rfind(b"\n", start)
        if candidate < 0:
            return 0
        quotes = self._quotes(data, start, candidate + 1)
        for _ in range(_BACK):
            if quotes % 2 == 0:
                return candidate + 1
            before = data.rfind(b"\n", start, candidate)
            if before < 0:
                break
            quotes -= self._quotes(data, before + 1, candidate + 1)
            candidate = before
        return 0

    def _quotes(self, data: bytes, start: int, end: int) -> int:
        return data.count(b'"', start, end) - len(self._stray.findall(data, start, end))

    def table(self, piece: bytes, start: int, offset: int, last: bool = False) -> pl.DataFrame:
        """The records of `piece` (the header line, then records from `start`, which is byte
        `offset` of the file; `last`: no piece follows)."""
        utf8 = self._utf8(piece, start, offset)
        names = [f"c{i}" for i in range(len(self.header))]
        try:
            table = pl.read_csv(utf8, infer_schema=False, separator=self.separator, has_header=True,
                                new_columns=names, raise_if_empty=False)
        except pl.exceptions.PolarsError:
            try:  # as engine.files: Arrow reads a quote inside an unquoted cell as text
                table = files._read_csv_arrow(utf8, self.separator, len(self.header), 1)
            except Exception as error:  # noqa: BLE001 - any failure here means a malformed file
                text = utf8.decode()
                ragged = files._read_ragged(text, self.separator, len(self.header), 0)  # rows too long: each rejected
                if ragged is None:
                    raise self._located(files._csv_error(self.path, text, self.separator, len(self.header), error))
                table = ragged
        if table.width - (files.EXTRA in table.columns) != len(self.header):
            raise files.unreadable(self.path, "表头无法解析 (the header row could not be parsed)", row=self.lines)
        if not last:  # (for a later piece's messages)
            self.lines += piece.count(b"\n", start)
        return table

    def _utf8(self, piece: bytes, start: int, offset: int) -> bytes:
        """The piece as UTF-8 (itself, unless the file is GB18030)."""
        if self.encoding is None and piece.isascii():
            return piece
        failed = None
        for encoding in [self.encoding] if self.encoding else ["utf-8", "gb18030"]:
            try:
                text = piece.decode(encoding)
            except UnicodeDecodeError as error:  # the encoding that got further is the one meant
                failed = error if failed is None or error.start > failed.start else failed
                continue
            self.encoding = encoding
            return piece if encoding == "utf-8" else text.encode("utf-8")
        assert failed is not None
        tried = ("UTF-8", "GB18030") if self.encoding is None else (self.encoding.upper(),)
        line = self.lines + piece.count(b"\n", start, failed.start) + 1
        raise files._undecodable(self.path, piece[failed.start], offset + failed.start - start, line, tried)

    def _located(self, error: FileUnreadable) -> FileUnreadable:
        """engine.files' error for the piece (its first line the header), its line numbers made
        the file's."""
        problems = [Problem(p.file, p.message, p.row + self.lines - 1 if p.row is not None else None)
                    for p in error.problems]
        return FileUnreadable(str(error), problems)


def _kept(path: Path, first: pl.DataFrame, header: list[object]) -> list[tuple[int, str]]:
    """Column positions and names as engine.files names a table's columns (duplicates raise,
    blank headers go unless the first piece fills them)."""
    named = files.apply_header(path, first, header).columns
    stripped = [("" if h is None else str(h)).strip() for h in header]
    positions = {name: i for i, name in enumerate(stripped) if name}
    return [(positions[name] if name in positions else int(name.removeprefix("column_")) - 1, name) for name in named]


# ---- Parquet --------------------------------------------------------------------------------


def _parquet_pieces(path: Path, piece_bytes: int) -> Iterator[tuple[pl.DataFrame, int]]:
    """Slices of as many rows as `piece_bytes` of the same table written as CSV would hold (the
    first rows' cells measured); a file of no more is read whole, as engine.files reads it.
    (Parquet's own sizes say little of a piece's memory: sized by them, a province's vehicles
    came in 13M-row pieces and peaked at 9.2 GB.)"""
    import pyarrow.parquet as pq

    def unreadable(error: Exception, row: int | None = None) -> FileUnreadable:
        message = f"无法读取 Parquet 文件 (cannot read the Parquet file: {files.first_line(error)})"
        return files.unreadable(path, message, row=row)

    try:
        metadata = pq.read_metadata(path)  # the footer only: pyarrow's reading would keep its buffers
        names: list[object] = list(metadata.schema.to_arrow_schema().names)
        files.check_duplicates(path, [str(n).strip() for n in names])
        total = metadata.num_rows
        first = pl.scan_parquet(path).head(_SAMPLE_ROWS).collect() if total else None
    except SchemaError:
        raise
    except Exception as error:  # noqa: BLE001 - pyarrow and polars have their own error types
        raise unreadable(error) from None
    rows = max(1, piece_bytes // _csv_width(first)) if first is not None else total
    if total <= rows:
        yield files.read_located(path, numbers=True)
        return
    keep: list[tuple[int, str]] | None = None
    for start in range(0, total, rows):
        try:
            frame = pl.scan_parquet(path).slice(start, rows).collect()
            text = files.to_text(frame, numbers=True)
        except TypeError as error:
            raise files.unreadable(path, str(error)) from None
        except Exception as error:  # noqa: BLE001 - a damaged row group
            raise unreadable(error, start + 2) from None
        if keep is None:
            keep = _kept(path, text, names)
        yield text.select(pl.nth(i).alias(name) for i, name in keep), start + 2


def _csv_width(frame: pl.DataFrame) -> int:
    """Bytes a row of `frame` takes written as CSV, on average."""
    try:
        text = files.to_text(frame)
    except TypeError:
        return 1  # not a flat table: the first piece says so
    if not text.height:
        return 1
    cells = text.select(pl.sum_horizontal(pl.all().str.len_bytes().fill_null(0))).to_series()
    return max(1, int(cells.mean() or 0) + text.width)
