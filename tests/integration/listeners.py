"""What the whole-process listener tests share (fleet's and the scheduler's agent listeners): run a
service's process until the block ends, once each of its listeners reports its service SERVING, and the
status code a call answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING


async def serving(target: str, service: str, task: asyncio.Task, timeout: float = 60) -> None:
    """Until ``target``'s health says ``service`` is SERVING (the process must not end meanwhile)."""
    async with grpc.aio.insecure_channel(target) as ch, asyncio.timeout(timeout):
        while True:
            try:
                reply = await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=service)
                )
                if reply.status == SERVING:
                    return
            except grpc.aio.AioRpcError:
                assert not task.done(), task
            await asyncio.sleep(0.2)


@asynccontextmanager
async def running(app: Any, listeners: Sequence[tuple[str, str]]) -> AsyncIterator[None]:
    """``app`` (a service's ``build(settings)``) served until the block ends; ``listeners``: the
    (target, service) pairs that must be SERVING first."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.serve(stop))
    try:
        for target, service in listeners:
            await serving(target, service, task)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def code_of(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status code ``call`` fails with (it must fail)."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()
