"""Annotated dependencies: what a route needs, declared in its signature.

    StateDep        the app's shared state: settings, store, checker, audit log, batch worker
    UserDep         the authenticated user (Bearer token), set on request.state for the audit
    Allowed(perm)   the user, if their role has `perm` (api.access.PERMISSIONS), else 403
    known_query     refuses query parameters the route does not declare (422)
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from store.audit import AuditLog
from store.check_process import CheckProcess
from store.check_queue import CheckQueue
from store.checks import Checker
from store.db import Store
from store.settings import Settings
from store.users import authenticate, token_hash

from . import access
from .metrics import Metrics

__all__ = ["AppState", "Principal", "StateDep", "UserDep", "Allowed", "bearer", "known_query"]

USER_CACHE_SECONDS = 5.0  # a disabled token stops working within this long


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    region: str


@dataclass
class AppState:
    settings: Settings
    store: Store
    checker: Checker | CheckProcess  # checks batches: in this process, or in the check process
    audit: AuditLog
    batches: ThreadPoolExecutor
    checks: CheckQueue | CheckProcess | None = None  # POST /checks gathered into engine calls
    metrics: Metrics = field(default_factory=Metrics)
    started: float = field(default_factory=time.time)
    _users: dict[str, tuple[Principal, float]] = field(default_factory=dict)
    _users_lock: threading.Lock = field(default_factory=threading.Lock)

    def cached_principal(self, token: str | None) -> Principal | None:
        """The user holding `token` if the short cache knows them (no database read), else None."""
        digest = token_hash(token) if token else ""
        with self._users_lock:
            cached = self._users.get(digest)
        return cached[0] if cached and cached[1] > time.monotonic() else None

    def principal(self, token: str | None) -> Principal:
        """The user holding `token`, from a short cache: one hash lookup per request, not one
        database read."""
        cached = self.cached_principal(token)
        if cached is not None:
            return cached
        digest = token_hash(token) if token else ""
        now = time.monotonic()
        user = authenticate(self.store, token)  # NotAuthenticated
        principal = Principal(user.name, user.role, user.region)
        with self._users_lock:
            self._users[digest] = (principal, now + USER_CACHE_SECONDS)
        return principal


# The dependencies below are `async def`: cheap, they run on the event loop, where a plain `def`
# would cost each request a hop to the thread pool (and a GIL hand-over) for nothing.


async def get_state(request: Request) -> AppState:
    return request.app.state.crosscheck  # type: ignore[no-any-return]


StateDep = Annotated[AppState, Depends(get_state)]
bearer = HTTPBearer(auto_error=False, description="令牌 the token printed by `crosscheck users add`")


async def current_user(request: Request, state: StateDep,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    principal = state.cached_principal(token) or await run_in_threadpool(state.principal, token)  # a DB read
    request.state.principal = principal
    return principal


UserDep = Annotated[Principal, Depends(current_user)]


def Allowed(permission: str) -> Any:  # noqa: N802 — reads as a type in signatures
    """`user: Allowed("flags:read")` — the current user, if their role has the permission."""

    async def check(user: UserDep) -> Principal:
        access.require(user.role, permission)
        return user

    return Annotated[Principal, Depends(check)]


def _query_names(dependant: Any) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _declared_query(request: Request) -> set[str] | None:
    """The query parameters the route (and its dependencies) declare; None: not an API route.
    Walked once per route and kept on it."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    declared: set[str] | None = getattr(route, "_crosscheck_query", None)
    if declared is None:
        declared = _query_names(dependant)
        route._crosscheck_query = declared  # type: ignore[union-attr]
    return declared


async def known_query(request: Request) -> None:
    """A misspelt filter (`?severty=high`) must not silently answer with everything: query
    parameters the route does not declare are refused, each named."""
    if not request.scope.get("query_string"):  # nothing to refuse (POST /checks, most reads)
        return
    declared = _declared_query(request)
    if declared is None:
        return
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise RequestValidationError([{"loc": ("query", name), "type": "extra_forbidden",
                                       "msg": f"unknown query parameter (this path takes: {known})"}
                                      for name in unknown])
