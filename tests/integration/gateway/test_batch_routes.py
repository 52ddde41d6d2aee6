"""POST /v1/jobs:batchCreate against a fake scheduler: one SubmitJobs call per batch, the jobs in request
order, a refused job named in the problem (and nothing sent for what the gateway itself refuses), a
batch's 429 with its RateLimit numbers, the Idempotency-Key for the whole batch, and its body limit."""

from __future__ import annotations

import json

import pytest

from shared.contracts import limits
from shared.errors import Conflict, FailedPrecondition, InvalidArgument, ResourceExhausted
from tests.integration.gateway.test_errors import assert_problem
from tests.integration.gateway.test_routes import only_call

pytestmark = pytest.mark.integration

URL = "/v1/jobs:batchCreate"


def jobs(count: int, **fields) -> dict:  # type: ignore[no-untyped-def]
    return {"jobs": [{"command": f"echo {i}", **fields} for i in range(count)]}


async def test_a_batch_is_one_call_and_answers_201_with_the_jobs_in_order(api, rec):
    body = jobs(20, gpu_count=2, priority=70, name="sweep", hold=True)
    body["jobs"][5] |= {"gpu_type": "h100-80gb", "nodes": 2, "time_limit_seconds": 60}
    r = await api.post(URL, json=body)
    assert r.status_code == 201, r.text
    sent = only_call(rec, "SubmitJobs").request  # one gRPC call for the batch, no SubmitJob
    assert rec.of("SubmitJob") == []
    assert [j.command for j in sent.jobs] == [f"echo {i}" for i in range(20)]
    assert (sent.jobs[0].gpu_count, sent.jobs[0].priority, sent.jobs[0].name, sent.jobs[0].hold) == (
        2,
        70,
        "sweep",
        True,
    )
    assert (sent.jobs[5].gpu_type, sent.jobs[5].nodes, sent.jobs[5].time_limit_seconds) == (
        "h100-80gb",
        2,
        60,
    )
    assert sent.jobs[1].nodes == 1 and sent.jobs[1].HasField("nodes")  # the defaults, as a single submit
    assert sent.idempotency_key == "" and all(j.idempotency_key == "" for j in sent.jobs)
    answer = r.json()["jobs"]
    assert [j["command"] for j in answer] == [f"echo {i}" for i in range(20)]
    assert len({j["id"] for j in answer}) == 20 and answer[0]["history"][0]["status"] == "queued"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jobs": []}, "jobs"),
        (jobs(limits.MAX_BATCH_SUBMIT + 1), "jobs"),
        ({}, "jobs"),
        ({"jobs": {"command": "x"}}, "jobs"),
        ({"jobs": [{"command": "x"}], "extra": 1}, "extra"),
    ],
    ids=["empty", "too-many", "missing", "not-a-list", "unknown-field"],
)
async def test_a_batch_of_the_wrong_shape_is_422_and_reaches_nobody(api, rec, body, field):
    problem = assert_problem(await api.post(URL, json=body), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert rec.calls == []


async def test_the_largest_batch_is_taken(api, rec):
    r = await api.post(URL, json=jobs(limits.MAX_BATCH_SUBMIT))
    assert r.status_code == 201, r.text
    assert len(only_call(rec, "SubmitJobs").request.jobs) == limits.MAX_BATCH_SUBMIT


async def test_bad_jobs_are_422_naming_each_by_index_and_nothing_is_sent(api, rec):
    body = jobs(5)
    body["jobs"][3]["gpu_count"] = 0
    body["jobs"][4]["webhook_url"] = "ftp://example.com/x"
    problem = assert_problem(await api.post(URL, json=body), 422, "validation-error")
    assert sorted(e["field"] for e in problem["errors"]) == ["jobs[3].gpu_count", "jobs[4].webhook_url"]
    assert rec.calls == []


async def test_a_job_the_scheduler_refuses_is_422_naming_it(api, rec):
    rec.fail_next(
        "SubmitJobs",
        InvalidArgument(
            "jobs[2]: no node of this fleet could ever run this job: …", field="jobs[2].gpu_count"
        ),
    )
    problem = assert_problem(await api.post(URL, json=jobs(4)), 422, "validation-error")
    assert problem["errors"] == [{"field": "jobs[2].gpu_count", "message": problem["detail"]}]
    assert problem["detail"].startswith("jobs[2]: ")


async def test_a_job_of_an_archived_project_is_the_project_archived_problem(api, rec):
    rec.fail_next(
        "SubmitJobs", FailedPrecondition("jobs[1]: the project is archived", field="jobs[1].project_id")
    )
    problem = assert_problem(await api.post(URL, json=jobs(2)), 422, "project-archived")
    assert problem["detail"] == "jobs[1]: the project is archived"


async def test_a_batch_over_a_limit_is_429_with_what_is_left(api, rec):
    rec.fail_next(
        "SubmitJobs",
        ResourceExhausted(
            "this organization may submit 1 jobs a second in bursts of at most 10; retry in 1.00 s",
            limit="submits",
            quota=10,
            remaining=4,
            retry_after_s=1.0,
            window_s=10,
        ),
    )
    r = await api.post(URL, json=jobs(5))
    assert_problem(r, 429, "too-many-requests")
    assert r.headers["retry-after"] == "1"
    assert r.headers["ratelimit-policy"] == '"submits";q=10;w=10'
    assert r.headers["ratelimit"].startswith('"submits";r=4;')  # room for a batch of 4


async def test_the_idempotency_key_is_the_whole_batchs(api, rec):
    headers = {"Idempotency-Key": "array-42"}
    first = await api.post(URL, json=jobs(3), headers=headers)
    again = await api.post(URL, json=jobs(3), headers=headers)
    assert first.status_code == again.status_code == 201  # a replay answers as the first time did
    assert [j["id"] for j in again.json()["jobs"]] == [j["id"] for j in first.json()["jobs"]]
    sent = [c.request for c in rec.of("SubmitJobs")]
    assert [s.idempotency_key for s in sent] == ["array-42", "array-42"]
    assert all(j.idempotency_key == "" for s in sent for j in s.jobs)  # the scheduler derives the jobs'
    rec.fail_next(
        "SubmitJobs",
        Conflict("idempotency_key was already used with a different batch", field="idempotency_key"),
    )
    problem = assert_problem(
        await api.post(URL, json=jobs(4), headers=headers), 409, "idempotency-key-reused"
    )
    assert "Idempotency-Key" in problem["detail"]


@pytest.mark.parametrize(
    ("length", "status"),
    [(limits.MAX_BATCH_IDEMPOTENCY_KEY, 201), (limits.MAX_BATCH_IDEMPOTENCY_KEY + 1, 422)],
)
async def test_a_batch_key_leaves_room_for_the_jobs_index(api, rec, length, status):
    r = await api.post(URL, json=jobs(1), headers={"Idempotency-Key": "k" * length})
    assert r.status_code == status, r.text
    assert len(rec.of("SubmitJobs")) == (1 if status == 201 else 0)


async def test_a_batch_may_be_larger_than_a_single_body_up_to_its_own_limit(api, rec):
    body = json.dumps(jobs(1000, command="x" * 100)).encode()
    assert limits.MAX_REQUEST_BODY_BYTES < len(body) < limits.MAX_BATCH_REQUEST_BODY_BYTES
    r = await api.post(URL, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    too_large = body + b" " * (limits.MAX_BATCH_REQUEST_BODY_BYTES - len(body) + 1)
    r = await api.post(URL, content=too_large, headers={"content-type": "application/json"})
    problem = assert_problem(r, 413, "request-too-large")
    assert str(limits.MAX_BATCH_REQUEST_BODY_BYTES) in problem["detail"]
    # The single submit keeps its own, smaller limit.
    single = json.dumps({"command": "x" * limits.MAX_REQUEST_BODY_BYTES}).encode()
    assert_problem(
        await api.post("/v1/jobs", content=single, headers={"content-type": "application/json"}),
        413,
        "request-too-large",
    )
    assert len(rec.of("SubmitJobs")) == 1
