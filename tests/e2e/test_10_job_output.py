"""A job's whole output through REST (issue 10): stored off the scheduler's path by monitoring from the
agent's chunks, read byte-exact after the end, followed while the job runs, cut to head + marker + tail
past the limit, and invisible to another organization."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.helpers import client, wait_status

pytestmark = pytest.mark.e2e

LIMIT = 8 * 1024 * 1024  # monitoring's default per attempt: the first and the last half of it are kept


def seq(first: int, last: int) -> bytes:
    return b"".join(b"%d\n" % i for i in range(first, last + 1))


async def submit(api: httpx.AsyncClient, command: str) -> str:
    r = await api.post("/jobs", json={"command": command, "gpu_count": 1})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def follow(api: httpx.AsyncClient, job_id: str) -> tuple[httpx.Headers, bytes]:
    async with api.stream(
        "GET", f"/jobs/{job_id}/logs", params={"follow": "true"}, timeout=httpx.Timeout(180)
    ) as r:
        assert r.status_code == 200, await r.aread()
        return r.headers, b"".join([part async for part in r.aiter_bytes()])


async def test_a_jobs_whole_output_read_and_followed(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    # About 1.4 MB in five bursts a second apart: several chunks and several shipping rounds.
    bursts = [(i * 40_000, i * 40_000 + 39_999) for i in range(1, 6)]
    command = "; ".join(f"seq {a} {b}; sleep 1" for a, b in bursts) + "; echo done >&2"
    expected = b"".join(seq(a, b) for a, b in bursts) + b"done\n"
    async with client(stack, orgs["a"]) as api:
        job_id = await submit(api, command)
        follower = asyncio.create_task(follow(api, job_id))  # started while the job is queued or running
        job = await wait_status(api, job_id, {"succeeded", "failed"}, timeout=120)
        assert job["status"] == "succeeded", job
        headers, followed = await follower
        assert followed == expected
        assert headers["content-type"].startswith("text/plain")

        r = await api.get(f"/jobs/{job_id}/logs")
        # The follow ended, so the output is complete: a plain read has all of it too.
        assert r.status_code == 200 and r.content == expected
        assert r.headers["GpuFleet-Output-Complete"] == "true"
        assert r.headers["GpuFleet-Output-Truncated"] == "false"
        assert r.headers["GpuFleet-Output-Size"] == str(len(expected))
        r = await api.get(f"/jobs/{job_id}/logs", params={"offset": 1000})
        assert r.content == expected[1000:]

    async with client(stack, orgs["b"]) as other:
        for params in ({}, {"follow": "true"}):
            r = await other.get(f"/jobs/{job_id}/logs", params=params)
            assert r.status_code == 404, r.text
            assert r.headers["content-type"] == "application/problem+json"


async def test_output_past_the_limit_keeps_head_marker_and_tail(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    printed = seq(1, 1_300_000)  # about 9.2 MB
    assert len(printed) > LIMIT
    async with client(stack, orgs["a"]) as api:
        job_id = await submit(api, "seq 1 1300000")
        job = await wait_status(api, job_id, {"succeeded", "failed"}, timeout=120)
        assert job["status"] == "succeeded", job
        _, _ = await follow(api, job_id)  # returns once the output is complete
        r = await api.get(f"/jobs/{job_id}/logs", timeout=60)
    assert r.status_code == 200
    assert r.headers["GpuFleet-Output-Complete"] == "true"
    assert r.headers["GpuFleet-Output-Truncated"] == "true"
    half = LIMIT // 2
    body = r.content
    assert body.startswith(printed[:half]) and body.endswith(printed[-half:])
    marker = body[half : len(body) - half]
    assert (
        marker
        == f"\n[gpufleet] {len(printed) - LIMIT} bytes of output cut here (the first {half} and the last {half} bytes are kept)\n".encode()
    )
    assert r.headers["GpuFleet-Output-Size"] == str(len(body))


async def test_a_job_not_started_has_empty_incomplete_output(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    async with client(stack, orgs["a"]) as api:
        r = await api.post("/jobs", json={"command": "echo never", "gpu_count": 1, "hold": True})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        r = await api.get(f"/jobs/{job_id}/logs")
        assert r.status_code == 200 and r.content == b""
        assert r.headers["GpuFleet-Output-Complete"] == "false"
        await api.post(f"/jobs/{job_id}/cancel")
    async with client(stack, orgs["b"]) as other:
        assert (await other.get(f"/jobs/{job_id}/logs")).status_code == 404
