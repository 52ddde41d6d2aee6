"""The catalog of problem types the gateway answers with (RFC 9457), and how failures map onto them.

One table decides the HTTP status of every failure: a gRPC status from a downstream service, a
:class:`shared.errors.DomainError` raised in this process, or an HTTP-level failure (no route, wrong
method). Plain data, no I/O: the entrypoints render what this module decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from shared.errors import ErrorCode

PROBLEM_BASE = "https://gpufleet.dev/problems/"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    title: str
    status: int
    # Said instead of the failure's own message, where the REST caller needs other words (a header
    # name rather than the gRPC field's).
    detail: str | None = None

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    @property
    def exposes_detail(self) -> bool:
        """4xx messages are written for the caller; 5xx messages may describe our internals."""
        return self.status < 500


BAD_REQUEST = ProblemType("bad-request", "Bad request", 400)
MALFORMED_JSON = ProblemType("malformed-json", "Malformed JSON body", 400)
UNAUTHENTICATED = ProblemType("unauthenticated", "Authentication required", 401)
PERMISSION_DENIED = ProblemType("permission-denied", "Permission denied", 403)
# The key's role would allow the call but its scopes do not; the detail names the missing scope.
INSUFFICIENT_SCOPE = ProblemType("insufficient-scope", "API key lacks the scope this call needs", 403)
NOT_FOUND = ProblemType("not-found", "Resource not found", 404)
METHOD_NOT_ALLOWED = ProblemType("method-not-allowed", "Method not allowed", 405)
CONFLICT = ProblemType("conflict", "Resource already exists", 409)
IDEMPOTENCY_KEY_REUSED = ProblemType(
    "idempotency-key-reused",
    "Idempotency-Key reused with a different request",
    409,
    detail="this Idempotency-Key was already used with a different request; send the same request "
    "again to get its job, or use a new key for a new job",
)
INVALID_STATE = ProblemType("invalid-state", "Not allowed in the resource's current state", 409)
CONTENT_TOO_LARGE = ProblemType("request-too-large", "Request body too large", 413)
VALIDATION_ERROR = ProblemType("validation-error", "Request validation failed", 422)
# An archived project (docs/projects.md) keeps its jobs, costs and members but takes no new jobs or keys.
PROJECT_ARCHIVED = ProblemType("project-archived", "The project is archived", 422)
# An organization's abuse limit (submit rate, queued jobs: docs/limits.md); Retry-After says when.
TOO_MANY_REQUESTS = ProblemType("too-many-requests", "Too many requests", 429)
INTERNAL_ERROR = ProblemType("internal-error", "Internal server error", 500)
UPSTREAM_ERROR = ProblemType("upstream-error", "Upstream service failed", 502)
SERVICE_UNAVAILABLE = ProblemType("service-unavailable", "Service temporarily unavailable", 503)

CATALOG: tuple[ProblemType, ...] = (
    BAD_REQUEST,
    MALFORMED_JSON,
    UNAUTHENTICATED,
    PERMISSION_DENIED,
    INSUFFICIENT_SCOPE,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    CONFLICT,
    IDEMPOTENCY_KEY_REUSED,
    INVALID_STATE,
    CONTENT_TOO_LARGE,
    VALIDATION_ERROR,
    PROJECT_ARCHIVED,
    TOO_MANY_REQUESTS,
    INTERNAL_ERROR,
    UPSTREAM_ERROR,
    SERVICE_UNAVAILABLE,
)

# Keyed by grpc.StatusCode.name so that this module needs no grpc import.
_BY_GRPC_STATUS: dict[str, ProblemType] = {
    "INVALID_ARGUMENT": VALIDATION_ERROR,
    "NOT_FOUND": NOT_FOUND,
    "ALREADY_EXISTS": CONFLICT,
    "FAILED_PRECONDITION": INVALID_STATE,
    "UNAUTHENTICATED": UNAUTHENTICATED,
    "PERMISSION_DENIED": PERMISSION_DENIED,
    "UNAVAILABLE": SERVICE_UNAVAILABLE,
    "DEADLINE_EXCEEDED": SERVICE_UNAVAILABLE,
    # As grpc-gateway maps it: a limit of the caller's (the scheduler's abuse limits) is reached.
    "RESOURCE_EXHAUSTED": TOO_MANY_REQUESTS,
}

_BY_ERROR_CODE: dict[ErrorCode, ProblemType] = {
    ErrorCode.INVALID_ARGUMENT: VALIDATION_ERROR,
    ErrorCode.NOT_FOUND: NOT_FOUND,
    ErrorCode.CONFLICT: CONFLICT,
    ErrorCode.FAILED_PRECONDITION: INVALID_STATE,
    ErrorCode.UNAUTHENTICATED: UNAUTHENTICATED,
    ErrorCode.PERMISSION_DENIED: PERMISSION_DENIED,
    ErrorCode.UNAVAILABLE: SERVICE_UNAVAILABLE,
    ErrorCode.RESOURCE_EXHAUSTED: TOO_MANY_REQUESTS,
}

_BY_HTTP_STATUS: dict[int, ProblemType] = {
    p.status: p
    for p in (
        BAD_REQUEST,
        UNAUTHENTICATED,
        PERMISSION_DENIED,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        CONTENT_TOO_LARGE,
        VALIDATION_ERROR,
        INTERNAL_ERROR,
        UPSTREAM_ERROR,
        SERVICE_UNAVAILABLE,
    )
}


# A conflict on the idempotency key is not "already exists": the caller's request differs from the
# one the key was first used with (the scheduler names the field in its error trailer). A refusal
# that names the key's ``scopes`` is shared.scopes' (the key's role would have been enough).
_BY_GRPC_STATUS_AND_FIELD: dict[tuple[str, str], ProblemType] = {
    ("ALREADY_EXISTS", "idempotency_key"): IDEMPOTENCY_KEY_REUSED,
    ("PERMISSION_DENIED", "scopes"): INSUFFICIENT_SCOPE,
    # The only precondition a project_id fails is its project being archived (scheduler and identity).
    ("FAILED_PRECONDITION", "project_id"): PROJECT_ARCHIVED,
}


def for_grpc_status(name: str, field: str | None = None) -> ProblemType:
    """Any status without a meaning for the caller (INTERNAL, UNKNOWN, ...) is the upstream's fault: 502.

    ``field`` is the field the upstream named for its error, when it named one; a batch's job names
    it under the job (``jobs[3].project_id``), which means what the field means for a single job."""
    leaf = field.rsplit(".", 1)[-1] if field is not None else None
    if leaf is not None and (name, leaf) in _BY_GRPC_STATUS_AND_FIELD:
        return _BY_GRPC_STATUS_AND_FIELD[name, leaf]
    return _BY_GRPC_STATUS.get(name, UPSTREAM_ERROR)


def for_error_code(code: ErrorCode) -> ProblemType:
    return _BY_ERROR_CODE[code]


def for_http_status(status: int) -> ProblemType:
    known = _BY_HTTP_STATUS.get(status)
    if known:
        return known
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "HTTP error"
    return ProblemType(f"http-{status}", phrase, status)


def generic_detail(problem: ProblemType) -> str:
    """What a 5xx says instead of the upstream's own message."""
    if problem is SERVICE_UNAVAILABLE:
        return "a service needed to answer is unavailable; retry later"
    return "the request could not be completed; retry later or report the request id"
