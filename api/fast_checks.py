"""POST /checks answered without FastAPI's per-request machinery, by the same endpoint function.

Why: an application system checking households at concurrency 32 keeps the server's one event
loop busy, and FastAPI's work around the endpoint (routing, solving five dependencies, reading
and validating the body through its generic path, validating the answer again) cost ~250 µs of
the ~350 µs a check took on the loop even with the checker's answer ready at once: with no
check at all the loop could not answer more than ~2,700 a second, so the checks' p99 could
not come near 20 ms. This middleware takes the request that needs none of it — a known token,
a role allowed to check, a JSON body that validates, nothing to record, no query string — and
calls `api.routes.checks.check_household` itself, with the route's own body and response
fields (so the body is validated and the answer serialized exactly as FastAPI would).

Anything else goes to FastAPI untouched (the body replayed): an unknown or expired token, a
refusal, a body that does not validate, `record`, a query string. An error the endpoint raises is
answered by the app's own exception handler for it, as FastAPI would answer it. The audit log
and the metrics (outer middleware) see the request as they see every other: it carries the route
and the user as FastAPI's path would have left them.

Set CROSSCHECK_FAST_CHECKS=false to send every check through FastAPI (tests compare the two).
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import access

__all__ = ["FastChecks"]

_JSON = "application/json"  # with or without parameters (charset=utf-8)


class FastChecks:
    def __init__(self, app: ASGIApp, path: str, route: APIRoute) -> None:
        self.app = app
        self.path = path  # where `route` is served (its router's prefix and its own path)
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path
                or scope.get("query_string")):
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        shared = getattr(getattr(app, "state", None), "crosscheck", None)
        user = self._user(scope, shared)
        if user is None or not shared.settings.fast_checks:
            await self.app(scope, receive, send)
            return
        try:
            body, replay = await _read(receive)
        except Exception as error:  # a body over the upload limit, as FastAPI's reading would meet it
            await self._refuse(scope, receive, send, error)
            return
        route = self.route
        parsed = _parsed(body, route)
        if parsed is None or parsed.record:  # FastAPI says what is wrong, or records the flags
            await self.app(scope, replay, send)
            return
        # As FastAPI's path leaves them: the audit log reads the user and the route from the scope.
        scope.setdefault("state", {})["principal"] = user
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        try:
            answer = await route.endpoint(parsed, shared, user)
        except Exception as error:
            await self._refuse(scope, replay, send, error)
            return
        await _response(route, answer)(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
        """`error` answered by the app's handler for it, as FastAPI would answer it; raised on
        when there is none (a bug: the outermost middleware answers 500, as for any route)."""
        handler = _handler_of(scope.get("app"), error)
        if handler is None:
            raise error
        request = Request(scope, receive)
        response = (await handler(request, error) if inspect.iscoroutinefunction(handler)
                    else await run_in_threadpool(handler, request, error))
        await response(scope, receive, send)

    @staticmethod
    def _user(scope: Scope, shared: Any) -> Any:
        """The caller, if the fast path may take the request: their token is in the server's short
        cache, their role may check, and the body is declared JSON (or not declared, which FastAPI
        reads as JSON too). None leaves the request to FastAPI."""
        if shared is None:
            return None
        authorization = content_type = None
        for name, value in scope["headers"]:  # the first of each, as request.headers.get gives it
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        if authorization is None or (content_type is not None
                                     and content_type.partition(";")[0].strip().lower() != _JSON):
            return None
        scheme, _, token = authorization.partition(" ")  # as fastapi.security.HTTPBearer reads it
        if scheme.lower() != "bearer" or not token:
            return None
        user = shared.cached_principal(token)
        return user if user is not None and access.allowed(user.role, "checks:run") else None


async def _read(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that gives it again, then whatever comes after."""
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: let FastAPI hear it
            async def gone() -> Message:
                return message
            return b"", gone
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _parsed(body: bytes, route: APIRoute) -> Any:
    """The body as the route's body field validates it (FastAPI reads JSON with json.loads); None
    when it does not."""
    if not body or route.body_field is None:
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: arrays nested 100,000 deep
        return None
    parsed, errors = route.body_field.validate(value, {}, loc=("body",))
    return None if errors else parsed


def _response(route: APIRoute, answer: Any) -> Response:
    """The answer as FastAPI serializes a route's return value: validated by the response field,
    dumped to JSON by pydantic."""
    field = route.response_field
    assert field is not None
    value, errors = field.validate(answer, {}, loc=("response",))
    if errors:
        raise ValueError(f"POST /checks answered what its response model refuses: {errors}")
    return Response(field.serialize_json(value, include=None, exclude=None, by_alias=True, exclude_unset=False,
                                         exclude_defaults=False, exclude_none=False),
                    media_type="application/json")


def _handler_of(app: Any, error: Exception) -> Any:
    """The app's exception handler for `error` (by its class, nearest first), as Starlette's
    ExceptionMiddleware finds it. Not the one for Exception itself: Starlette leaves that to its
    outermost middleware, which answers 500 and re-raises, and so does this."""
    handlers = getattr(app, "exception_handlers", {})
    for kind in type(error).__mro__:
        if kind is Exception:
            return None
        if kind in handlers:
            return handlers[kind]
    return None
