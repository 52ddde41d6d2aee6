"""The FastAPI application: routes, problem rendering, request context, and the gRPC clients' life cycle."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from services.gateway import bootstrap
from services.gateway.config import GatewaySettings
from services.gateway.entrypoints import errors
from services.gateway.entrypoints.middleware import (
    BodySizeLimitMiddleware,
    HttpMetricsMiddleware,
    RequestContextMiddleware,
)
from services.gateway.entrypoints.routes import (
    admin,
    admin_nodes,
    audit,
    billing,
    dashboard,
    events,
    fleet,
    health,
    identity,
    jobs,
    logs,
    members,
    monitoring,
    notification,
    projects,
)
from shared.contracts.limits import MAX_BATCH_REQUEST_BODY_BYTES, MAX_REQUEST_BODY_BYTES

TITLE = "GPU fleet manager"
API_VERSION = "1.0.0"
DESCRIPTION = f"""\
Submit jobs to a shared GPU fleet, follow them, and see what they cost.

Authenticate with an API key: `Authorization: Bearer <key>` (or `X-API-Key: <key>`).
Every error is an RFC 9457 problem (`application/problem+json`) with `type`, `title`, `status`,
`detail`, `instance`, and `errors` (field, message) for validation failures. Timestamps are RFC 3339
UTC; money is a decimal string in USD. A request body larger than {MAX_REQUEST_BODY_BYTES} bytes
({MAX_BATCH_REQUEST_BODY_BYTES} for `POST /v1/jobs:batchCreate`) is refused with 413 (`request-too-large`).
"""
OPENAPI_URL = "/v1/openapi.json"
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway. Its channels open when the ASGI lifespan starts and close when it ends."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        down = bootstrap.connect_downstream(settings)
        app.state.downstream = down
        app.state.readiness_timeout = settings.gateway_readiness_timeout_seconds
        try:
            yield
        finally:
            app.state.downstream = None
            await down.close()

    app = _build(lifespan)
    # The request's one SERVER span: continues the caller's traceparent, named by the route template,
    # current while the route runs (so the gRPC client interceptor propagates it). Its per-message
    # send/receive spans are left out: they would only repeat the server span's timing.
    FastAPIInstrumentor.instrument_app(app, exclude_spans=["receive", "send"])
    return app


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI document, without settings or connections (what ``python -m services.gateway.openapi``
    prints)."""
    return _build(None).openapi()


def _build(lifespan: Lifespan | None) -> FastAPI:
    app = FastAPI(
        title=TITLE,
        version=API_VERSION,
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry layer is off: the instrumentor below makes the request's span
        # (FastAPI would stand its layer down for it anyway, but only after working that out per request).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.downstream = None
    route_templates: list[tuple[re.Pattern[str], str, set[str]]] = []
    for module in (
        identity,
        fleet,
        jobs,
        billing,
        monitoring,
        notification,
        health,
        dashboard,
        events,
        logs,
        admin,
        admin_nodes,
        members,
        projects,
        audit,
    ):
        app.include_router(module.router)
        route_templates += [
            (r.path_regex, r.path, set(r.methods or ()))
            for r in module.router.routes
            if isinstance(r, APIRoute)
        ]
    # For the Allow header of a 405, and the metrics of a request refused before routing.
    app.state.route_methods = [(pattern, methods) for pattern, _, methods in route_templates]
    app.state.route_templates = route_templates
    errors.install(app)
    # Added innermost first: request context (id) -> metrics -> body size limit -> routes, so that a
    # refused body is still counted and its problem carries the request id.
    app.add_middleware(
        BodySizeLimitMiddleware, larger={("POST", jobs.BATCH_CREATE): MAX_BATCH_REQUEST_BODY_BYTES}
    )
    app.add_middleware(HttpMetricsMiddleware)
    app.add_middleware(RequestContextMiddleware)

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_media_types(
                get_openapi(
                    title=app.title, version=app.version, description=app.description, routes=app.routes
                )
            )
        return app.openapi_schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


def _problem_media_types(spec: dict[str, Any]) -> dict[str, Any]:
    """Every 4xx/5xx answers ``application/problem+json`` with the Problem schema (FastAPI would say
    ``application/json`` and describe its own validation body, which this API never sends).

    The one exception declares its own body: ``/readyz`` answers 503 with the same report as its 200."""
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            for code, response in operation.get("responses", {}).items():
                if code.isdigit() and int(code) >= 400 and not _own_error_body(response):
                    response["content"] = problem
    schemas = spec.get("components", {}).get("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return spec


def _own_error_body(response: dict[str, Any]) -> bool:
    ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    return bool(name) and name != "Problem" and name not in _VALIDATION_SCHEMAS
