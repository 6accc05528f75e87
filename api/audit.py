"""The audit middleware: every request that names a user — read or write, allowed or refused —
is queued in the append-only audit log (store.audit) with who, when, from which address, what
(method and path with its query string) and the answer's status. Requests without a user
(health, metrics, the docs) are not personal-data access and are not logged. The middleware also
counts and times every request for /metrics, by route template (not by raw path, so that flag ids
do not explode the number of series)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.models import utcnow

__all__ = ["AuditMiddleware"]

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._after(scope, status["code"], time.perf_counter() - started)

    @staticmethod
    def _holder(shared: Any, authorization: str) -> Any:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return shared.principal(token.strip())
        except Exception:  # an unknown token: recorded without a name
            return None

    def _after(self, scope: Scope, code: int, seconds: float) -> None:
        app = scope.get("app")
        shared = getattr(getattr(app, "state", None), "crosscheck", None)
        if shared is None:
            return
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        shared.metrics.answered(method, template, code, seconds)
        principal = scope.get("state", {}).get("principal")
        authorization = next((value for name, value in scope.get("headers", []) if name == b"authorization"), None)
        if principal is None and authorization is None:
            return
        if principal is None:  # refused before the route read the token (an upload over the limit): whose?
            principal = self._holder(shared, authorization.decode("latin-1"))
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
        client = scope.get("client")
        action = "denied" if code in (401, 403) else ("write" if method in _WRITES else "read")
        detail: dict[str, Any] = {"route": template, "ms": round(seconds * 1000, 1)}
        shared.audit.record(at=utcnow(), user_name=principal.name if principal else None,
                            role=principal.role if principal else None, address=client[0] if client else None,
                            method=method, path=path, action=action, status_code=code, detail=detail)
