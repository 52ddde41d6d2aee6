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


async def _async(value: Any) -> Any:
    return value
