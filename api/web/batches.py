"""上传名册: upload a roll batch, follow it while it runs, then its problems row by row and its
flags. The work is the API's (api.routes.batches): the pages call the same functions, after the
same permission check."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from engine.errors import CrosscheckError
from store import batches as store_batches

from ..routes import batches as api_batches
from ..schemas import RowId
from .dashboard import may_download_report
from .render import PageRoute, page
from .session import PageUser, check_form, need

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PROBLEMS_SHOWN = 500  # rows of problems on the page; the count says how many there are
FLAGS_SHOWN = 300  # flags listed on a batch's page, in priority order; the XLSX has every one
DONE = ("completed", "failed")
SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}


def _recent(request: Request, user: PageUser) -> list:
    return store_batches.list_batches(request.app.state.crosscheck.store, region=user.region, limit=15)


@router.get("/upload")
def upload_form(request: Request, user: PageUser) -> Response:
    need(user, "batches:write")
    return page(request, user, "upload.html", batches=_recent(request, user), as_of="")


@router.post("/upload")
async def upload(request: Request, user: PageUser, file: Annotated[UploadFile | None, File()] = None,
                 as_of: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "") -> Response:
    check_form(request, csrf)
    need(user, "batches:write")
    error = None
    day = None
    if as_of.strip():
        try:
            day = date.fromisoformat(as_of.strip())
        except ValueError:
            error = f"核对基准日须为 YYYY-MM-DD 格式的日期，而不是“{as_of.strip()}”。"
    if file is None or not file.filename:
        error = "请选择或拖入一个名册文件（.csv 或 .xlsx）。"
    if error is None:
        try:
            answer = await api_batches.upload_batch(request.app.state.crosscheck, user, file, day)
        except CrosscheckError as failure:
            error = failure.message
        else:
            batch_id = json.loads(answer.body)["id"]
            return RedirectResponse(f"/batches/{batch_id}", status_code=303)
    return page(request, user, "upload.html", status=422, error=error, batches=_recent(request, user),
                as_of=as_of)


def _batch_context(request: Request, user: PageUser, batch_id: RowId) -> dict:
    state = request.app.state.crosscheck
    need(user, "batches:read")
    batch = api_batches.get_batch(batch_id, state, user)
    flags = api_batches.batch_flags(batch_id, state, user) if batch.status == "completed" else []
    flags.sort(key=lambda f: (SEVERITY_RANK.get(f.severity, 3), -(f.overpayment or 0)))  # the list's priority
    # A county's roll finds thousands: the page lists the first, the download has them all.
    return {"batch": batch, "flags": flags[:FLAGS_SHOWN], "flags_total": len(flags), "done": batch.status in DONE,
            "problems_shown": PROBLEMS_SHOWN, "reports": may_download_report(user)}


@router.get("/batches/{batch_id}")
def batch_page(request: Request, user: PageUser, batch_id: RowId) -> Response:
    return page(request, user, "batch.html", **_batch_context(request, user, batch_id))


@router.get("/batches/{batch_id}/status")
def batch_status(request: Request, user: PageUser, batch_id: RowId) -> Response:
    """The status block alone: the batch page polls it until the batch is done."""
    return page(request, user, "_batch_status.html", **_batch_context(request, user, batch_id))


@router.get("/batches/{batch_id}/flags.xlsx")
def batch_flags_xlsx(request: Request, user: PageUser, batch_id: RowId) -> Response:
    need(user, "batches:read")
    return api_batches.flags_answer(batch_id, request.app.state.crosscheck, user, "xlsx", data_sheet=False)
