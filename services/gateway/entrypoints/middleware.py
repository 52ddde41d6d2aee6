"""The gateway's own ASGI middleware: request ids, HTTP metrics, and the request body size limit.

All plain ASGI (not ``BaseHTTPMiddleware``): nothing here buffers a body or moves the route into
another task, so the request's SERVER span (opened by OpenTelemetry's FastAPI instrumentation, outside
these) stays the current context while the route runs, and the gRPC channel's interceptor injects it
into every downstream call's metadata.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping

from opentelemetry import trace
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.adapters import metrics
from services.gateway.domain import problems
from services.gateway.entrypoints.errors import problem_response
from shared.contracts.limits import MAX_REQUEST_BODY_BYTES

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is echoed only if it is short and plain; anything else is replaced (no header injection).
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key.lower() == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


class _HttpMiddleware:
    """A pure ASGI middleware that acts on HTTP requests only (lifespan and others pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestContextMiddleware(_HttpMiddleware):
    """``X-Request-ID``: the caller's (when safe) or a new one, echoed, kept in ``scope["state"]`` for
    problem bodies and the downstream metadata, and recorded on the request's span."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_from(scope.get("headers") or [])
        scope.setdefault("state", {})["request_id"] = request_id
        trace.get_current_span().set_attribute("gpufleet.request_id", request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def route_template(scope: Scope) -> str | None:
    """The template of the route that answered (``/v1/jobs/{job_id}``); None when none matches."""
    route = scope.get("route")
    return getattr(route, "path", None) if route is not None else _match(scope)


def _match(scope: Scope) -> str | None:
    """For a request refused before routing: the template the router would have picked (one with the
    path and the method, else one with the path), from the table the app keeps of its routes."""
    state = getattr(scope.get("app"), "state", None)
    table: list[tuple[re.Pattern[str], str, set[str]]] = getattr(state, "route_templates", [])
    path, method = scope.get("path", ""), scope.get("method", "")
    partial = None
    for pattern, template, methods in table:
        if pattern.match(path):
            if method in methods:
                return template
            partial = partial or template
    return partial


class HttpMetricsMiddleware(_HttpMiddleware):
    """``gpufleet_http_requests_total`` and ``gpufleet_http_request_duration_seconds`` per route."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        # An exception that escapes before an answer started becomes the outer error handler's 500.
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            metrics.observe_request(
                scope.get("method", ""), route_template(scope), status, time.perf_counter() - started
            )


class _BodyTooLarge(Exception):
    pass


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we see it; count anyway
    return None


class BodySizeLimitMiddleware:
    """Refuses a body over ``max_bytes`` with a 413 problem, without reading it into memory first.

    A declared ``Content-Length`` over the limit is refused before the app runs. Otherwise (chunked, or
    a length that lies) the bytes are counted as the app reads them; past the limit the read fails, and
    whatever the app would answer to that is replaced by the 413. ``larger`` names the few routes
    (method, exact path) whose bodies may be bigger, with their own limit (a batch submit).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_REQUEST_BODY_BYTES,
        larger: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get((scope.get("method", ""), scope.get("path", "")), self.max_bytes)
        declared = _declared_length(scope.get("headers") or [])
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        too_large = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if too_large and not answered:
                return  # the app's answer to the failed read; the 413 below replaces it
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not answered:
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            Request(scope),
            problems.CONTENT_TOO_LARGE,
            f"the request body is larger than {limit} bytes",
            # The rest of the body is never read, so the connection cannot carry another request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
