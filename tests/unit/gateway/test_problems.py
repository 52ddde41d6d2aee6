"""The status table: which HTTP problem each failure becomes."""

from __future__ import annotations

import pytest

from services.gateway.domain import problems
from shared.errors import ErrorCode


@pytest.mark.parametrize(
    ("grpc_status", "http_status"),
    [
        ("INVALID_ARGUMENT", 422),
        ("NOT_FOUND", 404),
        ("ALREADY_EXISTS", 409),
        ("FAILED_PRECONDITION", 409),
        ("UNAUTHENTICATED", 401),
        ("PERMISSION_DENIED", 403),
        ("UNAVAILABLE", 503),
        ("DEADLINE_EXCEEDED", 503),
        ("INTERNAL", 502),
        ("UNKNOWN", 502),
        ("RESOURCE_EXHAUSTED", 429),
        ("UNIMPLEMENTED", 502),
        ("DATA_LOSS", 502),
        ("CANCELLED", 502),
    ],
)
def test_grpc_status_to_http(grpc_status, http_status):
    assert problems.for_grpc_status(grpc_status).status == http_status


def test_every_error_code_has_a_problem_that_agrees_with_its_grpc_mapping():
    # shared.grpc renders CONFLICT as ALREADY_EXISTS; both paths must land on the same problem.
    via_grpc = {ErrorCode.CONFLICT: "ALREADY_EXISTS"}
    for code in ErrorCode:
        grpc_name = via_grpc.get(code, code.name)
        assert problems.for_error_code(code) is problems.for_grpc_status(grpc_name)


def test_problem_types_are_unique_absolute_uris():
    types = [p.type for p in problems.CATALOG]
    assert len(set(types)) == len(types)
    assert all(t.startswith("https://gpufleet.dev/problems/") for t in types)


def test_only_client_errors_expose_their_detail():
    assert problems.NOT_FOUND.exposes_detail and problems.VALIDATION_ERROR.exposes_detail
    assert not problems.UPSTREAM_ERROR.exposes_detail and not problems.SERVICE_UNAVAILABLE.exposes_detail


@pytest.mark.parametrize(
    ("status", "slug"),
    [
        (404, "not-found"),
        (405, "method-not-allowed"),
        (400, "bad-request"),
        (413, "request-too-large"),
        (418, "http-418"),
        (599, "http-599"),
    ],
)
def test_http_status_to_problem(status, slug):
    problem = problems.for_http_status(status)
    assert problem.status == status and problem.slug == slug and problem.title


def test_a_conflict_on_the_idempotency_key_is_its_own_problem():
    reused = problems.for_grpc_status("ALREADY_EXISTS", "idempotency_key")
    assert reused is problems.IDEMPOTENCY_KEY_REUSED and reused.status == 409
    assert reused.type.endswith("/idempotency-key-reused") and "Idempotency-Key" in (reused.detail or "")
    assert problems.for_grpc_status("ALREADY_EXISTS", "name") is problems.CONFLICT
    assert problems.for_grpc_status("ALREADY_EXISTS") is problems.CONFLICT
    # The field only refines a conflict; elsewhere it changes nothing.
    assert problems.for_grpc_status("INVALID_ARGUMENT", "idempotency_key") is problems.VALIDATION_ERROR
