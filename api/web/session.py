"""Signing in to the pages: the API token kept in a cookie, and protection of the forms.

The cookie holds the token itself (HttpOnly: no script reads it; SameSite=Strict: no other site's
page or link sends it; Secure over HTTPS). Each page request resolves it with
`AppState.principal` exactly as the API resolves a Bearer token, and sets
`request.state.principal`, so that the audit middleware records the page like an API request.

Every form that changes something carries a per-session CSRF token — a keyed hash of the session
token, so it is as unguessable as the token, needs no server-side storage and ends with the
session — and a POST whose Origin is another site's is refused before it is read.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request, Response

from engine.errors import AccessDenied

from .. import access
from ..deps import Principal, StateDep
from .render import LoginNeeded

__all__ = ["COOKIE", "PageUser", "session_token", "csrf_token", "check_form", "remember", "forget", "need"]

COOKIE = "crosscheck_session"
_CSRF_KEY = b"crosscheck page form"


def session_token(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def csrf_token(token: str) -> str:
    return hmac.new(_CSRF_KEY, token.encode(), hashlib.sha256).hexdigest()


def page_user(request: Request, state: StateDep) -> Principal:
    token = session_token(request)
    if token is None:
        raise LoginNeeded()
    principal = state.principal(token)  # NotAuthenticated: a disabled or unknown token
    request.state.principal = principal
    return principal


PageUser = Annotated[Principal, Depends(page_user)]


def need(user: Principal, permission: str) -> Principal:
    """The permission table of the API (api.access.PERMISSIONS), for a page."""
    access.require(user.role, permission)
    return user


def check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        raise AccessDenied("跨站提交被拒绝 (a form posted from another site is refused)")


def check_form(request: Request, given: str | None) -> None:
    """A form post of this session: same origin and the session's CSRF token."""
    check_origin(request)
    token = session_token(request)
    if not token or not given or not hmac.compare_digest(given, csrf_token(token)):
        raise AccessDenied("表单已过期或来源不明，请刷新页面后重试 (the form's CSRF token is missing or wrong)")


def remember(response: Response, request: Request, token: str) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/")


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
