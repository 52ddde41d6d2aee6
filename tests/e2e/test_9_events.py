"""GET /v1/events end to end: a job's events arrive in order with ids; Last-Event-ID resumes after an id,
also across a gateway restart; another organization sees none of them; the CloudEvent id is the
webhook-id of every delivery attempt (a retry included); cost events reach a webhook subscribed to them;
a revoked key's stream ends; bad cursors are problems."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import _async, client, eventually, wait_status

pytestmark = pytest.mark.e2e

JOB_TYPES = (
    "gpufleet.job.submitted",
    "gpufleet.job.scheduled",
    "gpufleet.job.started",
    "gpufleet.job.succeeded",
)
READ_TIMEOUT = 90.0


class FlakyReceiver:
    """Answers 500 to the first delivery of each message (by webhook-id), 204 to every later one."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        received, failed = self.requests, set()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                received.append((self.path, headers, body))
                first = headers.get("webhook-id") not in failed
                failed.add(headers.get("webhook-id"))
                self.send_response(500 if first else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(h, json.loads(b)) for p, h, b in list(self.requests) if p == path]


@pytest.fixture
def flaky() -> Any:
    r = FlakyReceiver()
    yield r
    r.server.shutdown()


class Stream:
    """An open SSE response, read frame by frame (heartbeat comments counted, not returned)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.heartbeats = 0

    async def next(self) -> dict[str, Any] | None:
        """The next event frame ({id, event, data: the CloudEvent}), or None when the stream ended."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(READ_TIMEOUT):
            async for line in self.lines:
                if line == "":
                    if fields:
                        return {**fields, "data": json.loads(fields["data"])}
                    continue
                if line.startswith(":"):
                    self.heartbeats += line == ": heartbeat"
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
        return None

    async def until(self, predicate: Any) -> list[dict[str, Any]]:
        """Frames up to and including the first that ``predicate`` accepts."""
        seen = []
        while True:
            frame = await self.next()
            assert frame is not None, f"the stream ended; saw {[(f['id'], f['event']) for f in seen]}"
            seen.append(frame)
            if predicate(frame):
                return seen


@asynccontextmanager
async def open_stream(
    stack: Any, key: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url + "/v1", timeout=httpx.Timeout(15, read=None)
    ) as http:
        async with http.stream(
            "GET", "/events", params=params, headers={"Authorization": f"Bearer {key}", **(headers or {})}
        ) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            yield Stream(response)


def of_job(job_id: str, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["data"].get("subject") == job_id and f["event"] in JOB_TYPES]


def cost_of(job_id: str) -> Any:
    return lambda f: f["event"] == "gpufleet.cost.recorded" and f["data"]["data"]["job_id"] == job_id


def succeeded(job_id: str) -> Any:
    return lambda f: f["event"] == "gpufleet.job.succeeded" and f["data"]["subject"] == job_id


async def _cost_evidence(api: httpx.AsyncClient, job_id: str, frames: list[dict[str, Any]]) -> str:
    """For a failure message: whether billing has the job's cost (then the cost event was lost or late
    between billing's outbox, the cost topic and notification's event log) or not (billing never took
    the job's end)."""
    costs = (await api.get("/costs", params={"limit": 200})).json()
    mine = [c for c in costs.get("costs", []) if c.get("job_id") == job_id]
    job = (await api.get(f"/jobs/{job_id}")).json()
    return (
        f"no cost.recorded for job {job_id} on the stream within {READ_TIMEOUT:.0f}s; "
        f"job status {job.get('status')}, billing's cost lines of it: {mine}; "
        f"stream frames seen: {[(f['id'], f['event']) for f in frames][-20:]}"
    )


