"""REST routes: each one translates a request into one gRPC call and the reply into a response body."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from services.gateway.entrypoints.responses import Problem
from shared.contracts import limits

_DESCRIPTIONS = {
    400: "Malformed JSON body",
    401: "Missing or invalid API key",
    403: "The key's role may not do this",
    404: "No such resource (or it belongs to another organization)",
    409: "Conflicts with the resource's current state (or a reused Idempotency-Key)",
    413: "The request body is too large",
    422: "Request validation failed (see `errors`)",
    429: "The organization's submit rate or queued-jobs cap is reached (`Retry-After`, `RateLimit` headers)",
    502: "A downstream service failed",
    503: "A downstream service is unavailable",
}

# Every authenticated route can answer these.
COMMON = (401, 403, 502, 503)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": Problem, "description": _DESCRIPTIONS[s]} for s in sorted({*COMMON, *statuses})}


# The paging parameters of every list route, with the bounds the services enforce.
PageSize = Annotated[
    int | None,
    Query(ge=1, le=limits.MAX_PAGE, description="Page size (service default when absent)."),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=limits.MAX_CURSOR,
        pattern=limits.CURSOR_PATTERN,
        description="`next_cursor` of the previous page (opaque).",
    ),
]
