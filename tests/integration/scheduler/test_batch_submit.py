"""JobService/SubmitJobs against real PostgreSQL over the scheduler's real gRPC server: a batch's jobs,
their submitted events and audit records become visible together or not at all, in request order; a bad
job refuses the batch naming it; keyed batches replay (also when racing) and conflict."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from gpufleet.v1 import scheduler_pb2
from sqlalchemy import text

from services.scheduler.service_layer.batch_submit import job_key
from shared.contracts import jobs as contract
from shared.contracts import topics
from shared.grpc import ERROR_FIELD_KEY

from .conftest import Harness

pytestmark = pytest.mark.integration

# One statement, one snapshot: the organization's jobs, their job events and its audit records.
_VISIBLE = text(
    "SELECT (SELECT count(*) FROM jobs WHERE organization_id = :org) AS jobs,"
    " (SELECT count(*) FROM outbox o JOIN jobs j ON o.key = j.id::text"
    "   WHERE j.organization_id = :org AND o.topic = :jobs_topic) AS events,"
    " (SELECT count(*) FROM outbox WHERE topic = :audit_topic AND key = :org_key) AS audits"
)


async def visible(harness: Harness, org: uuid.UUID) -> tuple[int, int, int]:
    async with harness.db.transaction(system=True) as s:
        row = (
            await s.execute(
                _VISIBLE,
                {"org": org, "org_key": str(org), "jobs_topic": topics.JOBS, "audit_topic": topics.AUDIT},
            )
        ).one()
    return row.jobs, row.events, row.audits


def batch(count: int, key: str = "", **kw) -> scheduler_pb2.SubmitJobsRequest:  # type: ignore[no-untyped-def]
    return scheduler_pb2.SubmitJobsRequest(
        jobs=[scheduler_pb2.SubmitJobRequest(command=f"echo {i}", gpu_count=1, **kw) for i in range(count)],
        idempotency_key=key,
    )


async def refusal(call) -> tuple[grpc.StatusCode, str | None, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    field = dict(err.value.trailing_metadata() or ()).get(ERROR_FIELD_KEY)
    return err.value.code(), field if isinstance(field, str) else None, err.value.details() or ""


async def test_a_batch_is_visible_all_at_once_in_request_order(harness: Harness) -> None:
    org, key = harness.tenant()
    count = 1000
    call = asyncio.ensure_future(harness.jobs.SubmitJobs(batch(count, hold=True), metadata=key))
    seen = set()
    while not call.done():  # read while it is being written: never a part of it
        seen.add(await visible(harness, org))
    reply = await call
    seen.add(await visible(harness, org))
    assert seen <= {(0, 0, 0), (count, count, count)}, seen
    assert (count, count, count) in seen
    assert [j.command for j in reply.jobs] == [f"echo {i}" for i in range(count)]
    assert all(j.status == "queued" and j.held and j.organization_id == str(org) for j in reply.jobs)
    assert [[h.status for h in j.history] for j in reply.jobs[:3]] == [["queued"]] * 3
    async with harness.db.transaction(system=True) as s:
        kinds = (
            await s.execute(
                text("SELECT DISTINCT event_type FROM outbox WHERE key = ANY(:ids)"),
                {"ids": [j.id for j in reply.jobs]},
            )
        ).scalars()
        assert list(kinds) == [contract.JOB_SUBMITTED]
    # The queue orders equals by (created_at, id): the batch waits in its own order.
    listed = await harness.jobs.ListJobs(scheduler_pb2.ListJobsRequest(limit=200), metadata=key)
    assert [j.id for j in listed.jobs] == [j.id for j in reply.jobs][::-1][:200]


async def test_a_bad_job_refuses_the_batch_naming_it_and_writes_nothing(harness: Harness) -> None:
    org, key = harness.tenant()
    request = batch(10)
    request.jobs[7].gpu_count = 0
    request.jobs[8].gpu_type = "quantum-9000"
    code, field, details = await refusal(harness.jobs.SubmitJobs(request, metadata=key))
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "jobs[7].gpu_count")
    assert details.startswith("jobs[7]: gpu_count must be between")
    request.jobs[7].gpu_count = 1
    code, field, details = await refusal(harness.jobs.SubmitJobs(request, metadata=key))
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "jobs[8].gpu_type")
    assert "quantum-9000" in details
    code, field, _ = await refusal(harness.jobs.SubmitJobs(batch(0), metadata=key))
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "jobs")
    assert await visible(harness, org) == (0, 0, 0)


async def test_a_job_no_node_could_ever_run_refuses_the_batch(harness: Harness) -> None:
    org, key = harness.tenant()
    await harness.add_gpus(org, uuid.uuid4(), 2)
    request = batch(5)
    request.jobs[3].gpu_count = 4
    code, field, details = await refusal(harness.jobs.SubmitJobs(request, metadata=key))
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "jobs[3].gpu_count")
    assert "could ever run" in details
    assert await visible(harness, org) == (0, 0, 0)


async def test_a_keyed_batch_replays_also_when_racing_and_another_batch_under_its_key_conflicts(
    harness: Harness,
) -> None:
    org, key = harness.tenant()
    request = batch(20, key="array-7", hold=True)
    # Racing copies of one keyed batch: one writes, the others wait on the key's index and answer its jobs.
    replies = await asyncio.gather(*(harness.jobs.SubmitJobs(request, metadata=key) for _ in range(4)))
    ids = [j.id for j in replies[0].jobs]
    assert all([j.id for j in r.jobs] == ids for r in replies)
    assert [j.id for j in (await harness.jobs.SubmitJobs(request, metadata=key)).jobs] == ids
    assert await visible(harness, org) == (20, 20, 20)
    async with harness.db.transaction(system=True) as s:
        keys = (
            await s.execute(text("SELECT idempotency_key FROM jobs WHERE id = ANY(:ids)"), {"ids": ids})
        ).scalars()
        assert sorted(keys) == sorted(job_key("array-7", i) for i in range(20))
    for other in (
        batch(20, key="array-7"),
        batch(21, key="array-7", hold=True),
        batch(19, key="array-7", hold=True),
    ):
        code, field, _ = await refusal(harness.jobs.SubmitJobs(other, metadata=key))
        assert (code, field) == (grpc.StatusCode.ALREADY_EXISTS, "idempotency_key")
    # No single submit holds a batch job's key: one looking like it is its own, one that would be it
    # (the separator) is refused.
    await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="echo 2", gpu_count=1, idempotency_key="array-8/2"),
        metadata=key,
    )
    forged = scheduler_pb2.SubmitJobRequest(
        command="echo 2", gpu_count=1, idempotency_key=job_key("array-8", 2)
    )
    code, field, _ = await refusal(harness.jobs.SubmitJob(forged, metadata=key))
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key")
    assert len((await harness.jobs.SubmitJobs(batch(5, key="array-8"), metadata=key)).jobs) == 5
    assert await visible(harness, org) == (26, 26, 26)
    # The key is the organization's: another one's same batch is its own.
    other_org, other_key = harness.tenant()
    assert {j.id for j in (await harness.jobs.SubmitJobs(request, metadata=other_key)).jobs}.isdisjoint(ids)
    assert await visible(harness, other_org) == (20, 20, 20)


async def test_the_racing_loser_of_a_key_writes_nothing_of_its_own(harness: Harness) -> None:
    """Two batches of different sizes under one key, at once: the larger one's insert meets the
    other's rows for all but its last key, and must take back the one row it did insert (the
    savepoint); it is then refused, and the table holds the winner's jobs only, whichever won."""
    org, key = harness.tenant()
    total = 0
    for round_ in range(5):
        small, large = batch(50, key=f"dup-{round_}", hold=True), batch(51, key=f"dup-{round_}", hold=True)
        replies = await asyncio.gather(
            harness.jobs.SubmitJobs(small, metadata=key),
            harness.jobs.SubmitJobs(large, metadata=key),
            return_exceptions=True,
        )
        won = [r for r in replies if isinstance(r, scheduler_pb2.SubmitJobsResponse)]
        lost = [r for r in replies if isinstance(r, grpc.aio.AioRpcError)]
        assert len(won) == 1 and len(lost) == 1, replies
        assert lost[0].code() == grpc.StatusCode.ALREADY_EXISTS
        total += len(won[0].jobs)
        assert await visible(harness, org) == (total, total, total)
