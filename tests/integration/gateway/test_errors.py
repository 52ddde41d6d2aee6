"""Every failure is an RFC 9457 problem with the right status, and bad input reaches no service."""

from __future__ import annotations

import httpx
import pytest

from shared.contracts import limits
from shared.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from tests.integration.gateway import fakes

pytestmark = pytest.mark.integration

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance"}


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert PROBLEM_MEMBERS <= set(body), body
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["type"] == f"https://gpufleet.dev/problems/{slug}"
    assert body["instance"] == r.request.url.path
    assert body["request_id"] == r.headers["x-request-id"]
    return body


async def post_job(api: httpx.AsyncClient, content: bytes) -> httpx.Response:
    return await api.post("/v1/jobs", content=content, headers={"content-type": "application/json"})


async def test_malformed_json_is_400_and_reaches_nobody(api, rec):
    r = await post_job(api, b'{"command": "echo", ')
    assert_problem(r, 400, "malformed-json")
    assert rec.of("SubmitJob") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"command": "echo", "gpu_count": "2"}', "gpu_count"),  # strict: no string -> int coercion
        (b'{"command": "echo", "gpu_count": 2.0}', "gpu_count"),
        (b'{"command": "echo", "gpu_count": true}', "gpu_count"),
        (b'{"command": "echo", "gpu_count": 17}', "gpu_count"),
        (b'{"command": "echo", "gpu_memory_mb": -1}', "gpu_memory_mb"),
        (b'{"command": "echo", "priority": 101}', "priority"),
        (b'{"command": ""}', "command"),
        (b'{"command": "   "}', "command"),
        (b'{"command": 5}', "command"),
        (b'{"gpu_count": 1}', "command"),
        (b'{"command": "echo", "webhook_url": "ftp://example.com/x"}', "webhook_url"),
        (b'{"command": "echo", "webhook_url": "not a url"}', "webhook_url"),
        (b'{"command": "echo", "gpus": 2}', "gpus"),  # unknown fields are refused
    ],
)
async def test_schema_violations_are_422_with_the_field_and_reach_nobody(api, rec, body, field):
    r = await post_job(api, body)
    problem = assert_problem(r, 422, "validation-error")
    assert field in {e["field"] for e in problem["errors"]}, problem
    assert all(e["message"] for e in problem["errors"])
    assert rec.of("SubmitJob") == []


async def test_a_body_that_is_not_an_object_is_422(api, rec):
    problem = assert_problem(await post_job(api, b"[1, 2]"), 422, "validation-error")
    assert problem["errors"][0]["field"] is None
    assert rec.of("SubmitJob") == []


async def test_unknown_gpu_type_from_the_scheduler_is_422_with_its_field(api, rec):
    rec.fail_next("SubmitJob", InvalidArgument("unknown GPU type 'quantum-9000'", field="gpu_type"))
    r = await api.post("/v1/jobs", json={"command": "echo", "gpu_type": "quantum-9000"})
    problem = assert_problem(r, 422, "validation-error")
    assert problem["errors"] == [{"field": "gpu_type", "message": "unknown GPU type 'quantum-9000'"}]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer gpf_wrong"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "gpf_wrong"},
        {"Authorization": "Bearer "},
    ],
)
async def test_missing_or_wrong_key_is_401_and_reaches_nobody(anon, rec, headers):
    r = await anon.post("/v1/jobs", json={"command": "echo"}, headers=headers)
    assert_problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert rec.calls == []


async def test_unauthenticated_from_a_downstream_service_is_401(api, rec):
    # e.g. the key was revoked between the gateway's cached check and the service's own check
    rec.fail_next("ListGpus", Unauthenticated("invalid API key"))
    r = await api.get("/v1/gpus")
    assert_problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_other_organizations_job_is_404(api, rec):
    rec.fail_next("GetJob", NotFound("job not found"))
    problem = assert_problem(await api.get(f"/v1/jobs/{fakes.JOB_ID}"), 404, "not-found")
    assert problem["detail"] == "job not found"


@pytest.mark.parametrize("path", ["/v1/jobs/not-a-uuid", "/v1/jobs/123/cost", "/v1/jobs/%20/cancel"])
async def test_malformed_ids_are_404_and_reach_nobody(api, rec, path):
    method = "POST" if path.endswith("/cancel") else "GET"
    assert_problem(await api.request(method, path), 404, "not-found")
    assert rec.calls == []


@pytest.mark.parametrize("path", ["/v1/webhooks/zzz", "/v1/api-keys/zzz"])
async def test_malformed_ids_on_delete_are_404(api, rec, path):
    assert_problem(await api.delete(path), 404, "not-found")
    assert rec.calls == []


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (Conflict("a webhook for this URL exists"), 409, "conflict"),
        (FailedPrecondition("the job has already finished"), 409, "invalid-state"),
        (PermissionDenied("the viewer role cannot change anything"), 403, "permission-denied"),
        (Unavailable("database down at 10.0.0.5"), 503, "service-unavailable"),
    ],
)
async def test_grpc_statuses_map_to_http(api, rec, error, status, slug):
    rec.fail_next("CancelJob", error)
    problem = assert_problem(await api.post(f"/v1/jobs/{fakes.JOB_ID}/cancel"), status, slug)
    if status < 500:
        assert problem["detail"] == error.message
    else:
        assert "10.0.0.5" not in problem["detail"]  # never leak internals


