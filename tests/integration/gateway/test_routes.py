"""Every route's happy path: the right call with the right fields, and the reply mapped back faithfully."""

from __future__ import annotations

import pytest

from tests.integration.gateway import fakes

pytestmark = pytest.mark.integration

BEARER = f"Bearer {fakes.TEST_KEY}"


def only_call(rec: fakes.Recorder, method: str) -> fakes.Call:
    calls = rec.of(method)
    assert len(calls) == 1, rec.calls
    assert calls[0].metadata["authorization"] == BEARER  # the caller's own key travels on
    return calls[0]


async def test_me_returns_principal_and_organization(api, rec):
    r = await api.get("/v1/me")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "principal": {
            "organization_id": fakes.ORG_ID,
            "user_id": fakes.USER_ID,
            "role": "owner",
            "api_key_id": fakes.KEY_ID,
            "scopes": ["jobs:write"],
            "project_id": None,
            "project_roles": [],
        },
        "organization": {"id": fakes.ORG_ID, "name": "Acme Research", "created_at": "2025-01-02T03:04:05Z"},
    }
    only_call(rec, "GetOrganization")


async def test_x_api_key_header_is_accepted(anon, rec):
    r = await anon.get("/v1/me", headers={"X-API-Key": fakes.TEST_KEY})
    assert r.status_code == 200, r.text
    only_call(rec, "GetOrganization")


async def test_gpus_pass_filters_and_map_fields(api, rec):
    r = await api.get("/v1/gpus", params={"status": "available", "gpu_type": "h100-80gb"})
    assert r.status_code == 200, r.text
    call = only_call(rec, "ListGpus")
    assert (call.request.status, call.request.gpu_type) == ("available", "h100-80gb")
    gpu = r.json()["gpus"][0]
    assert gpu["id"] == fakes.GPU_ID and gpu["cost_per_hour"] == "2.50" and gpu["memory_total_mb"] == 81920
    assert gpu["dedicated"] is True and gpu["last_active"] is None and gpu["status"] == "available"


async def test_gpus_without_filters_send_empty_strings(api, rec):
    assert (await api.get("/v1/gpus")).status_code == 200
    call = only_call(rec, "ListGpus")
    assert (call.request.status, call.request.gpu_type) == ("", "")


async def test_gpu_types(api, rec):
    r = await api.get("/v1/gpu-types")
    assert r.status_code == 200
    assert r.json()["gpu_types"] == [
        {
            "name": "h100-80gb",
            "vendor": "nvidia",
            "model": "NVIDIA H100 80GB HBM3",
            "memory_mb": 81920,
            "reference_price_per_hour": "2.50",
        }
    ]
    only_call(rec, "ListGpuTypes")


async def test_submit_job_maps_every_field_and_answers_201_with_location(api, rec):
    body = {
        "command": "python train.py",
        "gpu_count": 2,
        "gpu_memory_mb": 40960,
        "gpu_type": "h100-80gb",
        "priority": 70,
        "webhook_url": "https://example.com/job",
        "name": "train",
    }
    r = await api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "retry-1"})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/jobs/{fakes.JOB_ID}"
    req = only_call(rec, "SubmitJob").request
    assert (
        req.command,
        req.gpu_count,
        req.gpu_memory_mb,
        req.gpu_type,
        req.priority,
        req.webhook_url,
        req.name,
        req.idempotency_key,
    ) == ("python train.py", 2, 40960, "h100-80gb", 70, "https://example.com/job", "train", "retry-1")
    job = r.json()
    assert job["id"] == fakes.JOB_ID and job["status"] == "queued" and job["gpu_count"] == 2
    assert job["exit_code"] is None and job["scheduled_at"] is None and job["node_id"] is None
    assert job["history"] == [{"status": "queued", "at": "2025-01-02T03:04:05Z", "reason": None}]


async def test_submit_job_defaults(api, rec):
    r = await api.post("/v1/jobs", json={"command": "echo hi"})
    assert r.status_code == 201, r.text
    req = only_call(rec, "SubmitJob").request
    assert (
        req.gpu_count,
        req.gpu_memory_mb,
        req.priority,
        req.gpu_type,
        req.webhook_url,
        req.idempotency_key,
    ) == (1, 0, 50, "", "", "")


async def test_get_job_with_history(api, rec):
    r = await api.get(f"/v1/jobs/{fakes.JOB_ID.upper()}")
    assert r.status_code == 200, r.text
    assert only_call(rec, "GetJob").request.id == fakes.JOB_ID  # canonical form is forwarded
    job = r.json()
    assert job["exit_code"] == 0 and job["output_tail"] == "hello\n" and job["gpu_ids"] == [fakes.GPU_ID]
    assert job["finished_at"] == "2025-01-02T03:05:05.500000Z"
    assert [h["status"] for h in job["history"]] == ["queued", "scheduled", "running", "succeeded"]


async def test_list_jobs_passes_paging(api, rec):
    r = await api.get("/v1/jobs", params={"status": "succeeded", "limit": 5, "cursor": "cur-1"})
    assert r.status_code == 200, r.text
    req = only_call(rec, "ListJobs").request
    assert (req.status, req.limit, req.cursor) == ("succeeded", 5, "cur-1")
    assert r.json()["next_cursor"] == "cur-2" and len(r.json()["jobs"]) == 1


