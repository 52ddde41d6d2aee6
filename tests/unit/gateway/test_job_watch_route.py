"""GET /v1/jobs/{job_id}:watch over a fake scheduler stream, through the whole app: one `event: job`
frame per WatchJob message (the body GET /v1/jobs/{job_id} gives), the response ends with the stream, a
refusal of the first read is the usual problem, heartbeats while idle, the end of the stream when the
key stops authenticating or the client goes away, and GET /v1/jobs/{job_id} beside it unchanged."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from gpufleet.v1 import common_pb2, scheduler_pb2

from services.gateway.entrypoints import sse
from services.gateway.entrypoints.app import _build, openapi_spec
from services.gateway.entrypoints.auth import Caller
from services.gateway.entrypoints.routes import jobs
from shared.grpc import ERROR_FIELD_KEY
from tests.unit.gateway.test_events_route import FakeAuthenticator, FakeCall, parse

JOB = str(uuid.uuid4())
KEY = "gpf_test_key"
CALLER = Caller(principal=common_pb2.Principal(), metadata=(("authorization", f"Bearer {KEY}"),), timeout=5)


def job(status: str, **fields: Any) -> scheduler_pb2.Job:
    return scheduler_pb2.Job(
        id=JOB,
        organization_id=str(uuid.uuid4()),
        command="python train.py",
        gpu_count=1,
        status=status,
        created_at="2025-01-02T03:04:05Z",
        history=[scheduler_pb2.StatusChange(status="queued", at="2025-01-02T03:04:05Z")],
        **fields,
    )


def rpc_error(code: grpc.StatusCode, details: str, field: str | None = None) -> grpc.aio.AioRpcError:
    trailers = grpc.aio.Metadata(*([(ERROR_FIELD_KEY, field)] if field else []))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details=details)


class FakeJobs:
    def __init__(self, call: FakeCall, current: scheduler_pb2.Job | None = None) -> None:
        self.call = call
        self.current = current
        self.watches: list[tuple[scheduler_pb2.WatchJobRequest, dict[str, Any]]] = []
        self.gets: list[scheduler_pb2.GetJobRequest] = []

    def WatchJob(self, request: scheduler_pb2.WatchJobRequest, **kw: Any) -> FakeCall:
        self.watches.append((request, kw))
        return self.call

    async def GetJob(self, request: scheduler_pb2.GetJobRequest, **kw: Any) -> scheduler_pb2.Job:
        self.gets.append(request)
        assert self.current is not None
        return self.current


class FakeDownstream:
    call_timeout = 5.0

    def __init__(self, call: FakeCall, current: scheduler_pb2.Job | None = None) -> None:
        self.authenticator = FakeAuthenticator()
        self.jobs = FakeJobs(call, current)


def app_with(down: FakeDownstream) -> FastAPI:
    app = _build(None)
    app.state.downstream = down
    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        return await http.get(path, headers={"Authorization": f"Bearer {KEY}"})


async def wait_until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


async def test_each_message_is_a_job_frame_and_the_response_ends_with_the_stream() -> None:
    queued, done = (
        job("queued", queue_position=3),
        job("succeeded", has_exit_code=True, finished_at="2025-01-02T03:05:00Z"),
    )
    call = FakeCall(queued, done, grpc.aio.EOF)
    down = FakeDownstream(call)
    app = app_with(down)
    r = await asyncio.wait_for(get(app, f"/v1/jobs/{JOB.upper()}:watch"), 5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
    frames = parse(r.content)
    assert [f["event"] for f in frames] == ["job", "job"]  # type: ignore[index]
    assert "id" not in frames[0]
    # The data is byte for byte the body GET /v1/jobs/{job_id} returns for the same message.
    for frame, message in zip(frames, (queued, done), strict=True):
        down.jobs.current = message
        assert frame["data"] == (await get(app, f"/v1/jobs/{JOB}")).text  # type: ignore[index]
    assert json.loads(frames[1]["data"])["status"] == "succeeded"  # type: ignore[index]
    [(request, kw)] = down.jobs.watches
    assert request.id == JOB  # canonical form, as get_job sends
    assert set(kw) == {"metadata"}  # no timeout: the stream has no deadline
    assert ("authorization", f"Bearer {KEY}") in kw["metadata"]
    assert call.cancelled


@pytest.mark.parametrize(
    ("error", "status", "problem"),
    [
        (rpc_error(grpc.StatusCode.NOT_FOUND, "no such job"), 404, "not-found"),
        (rpc_error(grpc.StatusCode.PERMISSION_DENIED, "members may not"), 403, "permission-denied"),
        (
            rpc_error(grpc.StatusCode.PERMISSION_DENIED, "needs jobs:read", "scopes"),
            403,
            "insufficient-scope",
        ),
    ],
)
async def test_a_refused_first_read_is_the_usual_problem(
    error: grpc.aio.AioRpcError, status: int, problem: str
) -> None:
    call = FakeCall(error)
    r = await get(app_with(FakeDownstream(call)), f"/v1/jobs/{JOB}:watch")
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"].endswith(f"/{problem}") and body["status"] == status
    assert body["instance"] == f"/v1/jobs/{JOB}:watch"
    assert call.cancelled


async def test_a_first_message_outside_the_contract_is_a_502_problem() -> None:
    call = FakeCall(job("queued", started_at="yesterday"))
    r = await get(app_with(FakeDownstream(call)), f"/v1/jobs/{JOB}:watch")
    assert r.status_code == 502 and r.headers["content-type"].startswith("application/problem+json")
    assert call.cancelled


async def test_a_malformed_id_is_not_found_without_asking_the_scheduler() -> None:
    down = FakeDownstream(FakeCall())
    r = await get(app_with(down), "/v1/jobs/not-a-job:watch")
    assert r.status_code == 404 and r.json()["type"].endswith("/not-found")
    assert down.jobs.watches == []


async def test_a_stream_closed_before_its_first_message_is_unavailable() -> None:
    call = FakeCall(grpc.aio.EOF)
    r = await get(app_with(FakeDownstream(call)), f"/v1/jobs/{JOB}:watch")
    assert r.status_code == 503 and call.cancelled


async def test_a_heartbeat_follows_an_idle_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "WATCH_HEARTBEAT_SECONDS", 0.02)
    call = FakeCall(job("queued"))
    down = FakeDownstream(call)
    response = asyncio.create_task(get(app_with(down), f"/v1/jobs/{JOB}:watch"))
    await wait_until(lambda: not call.messages)  # the first message is taken; nothing more comes
    await asyncio.sleep(0.15)
    call.push(job("running"))
    call.push(grpc.aio.EOF)
    frames = parse((await asyncio.wait_for(response, 5)).content)
    assert frames[0]["event"] == "job"  # type: ignore[index]
    kinds = ["heartbeat" if f == "heartbeat" else json.loads(f["data"])["status"] for f in frames]  # type: ignore[index]
    assert kinds[0] == "queued" and kinds[-1] == "running"
    assert 2 <= kinds.count("heartbeat") == len(kinds) - 2  # only while idle, never between jobs


async def test_the_stream_ends_when_the_key_stops_authenticating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "REAUTH_SECONDS", 0.01)
    call = FakeCall(job("queued"))  # then nothing: it never ends on its own
    down = FakeDownstream(call)
    response = asyncio.create_task(get(app_with(down), f"/v1/jobs/{JOB}:watch"))
    await wait_until(lambda: down.authenticator.calls >= 3)  # the request's check, then re-checks
    assert not response.done()
    down.authenticator.revoked = True
    r = await asyncio.wait_for(response, 5)
    assert r.status_code == 200
    assert [json.loads(f["data"])["status"] for f in parse(r.content)] == ["queued"]  # type: ignore[index]
    assert call.cancelled


async def test_the_call_is_cancelled_when_the_client_goes_away() -> None:
    call = FakeCall(job("queued"))
    response = await jobs.watch_job(JOB, CALLER, FakeDownstream(call))  # type: ignore[arg-type]
    body = response.body_iterator
    assert parse(await anext(body))[0]["event"] == "job"  # type: ignore[index]
    assert not call.cancelled
    await body.aclose()  # type: ignore[attr-defined]
    assert call.cancelled


async def test_get_job_is_still_its_own_route() -> None:
    down = FakeDownstream(FakeCall(job("queued")), current=job("running"))
    r = await get(app_with(down), f"/v1/jobs/{JOB}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["id"] == JOB and r.json()["status"] == "running"
    assert [g.id for g in down.jobs.gets] == [JOB] and down.jobs.watches == []


def test_the_route_is_documented_as_an_event_stream_before_get_job() -> None:
    spec = openapi_spec()
    op = spec["paths"]["/v1/jobs/{job_id}:watch"]["get"]
    assert list(op["responses"]["200"]["content"]) == ["text/event-stream"]
    assert {"401", "403", "404"} <= set(op["responses"])
    assert [p["name"] for p in op["parameters"]] == ["job_id"]
    paths = [r.path for r in jobs.router.routes if "GET" in getattr(r, "methods", ())]  # type: ignore[attr-defined]
    assert paths.index("/v1/jobs/{job_id}:watch") < paths.index("/v1/jobs/{job_id}")
