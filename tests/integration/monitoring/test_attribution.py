"""Attribution against the real PostgreSQL (issue 9, docs/attribution.md): whose a sample or an output
chunk is comes from the job topic's allocations, whatever the agent claims, and a sample batch racing an
allocation batch for the same GPU ends attributed in either order."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gpufleet.v1 import monitoring_pb2

from services.monitoring.entrypoints.output_consumers import to_store
from services.monitoring.service_layer import output_handlers
from services.monitoring.service_layer.handlers import Dependencies
from shared.contracts import jobs
from shared.contracts.output import JOB_OUTPUT_CHUNK, JobOutputChunkV1
from shared.events import Envelope

from .conftest import Monitoring, consume, job_event, record, record_jobs

pytestmark = pytest.mark.integration


def paused(
    factory: Callable[..., AbstractAsyncContextManager[Any]], reached: asyncio.Event, go: asyncio.Event
) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """``factory``'s units of work, each stopping after its work and before its commit until ``go``."""

    @asynccontextmanager
    async def uow(**scope: Any) -> AsyncIterator[Any]:
        async with factory(**scope) as unit:
            yield unit
            reached.set()
            await go.wait()

    return uow


async def until_blocked_or_done(monitoring: Monitoring, task: asyncio.Task[Any]) -> None:
    """Wait until ``task`` waits for an advisory lock (or finished without waiting: the bug)."""
    async with asyncio.timeout(10):
        while not task.done():
            (row,) = await monitoring.rows(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if row.n:
                return
            await asyncio.sleep(0.02)


async def owners(monitoring: Monitoring, gpu: uuid.UUID) -> list[tuple[Any, Any]]:
    rows = await monitoring.rows(
        "SELECT organization_id, job_id FROM gpu_metrics WHERE gpu_id = :g ORDER BY timestamp", g=gpu
    )
    return [(r.organization_id, r.job_id) for r in rows]


@pytest.mark.parametrize("first", ["samples", "allocation"])
async def test_a_sample_batch_racing_an_allocation_batch_ends_attributed(
    monitoring: Monitoring, first: str
) -> None:
    org, node, gpu, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    samples = [record([(gpu, None, 50.0, now - timedelta(seconds=i))], node) for i in (1, 2)]
    placed = job_event(jobs.JOB_STARTED, job, org, node, [gpu], now - timedelta(minutes=1))
    reached, go = asyncio.Event(), asyncio.Event()
    sample_deps = Dependencies(uow=monitoring.app.deps.uow)
    output = monitoring.output
    if first == "samples":
        sample_deps = Dependencies(uow=paused(monitoring.app.deps.uow, reached, go))
        held = asyncio.create_task(consume(sample_deps, samples))
    else:
        slow = dataclasses.replace(output.deps, uow=paused(output.deps.uow, reached, go))
        held = asyncio.create_task(record_jobs(dataclasses.replace(output, deps=slow), placed))
    try:
        async with asyncio.timeout(10):
            await reached.wait()  # the first one's work is done, its commit not yet
        if first == "samples":
            second = asyncio.create_task(record_jobs(output, placed))
        else:
            second = asyncio.create_task(consume(sample_deps, samples))
        await until_blocked_or_done(monitoring, second)
    finally:
        go.set()
    await asyncio.wait_for(asyncio.gather(held, second), 10)
    assert await owners(monitoring, gpu) == [(org, job), (org, job)]


async def test_an_agent_claiming_another_organization_charges_nothing_to_it(monitoring: Monitoring) -> None:
    org_a, org_b, node, gpu = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    job = await monitoring.allocate([gpu], org_a, node, now - timedelta(minutes=5))
    # The agent says org B's job held it, and sends a second sample from another node for the GPU.
    await monitoring.consume([record([(gpu, org_b, 90.0, now - timedelta(seconds=2))], node)])
    await monitoring.consume([record([(gpu, org_b, 10.0, now - timedelta(seconds=1))], uuid.uuid4())])
    assert await owners(monitoring, gpu) == [(org_a, job), (None, None)]
    b = await monitoring.stub.GetUtilization(
        monitoring_pb2.GetUtilizationRequest(), metadata=monitoring.identity.key(org_b)
    )
    assert [g.gpu_id for g in b.gpus if g.gpu_id == str(gpu)] == []
    a = await monitoring.stub.GetUtilization(
        monitoring_pb2.GetUtilizationRequest(), metadata=monitoring.identity.key(org_a)
    )
    ((mine),) = [g for g in a.gpus if g.gpu_id == str(gpu)]
    assert (mine.samples, mine.avg_utilization) == (1, 90.0)


def chunk(
    org: uuid.UUID, job: uuid.UUID, node: uuid.UUID, offset: int, data: bytes, eof: bool = False
) -> Envelope:
    return Envelope(
        type=JOB_OUTPUT_CHUNK,
        source="test",
        data=JobOutputChunkV1(
            job_id=job, attempt=1, organization_id=org, offset=offset, data=data, eof=eof, node_id=node
        ),
    )


async def deliver(monitoring: Monitoring, *envelopes: Envelope) -> None:
    cmd = to_store(list(envelopes))
    assert cmd is not None
    await output_handlers.handle(cmd, monitoring.output.deps)


async def read(monitoring: Monitoring, org: uuid.UUID, job: uuid.UUID) -> Any:
    cmd = output_handlers.commands.ReadOutput(org, job, None, 0, 0)
    return await output_handlers.handle(cmd, monitoring.output.deps)


async def test_a_chunk_from_a_node_the_job_is_not_placed_on_is_never_readable(monitoring: Monitoring) -> None:
    org, node, rogue, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await monitoring.jobs(job_event(jobs.JOB_SCHEDULED, job, org, node, [uuid.uuid4()], datetime.now(UTC)))
    # Claiming the job's own organization does not help a node the job does not run on.
    await deliver(monitoring, chunk(org, job, rogue, 0, b"forged\n"), chunk(org, job, node, 0, b"real\n"))
    await deliver(monitoring, chunk(org, job, rogue, 5, b"more forged\n", eof=True))
    page = await read(monitoring, org, job)
    assert (page.data, page.complete) == (b"real\n", False)
    stored = await monitoring.rows(
        "SELECT data FROM job_output_chunks WHERE job_id = :j UNION ALL "
        "SELECT data FROM job_output_unplaced WHERE job_id = :j",
        j=job,
    )
    assert [bytes(r.data) for r in stored] == [b"real\n"]


async def test_a_chunk_before_its_placement_is_parked_then_applied(monitoring: Monitoring) -> None:
    org, node, rogue, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    await monitoring.jobs(job_event(jobs.JOB_SUBMITTED, job, org, node, [], now, placed=False))
    await deliver(
        monitoring,
        chunk(org, job, node, 0, b"early\n"),
        chunk(org, job, rogue, 6, b"forged\n"),  # another node at the same offset: dropped at placement
        chunk(org, job, node, 6, b"", eof=True),
    )
    parked = await monitoring.rows("SELECT 1 FROM job_output_unplaced WHERE job_id = :j", j=job)
    assert len(parked) == 3 and (await read(monitoring, org, job)).data == b""
    # The attempt's end arrives without a placement (an event of before placements, say) and its grace
    # passes: it is not completed while output waits for its placement.
    await monitoring.jobs(job_event(jobs.JOB_FAILED, job, org, node, [], now, now, placed=False))
    await monitoring.rows(
        "UPDATE job_output SET ended_at = ended_at - interval '1 hour' WHERE job_id = :j RETURNING job_id",
        j=job,
    )
    await monitoring.output.complete_once()
    assert not (await read(monitoring, org, job)).complete

    await monitoring.jobs(job_event(jobs.JOB_STARTED, job, org, node, [uuid.uuid4()], now))
    page = await read(monitoring, org, job)
    assert (page.data, page.complete) == (b"early\n", True)  # complete by its own end of output
    assert await monitoring.rows("SELECT 1 FROM job_output_unplaced WHERE job_id = :j", j=job) == []
