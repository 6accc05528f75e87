"""The caseworkers' pages (in Chinese), served by the API's app: server-rendered Jinja2 templates,
our own CSS and a little JavaScript, nothing from outside the server.

    /login  /logout        登录 with the token `crosscheck users add` printed (an HttpOnly cookie)
    /upload  /batches/{id} 上传名册: upload a roll batch, its progress, problems row by row, flags
    /flags                 预警列表: the flags of the user's region by priority, filters, counts
    /households/{id}       家庭详情: members, each flag's evidence side by side, history, 三核查
    /dashboard             主管看板: concentration by township and rule, overdue, recovery, runs
    /flags.xlsx  /batches/{id}/flags.xlsx  /runs/{id}/report.xlsx   downloads

    session    the cookie, the per-session CSRF token of the forms, the page's user
    render     templates, and the route class that turns every error into a page
    evidence   a flag's evidence as the roll's values against the source records

A page resolves its user with `AppState.principal` and checks the API's permission table; the
flags, batches and reviews go through the API's own route functions, so region scope (outside it
is "not found"), ID masking and the supervisor's decisions are the API's. Every page request sets
`request.state.principal`: the audit middleware records it like an API request.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import auth, batches, dashboard, flags

__all__ = ["router", "STATIC_DIR", "install", "wants_page"]

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
for _module in (auth, batches, flags, dashboard):
    router.include_router(_module.router)


def wants_page(path: str, accept: str) -> bool:
    """A browser's request outside the API: its errors are pages, not JSON."""
    return not path.startswith("/api/") and "text/html" in accept


def install(app: FastAPI) -> None:
    """A browser that asks for a path no route has (/batches/, a mistyped link) gets the site's
    page saying so; the API's clients keep their JSON error (api.errors)."""
    api_answer = app.exception_handlers[StarletteHTTPException]

    async def answer(request: Request, exc: Exception):  # noqa: ANN202 - a page or the API's JSON
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (404, 405) and wants_page(request.url.path, request.headers.get("accept", "")):
            from .render import not_found_page

            return not_found_page(request)
        return api_answer(request, exc)

    app.add_exception_handler(StarletteHTTPException, answer)