async def test_cancel_job_with_and_without_a_body(api, rec):
    r = await api.post(f"/v1/jobs/{fakes.JOB_ID}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["cancel_requested"] is True
    r = await api.post(f"/v1/jobs/{fakes.JOB_ID}/cancel", json={"reason": "wrong data"})
    assert r.status_code == 200, r.text
    calls = rec.of("CancelJob")
    assert [(c.request.id, c.request.reason) for c in calls] == [
        (fakes.JOB_ID, ""),
        (fakes.JOB_ID, "wrong data"),
    ]


async def test_job_cost(api, rec):
    r = await api.get(f"/v1/jobs/{fakes.JOB_ID}/cost")
    assert r.status_code == 200, r.text
    assert only_call(rec, "GetJobCost").request.job_id == fakes.JOB_ID
    cost = r.json()
    assert cost["total_cost"] == "0.041667" and cost["held_seconds"] == "60.5" and cost["currency"] == "USD"
    assert cost["lines"][0] == {
        "gpu_id": fakes.GPU_ID,
        "gpu_type": "h100-80gb",
        "cost_per_hour": "2.50",
        "start_time": "2025-01-02T03:04:05Z",
        "end_time": "2025-01-02T03:05:05.500000Z",
        "seconds": "60.5",
        "cost": "0.041667",
        "attempt": 1,  # a billing that sends no attempt: everything was the first attempt, charged
        "credit": "0",
    }
    assert (cost["gross_cost"], cost["credit"], cost["attempts"]) == ("0.041667", "0", [])


async def test_costs_list(api, rec):
    r = await api.get("/v1/costs", params={"limit": 10, "cursor": "c"})
    assert r.status_code == 200, r.text
    req = only_call(rec, "ListJobCosts").request
    assert (req.limit, req.cursor) == (10, "c")
    assert r.json()["next_cursor"] is None and r.json()["total_cost"] == "0.041667"


async def test_utilization_default_and_explicit_hours(api, rec):
    assert (await api.get("/v1/utilization")).json()["hours"] == 24
    r = await api.get("/v1/utilization", params={"hours": 6})
    assert r.status_code == 200
    assert [c.request.hours for c in rec.of("GetUtilization")] == [24, 6]
    gpu = r.json()["gpus"][0]
    assert gpu["avg_utilization"] == 42.5 and gpu["samples"] == 12 and gpu["gpu_id"] == fakes.GPU_ID


async def test_webhook_create_list_delete(api, rec):
    r = await api.post(
        "/v1/webhooks",
        json={"url": "https://example.com/hook", "events": ["job.succeeded"], "description": "ci"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["secret"] == "whsec_abc" and r.json()["id"] == fakes.WEBHOOK_ID
    req = only_call(rec, "CreateWebhook").request
    assert (req.url, list(req.events), req.description) == (
        "https://example.com/hook",
        ["job.succeeded"],
        "ci",
    )

    listed = await api.get("/v1/webhooks")
    assert listed.status_code == 200
    assert "secret" not in listed.json()["webhooks"][0] and listed.json()["webhooks"][0]["last_used"] is None

    deleted = await api.delete(f"/v1/webhooks/{fakes.WEBHOOK_ID}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert only_call(rec, "DeleteWebhook").request.id == fakes.WEBHOOK_ID


async def test_job_webhook_secret(api, rec):
    r = await api.get("/v1/webhooks/job-secret")
    assert r.status_code == 200 and r.json() == {"secret": "whsec_job"}
    only_call(rec, "GetJobWebhookSecret")


async def test_webhook_deliveries(api, rec):
    r = await api.get("/v1/webhook-deliveries", params={"job_id": fakes.JOB_ID, "limit": 3})
    assert r.status_code == 200, r.text
    req = only_call(rec, "ListDeliveries").request
    assert (req.job_id, req.webhook_id, req.limit) == (fakes.JOB_ID, "", 3)
    d = r.json()["deliveries"][0]
    assert d["webhook_id"] is None and d["delivered_at"] is None and d["status"] == "failed"
    assert d["attempt_log"] == [
        {
            "attempt": 1,
            "at": "2025-01-02T03:04:05Z",
            "response_status": None,
            "error": "connection refused",
            "duration_ms": 12,
        }
    ]


async def test_webhook_deliveries_for_an_impossible_id_are_empty(api, rec):
    r = await api.get("/v1/webhook-deliveries", params={"webhook_id": "not-a-uuid"})
    assert r.status_code == 200 and r.json() == {"deliveries": []}
    assert rec.of("ListDeliveries") == []


async def test_api_keys_create_list_revoke(api, rec):
    r = await api.post(
        "/v1/api-keys", json={"name": "ci", "scopes": ["jobs:read"], "expires_in_seconds": 3600}
    )
    assert r.status_code == 201, r.text
    assert r.json()["secret"] == "gpf_new_secret" and r.json()["scopes"] == ["jobs:read"]
    req = only_call(rec, "CreateApiKey").request
    assert (req.name, list(req.scopes), req.expires_in_seconds) == ("ci", ["jobs:read"], 3600)

    listed = (await api.get("/v1/api-keys")).json()["api_keys"]
    assert listed[0]["id"] == fakes.KEY_ID and "secret" not in listed[0] and listed[0]["revoked_at"] is None

    revoked = await api.delete(f"/v1/api-keys/{fakes.KEY_ID}")
    assert revoked.status_code == 204
    assert only_call(rec, "RevokeApiKey").request.id == fakes.KEY_ID


async def test_api_key_without_expiry_sends_zero(api, rec):
    assert (await api.post("/v1/api-keys", json={"name": "forever"})).status_code == 201
    assert only_call(rec, "CreateApiKey").request.expires_in_seconds == 0
