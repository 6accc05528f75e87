"""Roll batches: upload a roll file (CSV, XLSX or XLS), then follow it and fetch its flags."""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.errors import NotFound
from store import batches as store_batches
from store.models import Batch

from .. import access
from ..deps import Allowed, AppState, StateDep
from ..schemas import (
    AUTH_ERRORS,
    BINARY,
    ROLL_CSV_EXAMPLE,
    BatchOut,
    FlagOut,
    FormDate,
    RowId,
    error_responses,
)
from ..uploads import save_upload
from ._shape import flag_rows, problem_out

router = APIRouter(tags=["batches 名册批次"], responses=AUTH_ERRORS)

_SUFFIXES = (".csv", ".xlsx", ".xls")


def batch_out(batch: Batch, role: str) -> BatchOut:
    return BatchOut(
        id=batch.id, status=batch.status, status_zh=store_batches.STATUS_ZH.get(batch.status, batch.status),
        step=batch.step, progress=batch.progress, file_name=batch.file_name, as_of=batch.as_of, by=batch.by,
        created_at=batch.created_at, finished_at=batch.finished_at, rows=batch.rows, households=batch.households,
        rejects=batch.rejects, flags=batch.flags, problems=[problem_out(p, role) for p in batch.problems or []],
        warnings=[problem_out(p, role) for p in batch.warnings or []], run_id=batch.run_id, error=batch.error,
    )


def _visible(state: AppState, batch_id: int, region: str) -> Batch:
    batch = store_batches.get(state.store, batch_id)
    if not batch.region.startswith(region):  # a batch wider than your region is not yours to see
        raise NotFound(f"没有编号为 {batch_id} 的批次 (no batch {batch_id})")
    return batch


@router.post("/batches", status_code=202, response_model=BatchOut, summary="上传名册 upload a roll batch",
             responses=error_responses(413, 422))
async def upload_batch(
    state: StateDep,
    user: Allowed("batches:write"),  # type: ignore[valid-type]
    file: Annotated[UploadFile, File(description="the roll, CSV (UTF-8 or GBK), XLSX or XLS, Chinese headers accepted",
                                     json_schema_extra=BINARY, examples=[ROLL_CSV_EXAMPLE])],
    as_of: Annotated[FormDate, Form(description="核对基准日 YYYY-MM-DD; empty or none: today",
                                    examples=["2026-06-30"])] = None,
) -> JSONResponse:
    """Answers 202 at once with the batch id; validation and the check go on in the background
    (GET /batches/{id} for progress and the problems, row by row). Rows of a region outside
    yours are refused row by row; the others are checked."""
    settings = state.settings
    uploads = settings.data_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(dir=uploads))
    try:
        saved = await save_upload(file, directory, _SUFFIXES, int(settings.xlsx_max_expanded_mb * 2**20))
        batch = await run_in_threadpool(store_batches.create, state.store, saved, saved.name, user.name, user.region,
                                        as_of or date.today())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    state.batches.submit(_process, state, batch.id)
    body = batch_out(batch, user.role).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": f"/api/v1/batches/{batch.id}"})


def _process(state: AppState, batch_id: int) -> None:
    batch = store_batches.process(state.store, state.checker, batch_id)
    state.metrics.batches.labels(batch.status).inc()


@router.get("/batches/{batch_id}", response_model=BatchOut, summary="批次状态 a batch's status and problems",
            responses=error_responses(404))
def get_batch(batch_id: RowId, state: StateDep, user: Allowed("batches:read")) -> BatchOut:  # type: ignore[valid-type]
    return batch_out(_visible(state, batch_id, user.region), user.role)


@router.get("/batches/{batch_id}/flags", summary="批次预警 the flags a batch found",
            response_model=list[FlagOut],
            responses={200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument."
                                                                    "spreadsheetml.sheet": {}}},
                       **error_responses(404)})
def batch_flags(batch_id: RowId, state: StateDep, user: Allowed("batches:read"),  # type: ignore[valid-type]
                format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json"):  # noqa: A002
    """JSON (default), CSV with the contract's columns (UTF-8 with BOM), or XLSX: the same columns
    on its first sheet, then a sheet with Chinese headers and a summary. Only the flags within
    your region."""
    return flags_answer(batch_id, state, user, format)


def flags_answer(batch_id: int, state: StateDep, user: Allowed("batches:read"),  # type: ignore[valid-type]
                 format: str, data_sheet: bool = True):  # noqa: A002
    """batch_flags' answer; the batch page's download (`data_sheet=False`) is for people only."""
    import polars as pl

    batch = _visible(state, batch_id, user.region)
    flags = store_batches.batch_flags(state.store, batch)
    flags = flags.filter(pl.col("region_code").str.starts_with(user.region))
    if not access.sees_full_ids(user.role):
        flags = flags.with_columns(
            pl.col("id_number").map_elements(access.mask_id, return_dtype=pl.String),
            pl.col("roll_id_number").map_elements(access.mask_id, return_dtype=pl.String),
            pl.col("evidence").map_elements(access.mask_evidence, return_dtype=pl.String),
        )
    if format == "json":
        return flag_rows(flags, "system")  # masked above, once
    from engine.output import write_flags

    directory = Path(tempfile.mkdtemp(prefix="flags-", dir=state.settings.data_dir))
    path = write_flags(flags, directory / f"batch-{batch_id}-flags.{format}", data_sheet=data_sheet)
    media = "text/csv; charset=utf-8" if format == "csv" else \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    from starlette.background import BackgroundTask

    return FileResponse(path, media_type=media, filename=path.name,
                        background=BackgroundTask(shutil.rmtree, directory, ignore_errors=True))
