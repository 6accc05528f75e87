"""Roll batches: upload a roll file (CSV or XLSX), then follow it and fetch its flags."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from engine.errors import FileUnreadable, NotFound
from engine.files import check_xlsx_size
from store import batches as store_batches
from store.models import Batch

from .. import access
from ..deps import Allowed, AppState, StateDep
from ..schemas import BatchOut, ErrorOut, FlagOut
from ._shape import flag_rows, problem_out

router = APIRouter(tags=["batches 名册批次"])

_SUFFIXES = (".csv", ".xlsx")
_CHUNK = 1 << 20


def batch_out(batch: Batch) -> BatchOut:
    return BatchOut(
        id=batch.id, status=batch.status, status_zh=store_batches.STATUS_ZH.get(batch.status, batch.status),
        step=batch.step, progress=batch.progress, file_name=batch.file_name, as_of=batch.as_of, by=batch.by,
        created_at=batch.created_at, finished_at=batch.finished_at, rows=batch.rows, households=batch.households,
        rejects=batch.rejects, flags=batch.flags, problems=[problem_out(p) for p in batch.problems or []],
        run_id=batch.run_id, error=batch.error,
    )


def _visible(state: AppState, batch_id: int, region: str) -> Batch:
    batch = store_batches.get(state.store, batch_id)
    if not batch.region.startswith(region) and not region.startswith(batch.region):
        raise NotFound(f"没有编号为 {batch_id} 的批次 (no batch {batch_id})")
    return batch


async def _save(upload: UploadFile, directory: Path, max_bytes: int) -> Path:
    """Copy the upload to a file, chunk by chunk (it is never held whole in memory)."""
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in _SUFFIXES:
        raise FileUnreadable(f"{upload.filename}: 请上传 .csv 或 .xlsx 文件 (upload a .csv or .xlsx roll file, "
                             f"not {suffix or 'a file without an extension'})")
    directory.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=directory, suffix=suffix, delete=False)
    with handle:
        while chunk := await upload.read(_CHUNK):
            handle.write(chunk)
    return Path(handle.name)


@router.post("/batches", status_code=202, response_model=BatchOut, summary="上传名册 upload a roll batch",
             responses={413: {"model": ErrorOut}, 422: {"model": ErrorOut}})
async def upload_batch(
    state: StateDep,
    user: Allowed("batches:write"),  # type: ignore[valid-type]
    file: Annotated[UploadFile, File(description="the roll, CSV (UTF-8 or GBK) or XLSX, Chinese headers accepted")],
    as_of: Annotated[date | None, Form(description="核对基准日 YYYY-MM-DD; default today")] = None,
) -> JSONResponse:
    """Answers 202 at once with the batch id; validation and the check go on in the background
    (GET /batches/{id} for progress and the problems, row by row)."""
    settings = state.settings
    saved = await _save(file, settings.data_dir / "uploads", int(settings.max_upload_mb * 2**20))
    try:
        if saved.suffix == ".xlsx":
            check_xlsx_size(saved, int(settings.xlsx_max_expanded_mb * 2**20))
        batch = store_batches.create(state.store, saved, file.filename or saved.name, user.name, user.region,
                                     as_of or date.today())
    finally:
        saved.unlink(missing_ok=True)
    state.batches.submit(_process, state, batch.id)
    body = batch_out(batch).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": f"/api/v1/batches/{batch.id}"})


def _process(state: AppState, batch_id: int) -> None:
    batch = store_batches.process(state.store, state.checker, batch_id)
    state.metrics.batches.labels(batch.status).inc()


@router.get("/batches/{batch_id}", response_model=BatchOut, summary="批次状态 a batch's status and problems")
def get_batch(batch_id: int, state: StateDep, user: Allowed("batches:read")) -> BatchOut:  # type: ignore[valid-type]
    return batch_out(_visible(state, batch_id, user.region))


@router.get("/batches/{batch_id}/flags", summary="批次预警 the flags a batch found",
            response_model=list[FlagOut],
            responses={200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument."
                                                                    "spreadsheetml.sheet": {}}}})
def batch_flags(batch_id: int, state: StateDep, user: Allowed("batches:read"),  # type: ignore[valid-type]
                format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json"):  # noqa: A002
    """JSON (default), CSV with the contract's columns (UTF-8 with BOM), or XLSX with Chinese
    headers. Only the flags within your region."""
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
    path = write_flags(flags, directory / f"batch-{batch_id}-flags.{format}")
    media = "text/csv; charset=utf-8" if format == "csv" else \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    from starlette.background import BackgroundTask
    import shutil

    return FileResponse(path, media_type=media, filename=path.name,
                        background=BackgroundTask(shutil.rmtree, directory, ignore_errors=True))