async def test_a_jobs_events_stream_in_order_resume_and_stay_in_their_organization(stack, orgs, flaky):
    async with client(stack, orgs["a"]) as api:
        for events, path in ((["job.succeeded"], "/jobs"), (["cost.recorded"], "/costs")):
            hook = await api.post("/webhooks", json={"url": flaky.url + path, "events": events})
            assert hook.status_code == 201, hook.text

        async with open_stream(stack, orgs["a"]) as stream:  # new events only: opened before the submit
            job = (await api.post("/jobs", json={"command": "echo streamed", "gpu_count": 1})).json()
            frames = await stream.until(succeeded(job["id"]))
            if not [f for f in frames if cost_of(job["id"])(f)]:  # its cost may come either side of it
                try:
                    frames += await stream.until(cost_of(job["id"]))
                except TimeoutError:
                    raise AssertionError(await _cost_evidence(api, job["id"], frames)) from None
        cost = next(f for f in frames if cost_of(job["id"])(f))
        assert stream.heartbeats >= 1
        mine = of_job(job["id"], frames)
        assert [f["event"] for f in mine] == list(JOB_TYPES)
        cursors = [int(f["id"]) for f in frames]
        assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
        for f in frames:
            event = f["data"]
            assert event["specversion"] == "1.0" and event["type"] == f["event"] and event["id"]
            assert event["organizationid"] == orgs["a_org"] and event["datacontenttype"] == "application/json"
        assert mine[-1]["data"]["data"]["job"]["status"] == "succeeded"

        # Resume after "scheduled" with Last-Event-ID: what follows it, in order, nothing before it.
        scheduled = mine[1]
        async with open_stream(stack, orgs["a"], headers={"Last-Event-ID": scheduled["id"]}) as again:
            resumed = await again.until(succeeded(job["id"]))
        assert [f["event"] for f in of_job(job["id"], resumed)] == list(JOB_TYPES[2:])
        assert all(int(f["id"]) > int(scheduled["id"]) for f in resumed)

        # Across a gateway restart: the cursor is notification's, so any gateway resumes it.
        stack.restart("gateway")
        await stack.wait_ready(names=("gateway",))
        submitted = mine[0]
        async with open_stream(stack, orgs["a"], params={"last_event_id": submitted["id"]}) as after_restart:
            resumed = await after_restart.until(succeeded(job["id"]))
        assert [f["event"] for f in of_job(job["id"], resumed)] == list(JOB_TYPES[1:])
        assert [f["data"]["id"] for f in of_job(job["id"], resumed)] == [f["data"]["id"] for f in mine[1:]]

        # The same CloudEvent id is the webhook-id of both attempts (the first got a 500) and the body's id.
        done = mine[-1]["data"]["id"]

        async def two_attempts() -> list[tuple[dict[str, str], dict[str, Any]]] | None:
            got = [(h, b) for h, b in flaky.at("/jobs") if h["webhook-id"] == done]
            return got if len(got) >= 2 else None

        attempts = await eventually(two_attempts)
        assert [(h["webhook-id"], b["id"]) for h, b in attempts[:2]] == [(done, done)] * 2
        assert all(b["type"] == "job.succeeded" for _, b in attempts)
        costs = await eventually(
            lambda: _async([(h, b) for h, b in flaky.at("/costs") if b["id"] == cost["data"]["id"]])
        )
        assert costs[0][0]["webhook-id"] == cost["data"]["id"] and costs[0][1]["type"] == "cost.recorded"
        assert costs[0][1]["data"]["job_id"] == job["id"]

    # Another organization's stream, replayed from its start, holds its own job and nothing of a's.
    async with client(stack, orgs["b"]) as other:
        async with open_stream(stack, orgs["b"], params={"from": "start"}) as theirs:
            own = (await other.post("/jobs", json={"command": "echo other", "gpu_count": 1})).json()
            seen = await theirs.until(succeeded(own["id"]))
        await wait_status(other, own["id"], {"succeeded"})
    assert {f["data"]["organizationid"] for f in seen} == {orgs["b_org"]}
    assert not [f for f in seen if f["data"].get("subject") == job["id"] or f["data"]["id"] == done]


async def test_filters_bad_cursors_and_a_revoked_key(stack, orgs):
    async with client(stack, orgs["a"]) as api:
        for bad in (
            {"last_event_id": "not-a-cursor"},
            {"last_event_id": "999999999"},
            {"types": "gpufleet.gpu.x"},
        ):
            r = await api.get("/events", params=bad)
            assert r.status_code == 422, (bad, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        assert (await api.get("/events", params={"from": "later"})).status_code == 422

        costs_only = (await api.post("/api-keys", json={"name": "costs", "scopes": ["costs:read"]})).json()
        r = await api.get(
            "/events",
            params={"types": "gpufleet.job.started"},
            headers={"Authorization": f"Bearer {costs_only['secret']}"},
        )
        assert r.status_code == 403 and r.json()["type"].endswith("insufficient-scope"), r.text

        # A job's events only, and only the types asked for.
        async with open_stream(
            stack, orgs["a"], params={"from": "start", "types": "gpufleet.job.succeeded"}
        ) as s:
            job = (await api.post("/jobs", json={"command": "true", "gpu_count": 1})).json()
            frames = await s.until(succeeded(job["id"]))
        assert {f["event"] for f in frames} == {"gpufleet.job.succeeded"}
        async with open_stream(stack, orgs["a"], params={"from": "start", "job_id": job["id"]}) as s:
            frames = await s.until(succeeded(job["id"]))
        assert {f["data"]["subject"] for f in frames} == {job["id"]}
        assert [f["event"] for f in frames if f["event"] in JOB_TYPES] == list(JOB_TYPES)

        # Revoking the key ends its open stream.
        child = (await api.post("/api-keys", json={"name": "watcher", "scopes": ["jobs:read"]})).json()
        async with open_stream(stack, child["secret"]) as watched:
            assert (await api.delete(f"/api-keys/{child['id']}")).status_code == 204
            assert await watched.next() is None
