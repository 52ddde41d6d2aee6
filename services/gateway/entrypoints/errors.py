"""The one place where failures become RFC 9457 problem responses (``application/problem+json``).

What status a failure gets is decided in ``domain.problems``; this module only reads the failure
(a validation error, a gRPC status, a DomainError, an HTTP error) and writes the body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.domain import problems, rate_limits
from services.gateway.domain.fields import field_message, field_name
from services.gateway.domain.problems import ProblemType
from services.gateway.entrypoints.translate import UpstreamContractError
from shared.errors import DomainError
from shared.grpc import ERROR_FIELD_KEY

log = logging.getLogger("gpufleet.gateway.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_response(
    request: Request,
    problem: ProblemType,
    detail: str,
    *,
    errors: Iterable[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request.scope.get("state", {}).get("request_id"),
    }
    if errors is not None:
        body["errors"] = list(errors)
    all_headers = dict(headers or {})
    if problem.status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="gpufleet"')
    return ProblemResponse(body, status_code=problem.status, headers=all_headers)


async def _request_validation(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errs = list(exc.errors())
    bad_json = next((e for e in errs if e.get("type") == "json_invalid"), None)
    if bad_json:
        reason = (bad_json.get("ctx") or {}).get("error", "invalid JSON")
        pos = bad_json["loc"][-1] if len(bad_json["loc"]) > 1 else "?"
        return problem_response(
            request,
            problems.MALFORMED_JSON,
            f"the request body is not valid JSON: {reason} (at character {pos})",
        )
    fields = [
        {"field": field_name(e.get("loc", ())), "message": field_message(e.get("type", ""), e.get("msg", ""))}
        for e in errs
    ]
    names = ", ".join(sorted({f["field"] or "body" for f in fields}))
    return problem_response(request, problems.VALIDATION_ERROR, f"invalid request: {names}", errors=fields)


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    problem = problems.for_http_status(exc.status_code)
    detail = {
        404: f"nothing is at {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail) if problem.exposes_detail else problems.generic_detail(problem))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(request, problem, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Starlette names only the first matching route's methods; a path can have several routes."""
    methods: set[str] = set()
    for pattern, route_methods in getattr(request.app.state, "route_methods", ()):
        if pattern.match(request.url.path):
            methods |= route_methods
    return sorted(methods)


async def _domain_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, DomainError)
    problem = problems.for_error_code(exc.code)
    if not problem.exposes_detail:
        log.warning("request failed", extra={"error": exc.message, "path": request.url.path})
    detail = exc.message if problem.exposes_detail else problems.generic_detail(problem)
    errors = [{"field": exc.field, "message": exc.message}] if problem is problems.VALIDATION_ERROR else None
    headers = rate_limits.headers(dict(exc.trailers())) if problem is problems.TOO_MANY_REQUESTS else None
    return problem_response(request, problem, detail, errors=errors, headers=headers)


def _trailing_field(exc: grpc.aio.AioRpcError) -> str | None:
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_FIELD_KEY:
            return value.decode() if isinstance(value, bytes) else value
    return None


async def _grpc_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    field = _trailing_field(exc)
    problem = problems.for_grpc_status(exc.code().name, field)
    if not problem.exposes_detail:
        # Logged for operators with the trace id; the caller gets a generic sentence.
        log.warning(
            "downstream call failed",
            extra={"grpc_status": exc.code().name, "grpc_details": exc.details(), "path": request.url.path},
        )
        return problem_response(request, problem, problems.generic_detail(problem))
    detail = problem.detail or exc.details() or problem.title
    errors = None
    if problem is problems.VALIDATION_ERROR:
        errors = [{"field": field, "message": detail}]
    headers = None
    if problem is problems.TOO_MANY_REQUESTS:
        # An abuse limit (docs/limits.md): Retry-After and RateLimit headers from the refusal's trailers.
        headers = rate_limits.headers(rate_limits.trailer_map(exc.trailing_metadata()))
    return problem_response(request, problem, detail, errors=errors, headers=headers)


async def _bad_upstream_answer(request: Request, exc: Exception) -> ProblemResponse:
    log.error("downstream answer outside its contract", exc_info=exc, extra={"path": request.url.path})
    return problem_response(
        request, problems.UPSTREAM_ERROR, problems.generic_detail(problems.UPSTREAM_ERROR)
    )


async def _unexpected(request: Request, exc: Exception) -> ProblemResponse:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return problem_response(
        request, problems.INTERNAL_ERROR, problems.generic_detail(problems.INTERNAL_ERROR)
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(grpc.aio.AioRpcError, _grpc_error)
    # A reply we cannot read (bad timestamp, unknown status) is the upstream's failure, not ours.
    app.add_exception_handler(UpstreamContractError, _bad_upstream_answer)
    app.add_exception_handler(ValidationError, _bad_upstream_answer)
    app.add_exception_handler(ResponseValidationError, _bad_upstream_answer)
    app.add_exception_handler(Exception, _unexpected)
