"""Request context: a SERVER span that continues the caller's ``traceparent``, and ``X-Request-ID``.

Plain ASGI (not ``BaseHTTPMiddleware``) so the span stays the current context while the route runs:
the gRPC channel's interceptor then injects it into every downstream call's metadata.
"""

from __future__ import annotations

import re
import uuid

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import telemetry

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


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = telemetry.tracer("gpufleet.gateway")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        request_id = request_id_from(headers)
        scope.setdefault("state", {})["request_id"] = request_id
        parent = telemetry.extract((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers)
        method = scope.get("method", "")
        with self.tracer.start_as_current_span(
            f"{method} {scope.get('path', '')}", context=parent, kind=SpanKind.SERVER
        ) as span:
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", scope.get("path", ""))
            span.set_attribute("gpufleet.request_id", request_id)

            async def send_with_context(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    route = scope.get("route")
                    if route is not None and getattr(route, "path", None):
                        # Low-cardinality span name: the route template, not the concrete path.
                        span.update_name(f"{method} {route.path}")
                        span.set_attribute("http.route", route.path)
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                await send(message)

            await self.app(scope, receive, send_with_context)
