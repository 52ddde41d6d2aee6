"""The whole user story, driven from outside through REST, gRPC and the public topics only."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import grpc
import httpx
import pytest
from gpufleet.v1 import scheduler_pb2, scheduler_pb2_grpc
from standardwebhooks.webhooks import Webhook

from shared.events import header_map
from tests.e2e.helpers import _async, client, eventually, wait_status

pytestmark = pytest.mark.e2e


async def test_a_job_runs_is_billed_notified_and_published(stack, orgs, receiver, tap):
    async with client(stack, orgs["a"]) as api:
        gpus = await eventually(lambda: _gpus(api, 2))
        assert {g["status"] for g in gpus} <= {"available", "allocated"}

        hook = await api.post(
            "/webhooks", json={"url": f"{receiver.url}/org", "events": ["job.succeeded", "job.failed"]}
        )
        assert hook.status_code == 201, hook.text
        org_secret = hook.json()["secret"]
        job_secret = (await api.get("/webhooks/job-secret")).json()["secret"]

        created = await api.post(
            "/jobs",
            json={
                "command": "echo hello-from-job; echo gpus=$CUDA_VISIBLE_DEVICES; sleep 1",
                "gpu_count": 1,
                "gpu_memory_mb": 1024,
                "priority": 70,
                "webhook_url": f"{receiver.url}/job",
            },
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        assert created.headers["location"].endswith(f"/v1/jobs/{job_id}")

        job = await wait_status(api, job_id, {"succeeded", "failed"})
        assert job["status"] == "succeeded", job
        assert job["exit_code"] == 0
        assert "hello-from-job" in job["output_tail"]
        assert "gpus=" in job["output_tail"] and "gpus=\n" not in job["output_tail"]
        assert [h["status"] for h in job["history"]] == ["queued", "scheduled", "running", "succeeded"]
        assert len(job["gpu_ids"]) == 1

        # Cost = the GPU's hourly price x GPUs x seconds held (allocation to release).
        cost = await eventually(lambda: _ok_json(api, f"/jobs/{job_id}/cost"))
        price = Decimal(next(g["cost_per_hour"] for g in gpus if g["id"] == job["gpu_ids"][0]))
        held = (_dt(job["finished_at"]) - _dt(job["scheduled_at"])).total_seconds()
        expected = price * 1 * Decimal(str(held)) / 3600
        assert abs(Decimal(cost["total_cost"]) - expected) < Decimal("0.000001"), (cost, expected)
        assert cost["gpu_count"] == 1 and price > 0

        # Webhooks: the org endpoint and the per-job URL, both verified with the standardwebhooks library.
        org_events = await eventually(lambda: _async(receiver.bodies("/org")))
        for headers, body in org_events:
            Webhook(org_secret).verify(body, headers)
        assert any(
            e["type"] == "job.succeeded" and e["data"]["job_id"] == job_id for e in receiver.events("/org")
        )
        job_events = await eventually(
            lambda: _async([e for e in receiver.events("/job") if e["type"] == "job.succeeded"])
        )
        assert job_events[0]["data"]["job_id"] == job_id
        for headers, body in receiver.bodies("/job"):
            Webhook(job_secret).verify(body, headers)

        # A plain Kafka consumer saw every lifecycle event and the cost record, as CloudEvents.
        def seen() -> list[str]:
            return [
                header_map(r.headers).get("ce_type", "")
                for r in tap.records
                if r.key and r.key.decode() == job_id
            ]

        types = await eventually(lambda: _async(seen() if "gpufleet.cost.recorded" in seen() else None))
        for t in ("submitted", "scheduled", "started", "succeeded"):
            assert f"gpufleet.job.{t}" in types
        record = next(
            r
            for r in tap.records
            if header_map(r.headers).get("ce_type") == "gpufleet.job.succeeded" and r.key.decode() == job_id
        )
        h = header_map(record.headers)
        assert (
            h["ce_specversion"] == "1.0"
            and h["ce_source"]
            and h["ce_id"]
            and h["content-type"] == "application/json"
        )
        assert h["ce_organizationid"] == orgs["a_org"]
        cost_record = next(
            r
            for r in tap.records
            if header_map(r.headers).get("ce_type") == "gpufleet.cost.recorded" and r.key.decode() == job_id
        )
        published = json.loads(cost_record.value)
        assert Decimal(published["total_cost"]) == Decimal(cost["total_cost"]) and published["gpu_count"] == 1
        assert header_map(cost_record.headers)["ce_source"] == "gpufleet/billing"

        # Utilization for the last 24 hours includes the GPU that ran A's job.
        util = await eventually(lambda: _util(api, job["gpu_ids"][0]), timeout=30)
        assert util["samples"] >= 1

    # Organization B sees none of it, and cannot tell it exists. (B may have jobs, webhooks and costs of
    # its own from other tests of the suite: none of them is A's.)
    async with client(stack, orgs["a"]) as api:
        a_hooks = {w["id"] for w in (await api.get("/webhooks")).json()["webhooks"]}
    assert a_hooks
    async with client(stack, orgs["b"]) as other:
        b_jobs = (await other.get("/jobs", params={"limit": 200})).json()["jobs"]
        assert job_id not in {j["id"] for j in b_jobs}
        assert all(j["organization_id"] != orgs["a_org"] for j in b_jobs)
        for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/cost"):
            r = await other.get(path)
            assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
        assert (await other.post(f"/jobs/{job_id}/cancel")).status_code == 404
        assert not a_hooks & {w["id"] for w in (await other.get("/webhooks")).json()["webhooks"]}
        assert job_id not in {c["job_id"] for c in (await other.get("/costs")).json()["costs"]}
        assert all(g["gpu_id"] != job["gpu_ids"][0] for g in (await other.get("/utilization")).json()["gpus"])


async def test_failed_and_cancelled_jobs(stack, orgs):
    async with client(stack, orgs["a"]) as api:
        failed = (
            await api.post("/jobs", json={"command": "echo boom >&2; exit 7", "gpu_memory_mb": 0})
        ).json()
        long = (await api.post("/jobs", json={"command": "sleep 60", "gpu_count": 1})).json()
        job = await wait_status(api, failed["id"], {"succeeded", "failed"})
        assert job["status"] == "failed" and job["exit_code"] == 7 and "boom" in job["output_tail"]

        await wait_status(api, long["id"], {"running"})
        cancel = await api.post(f"/jobs/{long['id']}/cancel")
        assert cancel.status_code == 200, cancel.text
        job = await wait_status(api, long["id"], {"cancelled", "failed", "succeeded"}, timeout=30)
        assert job["status"] == "cancelled"
        again = await api.post(f"/jobs/{long['id']}/cancel")
        assert again.status_code == 409


async def test_grpc_client_submits_and_queries_with_the_same_key(stack, orgs):
    metadata = (("authorization", f"Bearer {orgs['a']}"),)
    async with grpc.aio.insecure_channel(stack.target("scheduler")) as channel:
        jobs = scheduler_pb2_grpc.JobServiceStub(channel)
        job = await jobs.SubmitJob(
            scheduler_pb2.SubmitJobRequest(
                command="echo via-grpc", gpu_count=1, gpu_memory_mb=512, priority=50
            ),
            metadata=metadata,
        )

        async def done() -> scheduler_pb2.Job | None:
            got = await jobs.GetJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=metadata)
            return got if got.status in ("succeeded", "failed") else None

        final = await eventually(done)
        assert final.status == "succeeded" and "via-grpc" in final.output_tail
        listed = await jobs.ListJobs(scheduler_pb2.ListJobsRequest(limit=200), metadata=metadata)
        assert job.id in {j.id for j in listed.jobs}

        other = (("authorization", f"Bearer {orgs['b']}"),)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await jobs.GetJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=other)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await jobs.GetJob(
                scheduler_pb2.GetJobRequest(id=job.id), metadata=(("authorization", "Bearer gpf_nope"),)
            )
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await jobs.SubmitJob(
                scheduler_pb2.SubmitJobRequest(command="x", gpu_count=1, gpu_memory_mb=-5), metadata=metadata
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"command": "echo", ', {"content-type": "application/json"}, 400),
        (b'{"command": "echo", "gpu_count": "two"}', {"content-type": "application/json"}, 422),
        (b'{"command": "echo", "gpu_memory_mb": -1}', {"content-type": "application/json"}, 422),
        (b'{"command": "echo", "gpu_type": "quantum-9000"}', {"content-type": "application/json"}, 422),
        (b'{"gpu_count": 1}', {"content-type": "application/json"}, 422),
    ],
)
async def test_bad_input_gets_a_problem_and_changes_nothing(stack, orgs, body, headers, status):
    async with client(stack, orgs["b"]) as api:
        before = (await api.get("/jobs")).json()["jobs"]
        r = await api.post("/jobs", content=body, headers=headers)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["status"] == status and problem["title"] and problem["type"]
        assert (await api.get("/jobs")).json()["jobs"] == before


@pytest.mark.parametrize("auth", [None, "Bearer gpf_not-a-real-key", "Basic dXNlcjpwYXNz"])
async def test_missing_or_wrong_key_is_401(stack, auth):
    headers = {"Authorization": auth} if auth else {}
    async with httpx.AsyncClient(base_url=stack.gateway_url + "/v1", timeout=10) as api:
        r = await api.post("/jobs", json={"command": "echo"}, headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")


# --------------------------------------------------------------------------- helpers


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _gpus(api: httpx.AsyncClient, count: int) -> list[dict] | None:
    r = await api.get("/gpus")
    gpus = r.json().get("gpus", []) if r.status_code == 200 else []
    return gpus if len(gpus) >= count else None


async def _ok_json(api: httpx.AsyncClient, path: str) -> dict | None:
    r = await api.get(path)
    return r.json() if r.status_code == 200 else None


async def _util(api: httpx.AsyncClient, gpu_id: str) -> dict | None:
    r = await api.get("/utilization", params={"hours": 24})
    if r.status_code != 200:
        return None
    return next((g for g in r.json()["gpus"] if g["gpu_id"] == gpu_id), None)


async def test_trace_context_flows_from_rest_through_grpc_into_kafka_headers(stack, orgs, tap):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with client(stack, orgs["a"]) as api:
        r = await api.post(
            "/jobs",
            json={"command": "true", "gpu_count": 1},
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]

    def submitted() -> list:
        return [
            header_map(rec.headers)
            for rec in tap.records
            if rec.key
            and rec.key.decode() == job_id
            and header_map(rec.headers).get("ce_type") == "gpufleet.job.submitted"
        ]

    (headers,) = await eventually(lambda: _async(submitted()))
    assert headers["traceparent"].split("-")[1] == trace_id
