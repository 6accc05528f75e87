"""Uploaded roll batches: a township's roll file checked in the background.

    batch = create(store, upload, file_name, by, region, as_of)   the file kept, status `queued`
    process(store, checker, batch.id)                              validate → check → record
    get(store, batch_id) / batch_flags(store, batch)

Steps and progress (what the status page shows while it waits):
    queued 0 → validating 0.1 → checking 0.4 → recording 0.8 → completed 1   (or failed)

Validation is engine.loaders' (the same as `crosscheck run`): rows that cannot be used are kept
aside with their problems (file, row, column, original value) and the rest is checked. Rows of
a region outside the uploader's region prefix are refused the same way, row by row: a
caseworker cannot create flags in another township; so are the rows of a household that has
flags outside it (a flag's key is its household's: they would be cleared or taken over). The file is checked against the latest
source snapshots through store.checks (with the roll snapshot's other households, so a person
already on the roll elsewhere is found), and its findings enter the lifecycle for the batch's
households only. The flags are kept as Parquet beside the upload, with their flag ids.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlalchemy as sa

from engine import loaders
from engine.errors import CrosscheckError, InputError, NotFound, Problem
from engine.output import write_rejects

from . import lifecycle
from .checks import Checker, flag_ids, foreign_households, record
from .db import Store
from .models import Batch, utcnow
from .snapshots import file_hash

if TYPE_CHECKING:
    from .check_process import CheckProcess

__all__ = ["STATUSES", "PROBLEMS_KEPT", "create", "process", "get", "batch_flags", "list_batches", "fail_interrupted"]

STATUSES = ("queued", "validating", "checking", "recording", "completed", "failed")
STATUS_ZH = {"queued": "排队中", "validating": "校验中", "checking": "比对中", "recording": "保存中",
             "completed": "已完成", "failed": "失败"}
PROBLEMS_KEPT = 2000  # row problems kept in the database; all of them are in the rejects file


def _directory(store: Store, batch_id: int) -> Path:
    return store.settings.data_dir / "batches" / str(batch_id)


def create(store: Store, upload: Path, file_name: str, by: str, region: str, as_of: date,
           now: datetime | None = None) -> Batch:
    """Register an uploaded file (moved into the data directory) as a queued batch."""
    safe_name = Path(file_name or "roll").name[:200] or "roll"
    batch = Batch(created_at=now or utcnow(), by=by, region=region, file_name=safe_name, file_hash=file_hash(upload),
                  path="", as_of=as_of, status="queued", step="排队中 queued", progress=0.0)
    with store.write() as session:
        session.add(batch)
        session.flush()
        relative = Path("batches") / str(batch.id) / safe_name
        batch.path = relative.as_posix()
    target = store.settings.data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(upload), target)
    return batch


def _update(store: Store, batch_id: int, **values: Any) -> None:
    with store.write() as session:
        session.execute(sa.update(Batch).where(Batch.id == batch_id).values(**values))


def _refuse(frame: pl.DataFrame, keep: pl.Expr, file: str, column: str, column_zh: str,
            why: Callable[[str], str], columns: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, list[Problem]]:
    """Split off the rows not to `keep`: refused row by row, each with a Problem naming `column`
    and its value; the refused rows as rejects (`_row`, `reason` and `columns` as text)."""
    refused = frame.filter(~keep)
    problems = [Problem(file, why(value), row=row, column=column, column_zh=column_zh, value=value)
                for row, value in refused.select("_row", column).iter_rows()]
    rejects = refused.select(pl.col("_row"), pl.Series("reason", [p.message for p in problems], dtype=pl.String),
                             *[pl.col(c).cast(pl.String) for c in columns if c in refused.columns])
    return frame.filter(keep), rejects, problems


def process(store: Store, checker: Checker | CheckProcess, batch_id: int) -> Batch:
    """Validate, check and record batch `batch_id`; a failure is recorded on the batch, not raised."""
    batch = get(store, batch_id)
    path = store.settings.data_dir / batch.path
    try:
        _update(store, batch_id, status="validating", step="校验名册 validating the roll", progress=0.1)
        try:
            loaded = loaders.load(path, "roll", batch.as_of)
        except InputError as error:
            message = error.message.replace(str(path), batch.file_name)  # the name the uploader knows, not ours
            problems = error.problems or [Problem(batch.file_name, message)]
            _update(store, batch_id, status="failed", step="文件无法使用 the file cannot be used", progress=1.0,
                    error=message, problems=[p.as_dict() for p in problems[:PROBLEMS_KEPT]],
                    finished_at=utcnow(), rows=0, rejects=0)
            return get(store, batch_id)
        if loaded.frame.height == 0 and loaded.rejects.height == 0:
            # A header alone (a template saved before it was filled in): nothing was checked,
            # which "no findings" would misstate.
            message = "名册中没有数据行：只有表头 (the file has a header but no rows)"
            _update(store, batch_id, status="failed", step="文件无法使用 the file cannot be used", progress=1.0,
                    error=message, problems=[Problem(batch.file_name, message).as_dict()],
                    finished_at=utcnow(), rows=0, rejects=0)
            return get(store, batch_id)
        # Rows a user of the batch's region may not record: another region's (a caseworker cannot
        # create flags in another township), and households that have flags outside the region
        # (recording them would clear, reopen or take over those flags).
        region, columns = batch.region, [c for c in loaded.rejects.columns if c not in ("_row", "reason")]
        frame, outside, problems_outside = _refuse(
            loaded.frame, pl.col("region_code").str.starts_with(region), loaded.file, "region_code", "行政区划代码",
            lambda code: f"行政区划 {code} 不在您的辖区 {region} 内 (outside your region {region})", columns)
        foreign = foreign_households(store, frame.get_column("household_id").unique().to_list(), region)
        frame, taken, problems_taken = _refuse(
            frame, ~pl.col("household_id").is_in(sorted(foreign)), loaded.file, "household_id", "家庭编号",
            lambda household: f"家庭编号 {household} 不能在您的辖区 {region} 记录 "
                              f"(household {household} cannot be recorded from your region {region})", columns)
        problems = [*loaded.problems, *problems_outside, *problems_taken]
        rejects = pl.concat([loaded.rejects, outside, taken], how="diagonal_relaxed")
        if rejects.height:
            write_rejects({loaded.file: rejects}, path.with_name("flags.parquet"))
        households = frame.get_column("household_id").unique().sort().to_list()
        _update(store, batch_id, status="checking", step=f"比对 checking {len(households)} households",
                progress=0.4, rows=frame.height, households=len(households), rejects=rejects.height,
                problems=[p.as_dict() for p in sorted(problems, key=lambda p: (p.row or 0, p.column or ""))
                          [:PROBLEMS_KEPT]],
                warnings=[p.as_dict() for p in loaded.warnings[:PROBLEMS_KEPT]])
        result, held = checker.check(frame, batch.as_of)
        _update(store, batch_id, status="recording", step="保存预警 recording the flags", progress=0.8)
        # A household some of whose rows were rejected was seen only in part: its flags stay
        # (a rejected row is not "not found any more"), and so do a rejected person's.
        rejected = (loaded.rejects.get_column("household_id").cast(pl.String).str.strip_chars().to_list()
                    if "household_id" in loaded.rejects.columns else [])
        run_id, _ = record(store, result, households, "upload", held, {"batch": batch_id}, region=region,
                           persons=lifecycle.looked_at(frame, result.resolutions),
                           partial=set(rejected) & set(households))
        flags = result.flags.with_columns(flag_ids(store, result.flags))
        flags.write_parquet(path.with_name("flags.parquet"))
        _update(store, batch_id, status="completed", step="完成 completed", progress=1.0, flags=flags.height,
                run_id=run_id, finished_at=utcnow())
    except CrosscheckError as error:
        _update(store, batch_id, status="failed", step="失败 failed", progress=1.0, error=error.message,
                finished_at=utcnow())
    except Exception as error:  # recorded for the uploader; the server keeps serving
        _update(store, batch_id, status="failed", step="失败 failed", progress=1.0,
                error=f"内部错误 internal error: {type(error).__name__}: {error}"[:4000], finished_at=utcnow())
    return get(store, batch_id)


def get(store: Store, batch_id: int) -> Batch:
    with store.read() as session:
        batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"没有编号为 {batch_id} 的批次 (no batch {batch_id})")
    return batch


def list_batches(store: Store, region: str | None = None, limit: int = 50) -> list[Batch]:
    with store.read() as session:
        query = sa.select(Batch).order_by(Batch.id.desc()).limit(limit)
        if region:
            query = query.where(Batch.region.startswith(region, autoescape=True))
        return list(session.scalars(query))


def batch_flags(store: Store, batch: Batch) -> pl.DataFrame:
    """The flags a completed batch found (with flag_id)."""
    if batch.status != "completed":
        raise NotFound(f"批次 {batch.id} 尚未完成 (batch {batch.id} is {batch.status}, its flags are not ready)")
    path = (store.settings.data_dir / batch.path).with_name("flags.parquet")
    if not path.exists():
        raise NotFound(f"批次 {batch.id} 的预警文件缺失 (the flags file of batch {batch.id} is missing)")
    return pl.read_parquet(path)


def fail_interrupted(store: Store) -> int:
    """Batches left unfinished by a server that stopped: failed, with the reason."""
    with store.write() as session:
        result = session.execute(
            sa.update(Batch).where(Batch.status.in_(("queued", "validating", "checking", "recording")))
            .values(status="failed", step="中断 interrupted", progress=1.0, finished_at=utcnow(),
                    error="服务重启，批次中断，请重新上传 the server stopped before this batch finished: upload it again")
        )
    return int(result.rowcount or 0)
