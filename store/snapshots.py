"""Source snapshots: a delivered file validated once, kept as Parquet, registered.

    ingest(store, key, path, snapshot_date) -> Ingested

The file is read and validated by engine.loaders exactly as a file run would (IDs normalized,
codes and dates typed, bad rows rejected with the reason), with the snapshot date as the as-of
date for ID birth dates; a piece at a time (engine.pieces), so that a province's 100M-row hukou
is ingested in bounded memory. The usable rows are written to
`<data dir>/snapshots/<key>/<snapshot date>_<hash>.parquet` and the rejected rows beside it as
`….rejects.csv`; the snapshot is registered with its key, snapshot date, time received, rows,
rejects and the SHA-256 of the file. The same file (same key, same bytes) twice is a no-op.

A source's usable rows are also written sorted by ID (engine.keyed), its contract's columns
only, as `….keyed.arrow` beside the Parquet: runs (engine.indexed) and the check process
(engine.check) map that file and look the roll's people up in it, instead of reading and hashing
every row each time. `keyed` makes the file again when it is missing or of another format.

Runs read the latest snapshot of each key (latest snapshot date, then latest received): no
re-parsing, no re-validation.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine import pieces
from engine.errors import FileUnreadable, NotFound, Problem, SelectionError, StoreError
from engine.keyed import Keyed
from engine.output import write_rejects
from schemas import SOURCES

from .db import Store
from .models import Snapshot, utcnow

__all__ = ["KEYS", "CADENCE_DAYS", "Ingested", "cadence_of", "file_hash", "ingest", "latest", "held", "scan",
           "parquet_path", "keyed"]

KEYS = ("roll", *SOURCES)
ROW_GROUP = 125_000  # rows per Parquet row group, as polars' write_parquet makes them
# A snapshot older than this many days is stale for its cadence (the longest period plus a day).
CADENCE_DAYS = {"monthly": 31, "quarterly": 92, "semiannual": 184, "annual": 366}


@dataclass
class Ingested:
    snapshot: Snapshot
    new: bool  # False: this very file was already held; nothing was done
    problems: list[Problem] = field(default_factory=list)  # rows rejected
    warnings: list[Problem] = field(default_factory=list)  # rows kept with a warning
    rejects_file: Path | None = None


def cadence_of(key: str) -> str:
    """How often a key is delivered: its source's default cadence; the roll changes monthly."""
    return "monthly" if key == "roll" else str(SOURCES[key].cadence)


def check_key(key: str) -> str:
    if key not in KEYS:
        raise SelectionError(f"unknown snapshot key {key!r}; one of {', '.join(KEYS)}")
    return key


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise FileUnreadable(f"{Path(path).name}: cannot read the file: {error.strerror or error}") from None
    return digest.hexdigest()


def _find(session: Session, key: str, digest: str) -> Snapshot | None:
    return session.scalars(sa.select(Snapshot).where(Snapshot.key == key, Snapshot.file_hash == digest)).first()


def ingest(store: Store, key: str, path: Path, snapshot_date: date, received_at: datetime | None = None) -> Ingested:
    """Validate `path` as dataset `key` and keep it as a snapshot; raises InputError when the
    file cannot be used at all (then nothing is kept)."""
    check_key(key)
    path = Path(path)
    digest = file_hash(path)
    with store.read() as session:
        held_already = _find(session, key, digest)
    if held_already is not None:
        if not (store.settings.data_dir / held_already.path).exists():
            # Registered, but the data directory lost its Parquet: make it again from the file.
            _validated(key, path, held_already.snapshot_date, store.settings.data_dir / held_already.path)
        return Ingested(held_already, new=False)

    relative = Path("snapshots") / key / f"{snapshot_date.isoformat()}_{digest[:12]}.parquet"
    target = store.settings.data_dir / relative
    loaded = _validated(key, path, snapshot_date, target)
    rejects_file = write_rejects({path.name: loaded.rejects}, target) if loaded.rejects.height else None

    snapshot = Snapshot(
        key=key, snapshot_date=snapshot_date, received_at=received_at or utcnow(), file_name=path.name[:255],
        file_hash=digest, path=relative.as_posix(), rows=loaded.rows, rejects=loaded.rejects.height,
        warnings=len(loaded.warnings),
    )
    try:
        with store.write() as session:
            session.add(snapshot)
    except StoreError:
        # Another process registered the same file meanwhile (the unique key, file_hash): theirs holds.
        with store.read() as session:
            other = _find(session, key, digest)
        if other is None:
            raise
        return Ingested(other, new=False)
    return Ingested(snapshot, new=True, problems=loaded.problems, warnings=loaded.warnings, rejects_file=rejects_file)


@dataclass
class _Validated:
    rows: int
    rejects: pl.DataFrame
    problems: list[Problem]
    warnings: list[Problem]


def _validated(key: str, path: Path, snapshot_date: date, target: Path) -> _Validated:
    """Validate `path` a piece at a time (engine.pieces: a province's 100M-row hukou does not fit
    in memory whole) into the Parquet `target`, then its keyed file: from the rows in memory
    when the file was one piece, else sorted from the Parquet by polars' streaming engine."""
    rejects: list[pl.DataFrame] = []
    problems: list[list[Problem]] = []
    warnings: list[list[Problem]] = []
    only: pl.DataFrame | None = None  # the rows, while there has been one piece
    rows = 0

    def write(temporary: Path) -> None:
        nonlocal rows, only
        writer = None
        try:
            for loaded in pieces.load_pieces(path, key, snapshot_date):
                if not rejects:  # the first piece: written when it is known to be the only one
                    only = loaded.frame
                else:
                    if writer is None:
                        writer = _Appender(temporary)
                        writer.append(only)
                        only = None
                    writer.append(loaded.frame)
                rows += loaded.frame.height
                rejects.append(loaded.rejects)
                problems.append(loaded.problems)
                warnings.append(loaded.warnings)
            if only is not None:  # polars writes a frame twice as fast as pyarrow appends it
                only.write_parquet(temporary)
        finally:
            if writer is not None:
                writer.close()

    _write(target, write)
    if key != "roll":
        if only is not None:
            _write_keyed(key, only, target)
        else:
            _remake_keyed(key, target)
    return _Validated(rows, pl.concat(rejects, how="diagonal_relaxed") if len(rejects) > 1 else rejects[0],
                      pieces.merged_problems(problems, key, path.name), pieces.merged_problems(warnings, key, path.name))


