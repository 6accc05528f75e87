"""登录 / 退出: sign in with the token `crosscheck users add` printed; sign out."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from engine.errors import NotAuthenticated

from ..deps import StateDep
from .render import PageRoute, page
from .session import check_form, check_origin, forget, remember, session_token

router = APIRouter(route_class=PageRoute, include_in_schema=False)


_LOCAL_PATH = re.compile(r"/(?![/\\])[^\s\\\x00-\x1f\x7f]*")


def _safe_next(target: str | None) -> str:
    """Only a path of this site: never another host (`//evil`, `/\\evil`, `https://…`, or a
    path a browser would turn into one by dropping a tab or a newline)."""
    return target if target and _LOCAL_PATH.fullmatch(target) else "/flags"


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/flags" if session_token(request) else "/login", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str | None = None, expired: bool = False) -> Response:
    message = "会话已失效或令牌已停用，请重新登录。" if expired else None
    return page(request, None, "login.html", next=_safe_next(next), message=message)


@router.post("/login")
def login(request: Request, state: StateDep, token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/flags") -> Response:
    check_origin(request)
    token = token.strip()
    try:
        principal = state.principal(token or None)
    except NotAuthenticated:
        return page(request, None, "login.html", status=401, next=_safe_next(next),
                    message="令牌无效或已停用，请核对后重试。")
    request.state.principal = principal  # the sign-in is recorded in the audit log
    response = RedirectResponse(_safe_next(next), status_code=303)
    remember(response, request, token)
    return response


@router.post("/logout")
def logout(request: Request, state: StateDep, csrf: Annotated[str, Form()] = "") -> Response:
    if not session_token(request):  # signed out already (in another tab): nothing to refuse
        check_origin(request)
        return RedirectResponse("/login", status_code=303)
    check_form(request, csrf)
    try:
        request.state.principal = state.principal(session_token(request))  # recorded in the audit log
    except NotAuthenticated:
        pass
    response = RedirectResponse("/login", status_code=303)
    forget(response)
    return response