async def test_an_unexpected_grpc_status_is_502_without_internals(api, rec):
    # A servicer crashing with a plain exception reaches the gateway as UNKNOWN.
    rec.fail_next("ListJobs", _Crash("psycopg.OperationalError: password=hunter2"))
    problem = assert_problem(await api.get("/v1/jobs"), 502, "upstream-error")
    assert "hunter2" not in problem["detail"] and "psycopg" not in problem["detail"]


class _Crash(Exception):
    """Not a DomainError: the fake raises it as-is, like a bug in a servicer."""


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/jobs?limit=0", "limit"),
        ("/v1/jobs?limit=abc", "limit"),
        ("/v1/jobs?status=bogus", "status"),
        ("/v1/utilization?hours=0", "hours"),
        ("/v1/gpus?status=melted", "status"),
        ("/v1/costs?limit=1000", "limit"),
        # The bounds monitoring and the scheduler enforce, refused here first (shared.contracts.limits).
        (f"/v1/utilization?hours={limits.MAX_UTILIZATION_HOURS + 1}", "hours"),
        (f"/v1/jobs?limit={limits.MAX_PAGE + 1}", "limit"),
        ("/v1/jobs?cursor=not%20a%20cursor!", "cursor"),
        (f"/v1/jobs?cursor={'A' * (limits.MAX_CURSOR + 1)}", "cursor"),
        ("/v1/costs?cursor=%2B%2F%3D", "cursor"),  # standard base64's +/= are not ours
    ],
)
async def test_bad_query_parameters_are_422(api, rec, path, field):
    problem = assert_problem(await api.get(path), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert rec.calls == []


async def test_webhook_body_is_strict(api, rec):
    r = await api.post("/v1/webhooks", json={"url": "https://example.com", "events": "job.succeeded"})
    problem = assert_problem(r, 422, "validation-error")
    assert problem["errors"][0]["field"] == "events"
    assert rec.of("CreateWebhook") == []


async def test_unknown_route_is_404_and_wrong_method_is_405(api):
    assert_problem(await api.get("/v1/nothing-here"), 404, "not-found")
    r = await api.put("/v1/jobs")
    assert_problem(r, 405, "method-not-allowed")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/utilization?hours={limits.MAX_UTILIZATION_HOURS}",
        f"/v1/jobs?limit={limits.MAX_PAGE}&cursor={'A' * limits.MAX_CURSOR}",
        "/v1/costs?cursor=WyIyMDI1LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwiMSJd",
    ],
)
async def test_the_largest_accepted_query_values_reach_the_service(api, rec, path):
    assert (await api.get(path)).status_code == 200
    assert len(rec.calls) == 1


@pytest.mark.parametrize(
    ("key", "status"),
    [("k" * limits.MAX_IDEMPOTENCY_KEY, 201), ("k" * (limits.MAX_IDEMPOTENCY_KEY + 1), 422)],
)
async def test_idempotency_key_length_is_the_schedulers(api, rec, key, status):
    r = await api.post("/v1/jobs", json={"command": "echo"}, headers={"Idempotency-Key": key})
    assert r.status_code == status, r.text
    assert len(rec.of("SubmitJob")) == (1 if status == 201 else 0)


async def test_a_reused_idempotency_key_with_another_body_is_a_409_naming_the_header(api, rec):
    # What the scheduler raises (domain.spec.IdempotencyKeyReused): CONFLICT on field idempotency_key.
    rec.fail_next(
        "SubmitJob",
        Conflict("idempotency_key was already used with a different request", field="idempotency_key"),
    )
    r = await api.post("/v1/jobs", json={"command": "other"}, headers={"Idempotency-Key": "deploy-42"})
    problem = assert_problem(r, 409, "idempotency-key-reused")
    assert "Idempotency-Key" in problem["detail"] and "different request" in problem["detail"]
    assert rec.of("SubmitJob")[0].request.idempotency_key == "deploy-42"


async def test_another_conflict_on_submit_stays_a_plain_conflict(api, rec):
    rec.fail_next("SubmitJob", Conflict("already exists", field="name"))
    assert_problem(await api.post("/v1/jobs", json={"command": "x"}), 409, "conflict")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/api-keys", {"name": "k", "scopes": ["root"]}, "scopes[0]"),
        ("/v1/webhooks", {"url": "https://example.com", "events": ["job.exploded"]}, "events[0]"),
        ("/v1/webhooks", {"url": "https://user:pw@example.com/h"}, "url"),
        ("/v1/jobs", {"command": "x", "webhook_url": "http://exa mple.com/"}, "webhook_url"),
        ("/v1/jobs", {"command": "x", "gpu_memory_mb": limits.MAX_GPU_MEMORY_MB + 1}, "gpu_memory_mb"),
    ],
)
async def test_enumerations_and_url_shape_are_checked_at_the_edge(api, rec, path, body, field):
    problem = assert_problem(await api.post(path, json=body), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert rec.calls == []
