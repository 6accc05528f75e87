"""Source snapshots: what is held, and uploading a new one."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, UploadFile
from starlette.concurrency import run_in_threadpool

from engine.files import SUFFIXES
from store import snapshots

from ..deps import Allowed, StateDep
from ..schemas import AUTH_ERRORS, BINARY, SOURCE_CSV_EXAMPLE, FormDate, SnapshotOut, SourceOut, error_responses
from ..uploads import save_upload
from ._shape import problem_out

router = APIRouter(tags=["sources 数据源"], responses=AUTH_ERRORS)
SourceKey = Literal[snapshots.KEYS]  # type: ignore[valid-type]


@router.get("/sources", response_model=list[SourceOut], summary="数据源 the latest snapshot of every source")
def list_sources(state: StateDep, user: Allowed("sources:read")) -> list[SourceOut]:  # type: ignore[valid-type]
    held = snapshots.held(state.store, date.today())
    return [SourceOut(**row) for row in held.iter_rows(named=True)]


@router.post("/sources/{key}/snapshots", status_code=201, response_model=SnapshotOut,
             summary="上传快照 upload a source snapshot", responses=error_responses(413, 422))
async def upload_snapshot(
    key: Annotated[SourceKey,  # type: ignore[valid-type]
                   Path(description="roll, or a source: hukou, deaths, vehicles, …")],
    state: StateDep,
    user: Allowed("sources:write"),  # type: ignore[valid-type]
    file: Annotated[UploadFile, File(description="the source file: CSV, XLSX, XLS or Parquet", json_schema_extra=BINARY,
                                     examples=[SOURCE_CSV_EXAMPLE])],
    snapshot_date: Annotated[FormDate, Form(description="the date the data describes; empty or none: today",
                                            examples=["2026-06-15"])] = None,
) -> SnapshotOut:
    """Validated and kept as Parquet; the same file twice is a no-op (`new`: false). Rows that
    cannot be used are listed in `problems` and the rest is kept; a file that cannot be used at
    all is answered 422 with its problems."""
    uploads = state.settings.data_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=uploads) as temporary:
        # Named as uploaded: the snapshot and its messages name the file the user knows.
        path = await save_upload(file, FilePath(temporary), SUFFIXES, int(state.settings.xlsx_max_expanded_mb * 2**20))
        done = await run_in_threadpool(snapshots.ingest, state.store, key, path, snapshot_date or date.today())
    snap = done.snapshot
    return SnapshotOut(id=snap.id, key=snap.key, snapshot_date=snap.snapshot_date, file_name=snap.file_name,
                       rows=snap.rows, rejects=snap.rejects, warnings=snap.warnings, new=done.new,
                       problems=[problem_out(p, user.role) for p in done.problems[:1000]])