class _Appender:
    """One Parquet file written a frame at a time (zstd, ROW_GROUP rows a group, as polars
    writes one frame)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | None = None

    def append(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table.cast(self.writer.schema), row_group_size=ROW_GROUP)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _keyed_path(parquet: Path) -> Path:
    return parquet.with_suffix(".keyed.arrow")


def _write_keyed(key: str, frame: pl.DataFrame, parquet: Path) -> Keyed | None:
    """The keyed form of a source snapshot (none for the roll, which every run reads whole)."""
    if key == "roll":
        return None
    keyed = Keyed.of(frame.select(SOURCES[key].names), names=key == "hukou")
    _write(_keyed_path(parquet), keyed.write)
    return keyed


def _write(target: Path, write) -> None:
    """Write, then rename: a reader never sees half a file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
        os.close(handle)
        try:
            write(Path(name))
            os.replace(name, target)
            odd = Path(f"{name}.odd")  # engine.keyed's rows without an ID code, when there are any
            if odd.exists():
                os.replace(odd, f"{target}.odd")
            else:
                Path(f"{target}.odd").unlink(missing_ok=True)
        finally:
            Path(name).unlink(missing_ok=True)
            Path(f"{name}.odd").unlink(missing_ok=True)
    except OSError as error:
        raise StoreError(f"cannot write the snapshot {target}: {error.strerror or error}") from None


def latest(session: Session, as_of: date | None = None) -> dict[str, Snapshot]:
    """The latest snapshot of every key held (dated on or before `as_of` when given)."""
    query = sa.select(Snapshot).order_by(Snapshot.key, Snapshot.snapshot_date, Snapshot.id)
    if as_of is not None:
        query = query.where(Snapshot.snapshot_date <= as_of)
    found: dict[str, Snapshot] = {}
    for snapshot in session.scalars(query):
        found[snapshot.key] = snapshot  # ordered: the last one of a key wins
    return found


def held(store: Store, today: date) -> pl.DataFrame:
    """One row per key: the latest snapshot, its age in days and whether it is stale for the
    key's cadence (or missing)."""
    with store.read() as session:
        newest = latest(session)
        counts = dict(session.execute(sa.select(Snapshot.key, sa.func.count(Snapshot.id)).group_by(Snapshot.key)).all())
    rows = []
    for key in KEYS:
        zh = "救助对象名册" if key == "roll" else SOURCES[key].zh
        cadence = cadence_of(key)
        snapshot = newest.get(key)
        age = (today - snapshot.snapshot_date).days if snapshot else None
        state = "missing" if snapshot is None else ("stale" if age is not None and age > CADENCE_DAYS[cadence] else "current")
        rows.append({
            "key": key, "zh": zh, "cadence": cadence, "snapshot_id": snapshot.id if snapshot else None,
            "snapshot_date": snapshot.snapshot_date if snapshot else None,
            "received_at": snapshot.received_at if snapshot else None, "rows": snapshot.rows if snapshot else None,
            "rejects": snapshot.rejects if snapshot else None, "age_days": age, "state": state,
            "snapshots": counts.get(key, 0),
        })
    return pl.DataFrame(rows, schema={
        "key": pl.String, "zh": pl.String, "cadence": pl.String, "snapshot_id": pl.Int64, "snapshot_date": pl.Date,
        "received_at": pl.Datetime("us", "UTC"), "rows": pl.Int64, "rejects": pl.Int64, "age_days": pl.Int64,
        "state": pl.String, "snapshots": pl.Int64,
    })


def scan(store: Store, snapshot: Snapshot) -> pl.LazyFrame:
    """The snapshot's rows, lazily."""
    return pl.scan_parquet(parquet_path(store, snapshot))


def parquet_path(store: Store, snapshot: Snapshot) -> Path:
    """The snapshot's Parquet file (engine.spark's runs read it with Spark)."""
    path = store.settings.data_dir / snapshot.path
    if not path.exists():
        raise NotFound(
            f"snapshot {snapshot.id} ({snapshot.key}, {snapshot.snapshot_date}) is registered but its file {path} "
            "is missing: restore the data directory, or ingest the file again"
        )
    return path


def keyed(store: Store, snapshot: Snapshot) -> Keyed:
    """A source snapshot's rows keyed by ID (engine.keyed), mapped from its file; the file is made
    from the Parquet first when it is missing (a snapshot held before keyed files were written)
    or of another format."""
    parquet = parquet_path(store, snapshot)
    path = _keyed_path(parquet)
    found = Keyed.read(path) if path.exists() else None
    if found is None:
        _remake_keyed(snapshot.key, parquet)
        found = Keyed.read(path)
    assert found is not None
    return found


def _remake_keyed(key: str, parquet: Path) -> None:
    """The keyed file of a source snapshot's Parquet, sorted by polars' streaming engine: any size fits."""
    scan = pl.scan_parquet(parquet).select(SOURCES[key].names)
    _write(_keyed_path(parquet), lambda target: Keyed.sink(scan, target, names=key == "hukou"))
