"""The FastAPI app: create_app(settings) wires the store, the checker, the audit log, the batch
worker, the error handlers and the routers. `crosscheck serve` runs it under uvicorn.

The server's child process (store.check_process; CROSSCHECK_CHECK_PROCESS=false: a thread of
the server) holds the in-memory index of the latest snapshots and checks POST /checks and
uploaded batches; the batches are run one at a time. Run it as one uvicorn worker (the index is
built once per server, and a batch left unfinished by a stopped server is marked failed when
the next one starts).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.audit import AuditLog
from store.batches import fail_interrupted
from store.check_process import CheckProcess
from store.check_queue import CheckQueue
from store.checks import Checker
from store.db import Store
from store.settings import Settings, load_settings

from . import errors
from .audit import AuditMiddleware
from .deps import AppState, known_query
from .fast_checks import FastChecks
from .schemas import error_responses, restore_examples

__all__ = ["create_app", "API_PREFIX", "version"]

API_PREFIX = "/api/v1"
SWITCH_INTERVAL = 0.0005  # seconds: how long a thread holds the GIL while another waits (Python's default 0.005)


def version() -> str:
    try:
        from importlib.metadata import version as installed

        return installed("crosscheck")
    except Exception:
        return "0+unknown"


class UploadLimit:
    """Refuse a request body over the limit before it is read whole: at once when it declares
    its Content-Length, else as soon as that many bytes have arrived."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, scope)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTPException: FastAPI passes it on from reading a body, where any
                    # other exception would become a 400 "error parsing the body".
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counting, send)

    def _message(self) -> str:
        return f"上传文件过大 the upload is larger than {self.max_bytes / 2**20:g} MB (CROSSCHECK_MAX_UPLOAD_MB)"

    async def _refuse(self, send: Send, scope: Scope) -> None:
        import json

        from .web import wants_page

        headers = dict(scope.get("headers", []))
        if wants_page(scope.get("path", ""), headers.get(b"accept", b"").decode("latin-1")):
            # The upload page's form: a page in Chinese, not the API's JSON.
            limit = f"{self.max_bytes / 2**20:g} MB"
            body = (f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>文件过大</title>'
                    f'<link rel="stylesheet" href="/static/style.css"><main><h1>文件过大</h1>'
                    f'<p role="alert">上传的文件超过 {limit} 的上限（CROSSCHECK_MAX_UPLOAD_MB），未予接收。'
                    f'请拆分名册（例如按乡镇）后分别上传。</p><p><a href="/upload">返回上传名册</a></p></main></html>'
                    ).encode()
            kind = b"text/html; charset=utf-8"
        else:
            body = json.dumps(errors.error_body("too_large", self._message()), ensure_ascii=False).encode()
            kind = b"application/json"
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store.open(settings)
        fail_interrupted(store)
        if settings.check_process:  # the index and the checking off the event loop's GIL
            checks: CheckProcess | CheckQueue = CheckProcess(settings)
            checker: CheckProcess | Checker = checks
        else:
            checker = Checker(store)
            checks = CheckQueue(checker)
        state = AppState(settings=settings, store=store, checker=checker, audit=AuditLog(store),
                         batches=ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch"), checks=checks)
        checks.start()
        # The server's own threads off the check process's CPU (CROSSCHECK_CHECK_PIN): see CheckProcess.keep_off.
        undo_keep_off = checks.keep_off() if isinstance(checks, CheckProcess) else None
        state.audit.start()
        app.state.crosscheck = state
        # What lives as long as the server (the app, its routes and models, the modules) out of
        # the cyclic collector: each full collection scanned it all and stalled every request.
        gc.collect()
        gc.freeze()
        # The threads that pass requests to the check process and answers back wait for the GIL
        # while the event loop works through a burst of requests: by default up to 5 ms, during
        # which the check process idled. Six A/B pairs at concurrency 32, all in favour: p99
        # 32.6-38.9 against 39.7-44.3 ms.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        scheduler = None
        if settings.scheduler_enabled:
            from store.schedule import make_scheduler

            scheduler = make_scheduler(settings)
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            state.batches.shutdown(wait=True, cancel_futures=True)
            state.checks.stop()
            if undo_keep_off is not None:
                undo_keep_off()
            state.audit.stop()
            store.close()
            sys.setswitchinterval(switch_interval)

    app = FastAPI(
        title="crosscheck 社会救助“三比对”核对 API",
        version=version(),
        description=(
            "Checks social-assistance households against household registration, deaths, vehicles, property, "
            "pensions, payroll, prisoners, housing fund, farm machinery, deposits and medical data "
            "(三比对). A flag informs the caseworker's home visit (三核查); it never decides alone.\n\n"
            "Every request carries `Authorization: Bearer TOKEN` (`crosscheck users add`). What lies outside "
            "your region is answered as if it did not exist. Every request is recorded in the audit log."
        ),
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
        responses=error_responses(400, 422),  # 401 and 403: on the routers of what takes a token
    )
    # FastAPI drops every null from the document it generates, examples included
    # (fastapi/fastapi#5559): put the examples back as written, so that they match their schema.
    generate = app.openapi
    app.openapi = lambda: restore_examples(generate())  # type: ignore[method-assign]
    errors.install(app)
    from .routes import audit, batches, checks, flags, meta, runs, sources

    for module in (checks, batches, flags, runs, sources, meta, audit):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=[Depends(known_query)])
    from fastapi.staticfiles import StaticFiles

    from . import web

    app.include_router(web.router)  # the caseworkers' pages (api/web)
    web.install(app)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    # Inside the two below: limited and audited as every request is.
    app.add_middleware(FastChecks, path=f"{API_PREFIX}/checks", route=checks.check_route)
    app.add_middleware(UploadLimit, max_bytes=int(settings.max_upload_mb * 2**20))
    app.add_middleware(AuditMiddleware)  # outermost: it also records what UploadLimit refuses
    return app
