"""Polling and client helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from shared.devstack import Stack


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 60, every: float = 0.3) -> Any:
    """Poll ``check`` until it returns something truthy (the value is returned) or fail at ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def client(stack: Stack, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.gateway_url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=15
    )


async def wait_status(api: httpx.AsyncClient, job_id: str, statuses: set[str], timeout: float = 60) -> dict:
    async def check() -> dict | None:
        job = (await api.get(f"/jobs/{job_id}")).json()
        return job if job["status"] in statuses else None

    return await eventually(check, timeout)


ACTIVE = ("queued", "scheduled", "running")


async def active_jobs(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The caller's jobs waiting or on a node."""
    out: list[dict[str, Any]] = []
    for status in ACTIVE:
        out += (await api.get("/jobs", params={"status": status, "limit": 200})).json()["jobs"]
    return out


async def quiet(stack: Stack, orgs: dict[str, str], which: tuple[str, ...] = ("a", "b")) -> None:
    """Until none of these organizations has a job waiting or on a node (earlier tests' jobs included)."""
    for org in which:
        async with client(stack, orgs[org]) as api:

            async def none_active(api: httpx.AsyncClient = api) -> bool:
                return not await active_jobs(api)

            await eventually(none_active, timeout=120)


async def submit(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """A one-GPU job unless ``body`` says otherwise; asserts the 201."""
    r = await api.post("/jobs", json={"gpu_count": 1, **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def get_job(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    r = await api.get(f"/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def wait_pending(api: httpx.AsyncClient, job_id: str, code: str, timeout: float = 30) -> dict[str, Any]:
    """The job once the engine has said why it waits with ``code``."""

    async def check() -> dict[str, Any] | None:
        job = await get_job(api, job_id)
        reason = job["pending_reason"]
        return job if job["status"] == "queued" and reason and reason["code"] == code else None

    return dict(await eventually(check, timeout=timeout))


async def _async(value: Any) -> Any:
    return value
