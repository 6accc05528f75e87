"""Engine and store errors → one JSON shape, `{"error": ..., "detail": ...}`, in one place.

    NotAuthenticated 401 · AccessDenied 403 · NotFound 404 · StoreBusy 503 (Retry-After)
    ReviewIncomplete 422 · ReviewError 409 · TooLarge 413 · InputError 422 (detail: every problem, with file, row,
    column, value) · SelectionError, PolicyError 422 · other StoreError 500 · request
    validation 422 (detail: each field as the client writes it, `members[0].name`, where it was
    — body, query, path — and the message) · HTTP errors of the framework with their status
    (405 with every method the path takes in Allow) · anything else 500, logged, without a
    traceback in the answer.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import (
    AccessDenied,
    CrosscheckError,
    InputError,
    NotAuthenticated,
    NotFound,
    PolicyError,
    ReviewError,
    ReviewIncomplete,
    SelectionError,
    StoreBusy,
    TooLarge,
)

__all__ = ["install", "error_body", "STATUS_OF"]

log = logging.getLogger("crosscheck.api")

# Most specific first: the first class an error is an instance of decides.
STATUS_OF: list[tuple[type[CrosscheckError], int, str]] = [
    (NotAuthenticated, 401, "not_authenticated"),
    (AccessDenied, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (StoreBusy, 503, "busy"),
    (ReviewIncomplete, 422, "invalid_review"),
    (ReviewError, 409, "review_not_allowed"),
    (TooLarge, 413, "too_large"),
    (InputError, 422, "invalid_input"),
    (SelectionError, 422, "invalid_selection"),
    (PolicyError, 422, "invalid_policy"),
]
_PARTS = ("body", "query", "path", "header", "cookie")
_HTTP_ERRORS = {400: "bad_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 406: "not_acceptable", 413: "too_large", 415: "unsupported_media_type"}


def error_body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def status_of(exc: CrosscheckError) -> tuple[int, str]:
    for kind, status, name in STATUS_OF:
        if isinstance(exc, kind):
            return status, name
    return 500, "store_error"


def _own_words(request: Request, message: str) -> str:
    """A message without the server's own paths: a file under the data directory (an upload
    being read) is named as the user knows it, by its name."""
    state = getattr(request.app.state, "crosscheck", None)
    if state is None:
        return message
    return re.sub(re.escape(str(state.settings.data_dir)) + r"[^\s:]*[/\\]", "", message)


def _crosscheck(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CrosscheckError)
    status, name = status_of(exc)
    detail: Any = _own_words(request, exc.message)
    if exc.problems:
        detail = {"message": detail, "problems": [p.as_dict() for p in exc.problems]}
    headers = {"Retry-After": "5"} if status == 503 else ({"WWW-Authenticate": "Bearer"} if status == 401 else None)
    return JSONResponse(error_body(name, detail), status_code=status, headers=headers)


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as a client writes it: ("body", "members", 0, "name") →
    `members[0].name`; the part of the request (body, query, path, header) is said apart."""
    name = ""
    for part in loc[1:] if loc and loc[0] in _PARTS else loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or (str(loc[0]) if loc else "body")


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {"field": field_name(item.get("loc", ())), "in": str(item["loc"][0]) if item.get("loc") else "body",
         "message": item.get("msg", "")}
        for item in exc.errors()
    ]
    return JSONResponse(error_body("invalid_request", fields), status_code=422)


def _allowed_methods(request: Request) -> str | None:
    """Every method the path answers to, from the OpenAPI schema. Starlette's 405 names only
    the first route whose path matched (GET /runs, when POST /runs exists too)."""
    paths = getattr(request.app.state, "_path_methods", None)
    if paths is None:
        paths = [(re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))),
                  ", ".join(sorted(method.upper() for method in operations)))
                 for template, operations in request.app.openapi().get("paths", {}).items()]
        request.app.state._path_methods = paths
    return next((methods for pattern, methods in paths if pattern.fullmatch(request.url.path)), None)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    name = _HTTP_ERRORS.get(exc.status_code, "http_error")
    detail = exc.detail
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):  # FastAPI: "error parsing the body"
        # A system of the bureau's may well send GBK: say so, and where, not only that parsing failed.
        byte = cause.object[cause.start]
        detail = (f"请求体不是 UTF-8 编码（第 {cause.start} 字节 0x{byte:02X}），请以 UTF-8 发送 JSON "
                  f"(the body is not UTF-8: byte 0x{byte:02X} at offset {cause.start}; send the JSON as UTF-8, "
                  f"not GBK)")
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (methods := _allowed_methods(request)):
        headers["Allow"] = methods
    return JSONResponse(error_body(name, detail), status_code=exc.status_code, headers=headers or None)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", f"内部错误 internal error ({type(exc).__name__}); it has been logged"),
                        status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(CrosscheckError, _crosscheck)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
