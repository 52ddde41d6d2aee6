"""The scheduler engine's job shape over REST: the new submit fields, what a job shows (pending reason,
queue position, placements, attempts), and hold / release / priority with their problems."""

from __future__ import annotations

import pytest

from shared.contracts import limits
from shared.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.integration.gateway import fakes
from tests.integration.gateway.test_errors import assert_problem
from tests.integration.gateway.test_routes import only_call

pytestmark = pytest.mark.integration


async def test_submit_forwards_the_engine_fields(api, rec):
    body = {
        "command": "torchrun train.py",
        "gpu_count": 2,
        "nodes": 2,
        "cpu_cores": 16,
        "ram_mb": 65536,
        "time_limit_seconds": 3600,
        "hold": True,
        "no_requeue": True,
    }
    r = await api.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    req = only_call(rec, "SubmitJob").request
    assert (
        req.nodes,
        req.cpu_cores,
        req.ram_mb,
        req.time_limit_seconds,
        req.hold,
        req.no_requeue,
    ) == (2, 16, 65536, 3600, True, True)
    job = r.json()
    assert (job["nodes"], job["cpu_cores"], job["ram_mb"], job["time_limit_seconds"]) == (2, 16, 65536, 3600)
    assert (job["held"], job["no_requeue"], job["attempt"]) == (True, True, 1)
    assert job["pending_reason"] == {"code": "held", "message": "the job is held"}


async def test_submit_defaults_for_the_engine_fields(api, rec):
    r = await api.post("/v1/jobs", json={"command": "echo hi"})
    assert r.status_code == 201, r.text
    req = only_call(rec, "SubmitJob").request
    # 0 time limit = the platform's default; nodes is sent as 1 (the proto's optional is set).
    assert req.HasField("nodes") and (req.nodes, req.cpu_cores, req.ram_mb, req.time_limit_seconds) == (
        1,
        0,
        0,
        0,
    )
    assert (req.hold, req.no_requeue) == (False, False)
    job = r.json()
    assert job["time_limit_seconds"] is None and job["held"] is False and job["placements"] == []


async def test_a_queued_job_says_why_it_waits(api, rec):
    job = (await api.post("/v1/jobs", json={"command": "echo hi"})).json()
    assert job["status"] == "queued"
    assert job["pending_reason"] == {"code": "no_capacity", "message": "no node has 2 free GPUs"}
    assert job["queue_position"] == 3
    assert job["estimated_start"] == "2025-01-02T03:05:05.500000Z"


async def test_a_placed_job_shows_placements_and_no_pending_fields(api, rec):
    r = await api.get(f"/v1/jobs/{fakes.JOB_ID}")
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["placements"] == [{"node_id": fakes.NODE_ID, "rank": 0, "gpu_ids": [fakes.GPU_ID]}]
    assert job["attempt"] == 2
    assert (job["pending_reason"], job["queue_position"], job["estimated_start"]) == (None, None, None)
    listed = (await api.get("/v1/jobs")).json()["jobs"][0]
    assert listed["placements"] == job["placements"] and listed["attempt"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": "x", "nodes": 0}, "nodes"),
        ({"command": "x", "nodes": limits.MAX_NODES + 1}, "nodes"),
        ({"command": "x", "cpu_cores": -1}, "cpu_cores"),
        ({"command": "x", "cpu_cores": limits.MAX_CPU_CORES + 1}, "cpu_cores"),
        ({"command": "x", "ram_mb": limits.MAX_RAM_MB + 1}, "ram_mb"),
        ({"command": "x", "time_limit_seconds": 0}, "time_limit_seconds"),
        ({"command": "x", "time_limit_seconds": limits.MAX_TIME_LIMIT_SECONDS + 1}, "time_limit_seconds"),
        ({"command": "x", "hold": "yes"}, "hold"),
        ({"command": "x", "no_requeue": 1}, "no_requeue"),
    ],
)
async def test_bad_engine_fields_are_422_and_reach_nobody(api, rec, body, field):
    problem = assert_problem(await api.post("/v1/jobs", json=body), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert rec.of("SubmitJob") == []


async def test_admission_refusal_is_a_422_naming_the_reason(api, rec):
    rec.fail_next("SubmitJob", InvalidArgument("no node has 16 GPUs of any type", field="gpu_count"))
    problem = assert_problem(
        await api.post("/v1/jobs", json={"command": "x", "gpu_count": 16}), 422, "validation-error"
    )
    assert problem["detail"] == "no node has 16 GPUs of any type"


@pytest.mark.parametrize(("path", "method"), [("hold", "HoldJob"), ("release", "ReleaseJob")])
async def test_hold_and_release(api, rec, path, method):
    r = await api.post(f"/v1/jobs/{fakes.JOB_ID.upper()}/{path}")
    assert r.status_code == 200, r.text
    assert only_call(rec, method).request.id == fakes.JOB_ID  # canonical form is forwarded
    job = r.json()
    assert job["held"] is (path == "hold")
    assert job["pending_reason"]["code"] == ("held" if path == "hold" else "no_capacity")


async def test_patch_priority(api, rec):
    r = await api.patch(f"/v1/jobs/{fakes.JOB_ID}", json={"priority": 90})
    assert r.status_code == 200, r.text
    req = only_call(rec, "UpdateJobPriority").request
    assert (req.id, req.priority) == (fakes.JOB_ID, 90)
    assert r.json()["priority"] == 90


async def test_patch_priority_zero_is_sent(api, rec):
    assert (await api.patch(f"/v1/jobs/{fakes.JOB_ID}", json={"priority": 0})).status_code == 200
    assert only_call(rec, "UpdateJobPriority").request.priority == 0


@pytest.mark.parametrize(
    "body",
    [
        {"priority": limits.MAX_PRIORITY + 1},
        {"priority": limits.MIN_PRIORITY - 1},
        {"priority": "90"},
        {"priority": 9.5},
        {},
        {"priority": 50, "name": "other"},
    ],
)
async def test_patch_bad_priority_is_422_and_reaches_nobody(api, rec, body):
    problem = assert_problem(await api.patch(f"/v1/jobs/{fakes.JOB_ID}", json=body), 422, "validation-error")
    assert problem["errors"]
    assert rec.of("UpdateJobPriority") == []


@pytest.mark.parametrize(
    ("verb", "path", "method", "body"),
    [
        ("POST", "hold", "HoldJob", None),
        ("POST", "release", "ReleaseJob", None),
        ("PATCH", "", "UpdateJobPriority", {"priority": 70}),
    ],
)
async def test_queued_only_changes_map_errors(api, rec, verb, path, method, body):
    url = f"/v1/jobs/{fakes.JOB_ID}" + (f"/{path}" if path else "")
    rec.fail_next(method, FailedPrecondition("only a queued job can be held; this one is running"))
    problem = assert_problem(await api.request(verb, url, json=body), 409, "invalid-state")
    assert problem["detail"] == "only a queued job can be held; this one is running"

    rec.fail_next(method, NotFound("job not found"))
    assert assert_problem(await api.request(verb, url, json=body), 404, "not-found")["detail"] == (
        "job not found"
    )


@pytest.mark.parametrize(
    ("verb", "path"),
    [("POST", "/v1/jobs/nope/hold"), ("POST", "/v1/jobs/nope/release"), ("PATCH", "/v1/jobs/nope")],
)
async def test_malformed_ids_are_404_and_reach_nobody(api, rec, verb, path):
    body = {"priority": 10} if verb == "PATCH" else None
    assert_problem(await api.request(verb, path, json=body), 404, "not-found")
    assert rec.calls == []
