"""Source snapshots: what is held, and uploading a new one."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from engine.errors import FileUnreadable
from engine.files import SUFFIXES, check_xlsx_size
from store import snapshots

from ..deps import Allowed, StateDep
from ..schemas import ErrorOut, SnapshotOut, SourceOut
from ._shape import problem_out

router = APIRouter(tags=["sources 数据源"])
SourceKey = snapshots.KEYS


@router.get("/sources", response_model=list[SourceOut], summary="数据源 the latest snapshot of every source")
def list_sources(state: StateDep, user: Allowed("sources:read")) -> list[SourceOut]:  # type: ignore[valid-type]
    held = snapshots.held(state.store, date.today())
    return [SourceOut(**row) for row in held.iter_rows(named=True)]


@router.post("/sources/{key}/snapshots", status_code=201, response_model=SnapshotOut,
             summary="上传快照 upload a source snapshot",
             responses={404: {"model": ErrorOut}, 413: {"model": ErrorOut}, 422: {"model": ErrorOut}})
async def upload_snapshot(
    key: str,
    state: StateDep,
    user: Allowed("sources:write"),  # type: ignore[valid-type]
    file: Annotated[UploadFile, File(description="the source file: CSV, XLSX or Parquet")],
    snapshot_date: Annotated[date | None, Form(description="the date the data describes; default today")] = None,
) -> SnapshotOut:
    """Validated and kept as Parquet; the same file twice is a no-op (`new`: false). Rows that
    cannot be used are listed in `problems` and the rest is kept."""
    snapshots.check_key(key)
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise FileUnreadable(f"{file.filename}: upload a .csv, .xlsx or .parquet file")
    directory = state.settings.data_dir / "uploads"
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as temporary:
        # Named as uploaded: the snapshot and its messages name the file the user knows.
        path = Path(temporary) / (Path(file.filename or f"{key}{suffix}").name or f"{key}{suffix}")
        with open(path, "wb") as handle:
            while chunk := await file.read(1 << 20):
                handle.write(chunk)
        if suffix == ".xlsx":
            check_xlsx_size(path, int(state.settings.xlsx_max_expanded_mb * 2**20))
        from starlette.concurrency import run_in_threadpool

        done = await run_in_threadpool(snapshots.ingest, state.store, key, path, snapshot_date or date.today())
    snap = done.snapshot
    return SnapshotOut(id=snap.id, key=snap.key, snapshot_date=snap.snapshot_date, file_name=snap.file_name,
                       rows=snap.rows, rejects=snap.rejects, warnings=snap.warnings, new=done.new,
                       problems=[problem_out(p) for p in done.problems[:1000]])
