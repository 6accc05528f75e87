"""Templates and the page route: every page is rendered here, and every error a page raises
becomes a page (never JSON, never a traceback).

    page(request, user, "flags.html", status=200, **context)   a full page
    xlsx_download(scratch, write, filename)                    a workbook, removed once sent
    PageRoute    the route class of the web routers: NotAuthenticated → the sign-in page;
                 AccessDenied 403, NotFound 404 (also what lies outside the user's region),
                 other engine errors with their status, anything else 500 — as HTML
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import CrosscheckError, NotAuthenticated
from engine.rules import CATALOGUE
from schemas import PROGRAMS
from store.batches import PROBLEMS_KEPT
from store.batches import STATUS_ZH as BATCH_ZH
from store.lifecycle import EVENT_ZH, STATUS_ZH

from .. import access
from ..deps import Principal
from ..errors import status_of

__all__ = ["templates", "page", "xlsx_download", "PageRoute", "LoginNeeded", "ROLE_ZH", "SEVERITY_ZH", "yuan",
           "local_time"]

log = logging.getLogger("crosscheck.web")
HERE = Path(__file__).parent
CHINA = timezone(timedelta(hours=8), "北京时间")  # caseworkers read local time; the store keeps UTC

ROLE_ZH = {"caseworker": "低保专干", "supervisor": "审核主管", "auditor": "审计", "system": "系统对接"}
SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}
CONFIRM_ZH = {"stop": "停发", "reduce": "减发", "recover": "追缴"}
ACTION_ZH = {"assign": "分派", "visit": "入户核查", "confirm": "确认", "dismiss": "排除", "appeal": "记录申诉",
             "resolve": "办结", "reopen": "重新打开"}
TRIGGER_ZH = {"cli": "命令行", "schedule": "定时比对", "upload": "名册上传", "api": "接口"}
MATCH_ZH = {"exact": "完全一致", "legacy15": "15位旧号转换", "repaired": "校验位修复", "fuzzy": "模糊匹配"}


class LoginNeeded(Exception):
    """No session cookie: the page sends the browser to sign in."""


def yuan(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return f"¥{float(value):,.2f}"


def local_time(value: datetime | date | None, with_time: bool = True) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = moment.astimezone(CHINA)
        return f"{moment:%Y-%m-%d %H:%M}" if with_time else f"{moment:%Y-%m-%d}"
    return value.isoformat()


templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters.update(yuan=yuan, local=local_time, urlquote=lambda s: quote(str(s), safe=""))
templates.env.globals.update(
    STATUS_ZH=STATUS_ZH, EVENT_ZH=EVENT_ZH, PROGRAMS=PROGRAMS, SEVERITY_ZH=SEVERITY_ZH, ROLE_ZH=ROLE_ZH,
    CONFIRM_ZH=CONFIRM_ZH, BATCH_ZH=BATCH_ZH, ACTION_ZH=ACTION_ZH, TRIGGER_ZH=TRIGGER_ZH, MATCH_ZH=MATCH_ZH,
    RULE_ZH={r.id: r.label_zh for r in CATALOGUE}, CATALOGUE=CATALOGUE, PROBLEMS_KEPT=PROBLEMS_KEPT,
)


# Pages hold personal data: not cached, not framed (the forms cannot be clicked through another
# site's page), nothing loaded or posted anywhere but here.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def page(request: Request, user: Principal | None, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    from .session import csrf_token, session_token

    token = session_token(request)
    nav = []
    if user is not None:
        nav = [("/flags", "预警列表", "flags:read"), ("/upload", "上传名册", "batches:write"),
               ("/dashboard", "主管看板", "flags:read")]
        nav = [(href, label) for href, label, permission in nav if access.allowed(user.role, permission)]
    return templates.TemplateResponse(request, name, {
        "user": user, "nav": nav, "path": request.url.path,
        "csrf": csrf_token(token) if user is not None and token else "",
        "may": (lambda permission: user is not None and access.allowed(user.role, permission)),
        **context,
    }, status_code=status, headers=HEADERS)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_download(scratch: Path, write: Callable[[Path], Path], filename: str) -> FileResponse:
    """A workbook written by `write(path)` into a temporary directory under `scratch`, sent as
    `filename` and removed once sent (or at once when writing fails)."""
    directory = Path(tempfile.mkdtemp(prefix="download-", dir=scratch))
    try:
        path = write(directory / "download.xlsx")
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return FileResponse(path, filename=filename, media_type=XLSX,
                        background=BackgroundTask(shutil.rmtree, directory, ignore_errors=True))


def _invalid_request(request: Request, error: RequestValidationError) -> Response:
    """A page asked for with values its route cannot take. A path that names nothing (/flags/abc)
    is not found; a link's query a person edited (page=abc, page=-1) is dropped: the page comes
    without it, as a caseworker would expect; anything else is said in Chinese."""
    places = [tuple(e.get("loc", ())) for e in error.errors()]
    if any(place[:1] == ("path",) for place in places):
        return _error_page(request, 404, _TITLES[404], "该页面或记录不存在，或不在您的辖区内。")
    bad = {str(place[1]) for place in places if len(place) > 1 and place[0] == "query"}
    if request.method == "GET" and bad and len(bad) == len(set(places)):
        kept = [(name, value) for name, value in request.query_params.multi_items() if name not in bad]
        return RedirectResponse(request.url.path + (f"?{urlencode(kept)}" if kept else ""), status_code=303)
    fields = "、".join(sorted({str(place[-1]) for place in places if place}))
    return _error_page(request, 422, _TITLES[422], f"请求中的内容无法识别（{fields}），请返回上一页重试。")


def not_found_page(request: Request) -> HTMLResponse:
    """The answer to a browser asking for a page the server does not have."""
    return _error_page(request, 404, _TITLES[404], "该页面或记录不存在，或不在您的辖区内。")


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    user = getattr(request.state, "principal", None)
    return page(request, user, "error.html", status=status, title=title, message=message)


_TITLES = {403: "无权限", 404: "未找到", 409: "不能执行此操作", 413: "文件过大", 422: "输入有误", 503: "系统繁忙"}


def _login_redirect(request: Request, expired: bool) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"/login?next={quote(target, safe='')}" + ("&expired=1" if expired else "")
    response = RedirectResponse(url, status_code=303)
    if expired:
        from .session import forget

        forget(response)
    return response


class PageRoute(APIRoute):
    """A route whose errors are pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginNeeded:
                return _login_redirect(request, expired=False)
            except NotAuthenticated:
                return _login_redirect(request, expired=True)
            except CrosscheckError as error:
                status, _ = status_of(error)
                if status == 404:
                    message = "该页面或记录不存在，或不在您的辖区内。"
                else:
                    message = error.message
                return _error_page(request, status, _TITLES.get(status, "出错了"), message)
            except RequestValidationError as error:
                return _invalid_request(request, error)
            except StarletteHTTPException as error:
                return _error_page(request, error.status_code, _TITLES.get(error.status_code, "出错了"),
                                   str(error.detail))
            except Exception:
                log.exception("page %s %s failed", request.method, request.url.path)
                return _error_page(request, 500, "内部错误", "服务出现内部错误，已记录日志。请稍后重试或联系管理员。")

        return route
