"""The scheduler against real PostgreSQL, driven through its gRPC interfaces like tenants and agents."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import grpc
import pytest
from gpufleet.v1 import scheduler_pb2
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.scheduler.adapters.orm import SCHEMA_VERSION
from services.scheduler.bootstrap import bootstrap
from shared.contracts import jobs as contract
from shared.db import Database
from shared.migrate import latest_version

from .rounds import schedule_round

pytestmark = pytest.mark.integration


async def outbox_events(db, job_id: str) -> list[tuple[str, contract.JobEventV1]]:
    async with db.transaction(system=True) as s:
        rows = (
            await s.execute(
                text("SELECT event_type, payload, topic FROM outbox WHERE key = :k ORDER BY id"),
                {"k": job_id},
            )
        ).all()
    assert {r.topic for r in rows} <= {"gpufleet.jobs.v1"}
    return [(r.event_type, contract.JobEventV1.model_validate_json(bytes(r.payload))) for r in rows]


async def allocations_of(db, job_id: str) -> list[uuid.UUID]:
    async with db.transaction(system=True) as s:
        return list(
            (
                await s.execute(text("SELECT gpu_id FROM gpu_allocations WHERE job_id = :j"), {"j": job_id})
            ).scalars()
        )


async def rpc_error(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_a_job_is_submitted_placed_run_and_released(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    gpus = await harness.add_gpus(org, node, 4, price="2.9900")
    submitted = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(
            command="python train.py",
            gpu_count=2,
            gpu_memory_mb=40000,
            gpu_type="h100-80gb",
            priority=70,
            name="train",
        ),
        metadata=key,
    )
    assert submitted.status == "queued" and submitted.priority == 70
    assert harness.fleet.seen_authorization[-1] == key[0][1]  # the caller's key went to fleet
    assert harness.deps.wakeup.is_set()

    placed = [j for j in await schedule_round(harness.deps) if str(j.id) == submitted.id]
    assert len(placed) == 1
    job = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=submitted.id), metadata=key)
    assert job.status == "scheduled" and job.node_id == str(node) and len(job.gpu_ids) == 2
    assert set(job.gpu_ids) <= {str(g.gpu_id) for g in gpus} and job.scheduled_at

    events = await outbox_events(harness.db, submitted.id)
    assert [t for t, _ in events] == [contract.JOB_SUBMITTED, contract.JOB_SCHEDULED]
    scheduled = events[1][1]
    assert scheduled.previous_status == "queued" and scheduled.job.node_id == node
    assert [a.cost_per_hour for a in scheduled.job.allocation] == [Decimal("2.9900")] * 2
    assert sorted(a.gpu_index for a in scheduled.job.allocation) == [0, 1]
    assert len(await allocations_of(harness.db, submitted.id)) == 2

    assignments = await harness.agents.GetAssignments(
        scheduler_pb2.GetAssignmentsRequest(node_id=str(node)), metadata=harness.agent
    )
    [mine] = [a for a in assignments.assignments if a.job_id == submitted.id]
    assert (
        list(mine.gpu_indices) == [0, 1] and mine.command == "python train.py" and mine.status == "scheduled"
    )

    report = scheduler_pb2.ReportJobStartedRequest(node_id=str(node), job_id=submitted.id)
    await harness.agents.ReportJobStarted(report, metadata=harness.agent)
    await harness.agents.ReportJobStarted(report, metadata=harness.agent)  # retried: no-op
    harness.deps.wakeup.clear()
    done = scheduler_pb2.ReportJobFinishedRequest(
        node_id=str(node),
        job_id=submitted.id,
        has_exit_code=True,
        exit_code=0,
        output_tail="loss=0.1\n",
        finished_at="2000-01-01T00:00:00Z",
    )  # agent clock far behind
    await harness.agents.ReportJobFinished(done, metadata=harness.agent)
    await harness.agents.ReportJobFinished(done, metadata=harness.agent)  # retried: no-op
    assert harness.deps.wakeup.is_set()

    final = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=submitted.id), metadata=key)
    assert final.status == "succeeded" and final.has_exit_code and final.exit_code == 0
    assert final.output_tail == "loss=0.1\n"
    assert [h.status for h in final.history] == ["queued", "scheduled", "running", "succeeded"]
    assert await allocations_of(harness.db, submitted.id) == []
    events = await outbox_events(harness.db, submitted.id)
    assert [t for t, _ in events] == [
        contract.JOB_SUBMITTED,
        contract.JOB_SCHEDULED,
        contract.JOB_STARTED,
        contract.JOB_SUCCEEDED,
    ]
    last = events[-1][1].job
    assert last.finished_at is not None and last.finished_at >= last.scheduled_at  # clamped
    assert len(last.allocation) == 2  # the terminal event still says what was held, at which price
    left = await harness.agents.GetAssignments(
        scheduler_pb2.GetAssignmentsRequest(node_id=str(node)), metadata=harness.agent
    )
    assert submitted.id not in {a.job_id for a in left.assignments}


async def test_the_released_gpus_go_to_the_next_job(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    await harness.add_gpus(org, node, 1)
    first = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="a", gpu_count=1), metadata=key
    )
    second = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="b", gpu_count=1), metadata=key
    )
    await schedule_round(harness.deps)
    got = {
        j.id: j.status
        for j in (await harness.jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=key)).jobs
    }
    assert got == {first.id: "scheduled", second.id: "queued"}
    await harness.agents.ReportJobFinished(
        scheduler_pb2.ReportJobFinishedRequest(
            node_id=str(node), job_id=first.id, error_message="could not start: no such file"
        ),
        metadata=harness.agent,
    )
    failed = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=first.id), metadata=key)
    assert failed.status == "failed" and not failed.has_exit_code and "no such file" in failed.error_message
    await schedule_round(harness.deps)
    nxt = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=second.id), metadata=key)
    assert nxt.status == "scheduled" and nxt.gpu_ids == failed.gpu_ids


async def test_two_concurrent_rounds_never_double_book(harness, scheduler_db, migrate_schema):
    other_db = Database(await migrate_schema("scheduler"), "scheduler", pool_size=2)
    try:
        replica = bootstrap(db=other_db, catalog=harness.deps.catalog)
        org, key = harness.tenant()
        await harness.add_gpus(org, uuid.uuid4(), 3)
        await harness.add_gpus(org, uuid.uuid4(), 2)
        for i in range(12):
            await harness.jobs.SubmitJob(
                scheduler_pb2.SubmitJobRequest(command=f"job {i}", gpu_count=1 + i % 2), metadata=key
            )
        for _ in range(3):
            await asyncio.gather(schedule_round(harness.deps), schedule_round(replica, holder="replica"))
        async with scheduler_db.transaction(org_id=org) as s:
            rows = (
                await s.execute(
                    text("SELECT id, gpu_count, gpu_ids, node_id FROM jobs WHERE status = 'scheduled'")
                )
            ).all()
        held = [g for r in rows for g in r.gpu_ids]
        assert len(held) == len(set(held)) == 5  # every GPU used, none twice
        assert all(len(r.gpu_ids) == r.gpu_count for r in rows)
        async with scheduler_db.transaction(system=True) as s:
            alloc = dict(
                (
                    await s.execute(
                        text("SELECT gpu_id, job_id FROM gpu_allocations WHERE gpu_id = ANY(:g)"), {"g": held}
                    )
                ).all()
            )
        assert set(alloc) == set(held) and set(alloc.values()) == {r.id for r in rows}
    finally:
        await other_db.dispose()


async def test_the_database_refuses_a_second_booking_of_a_gpu(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    [gpu] = await harness.add_gpus(org, node, 1)
    job = await harness.jobs.SubmitJob(scheduler_pb2.SubmitJobRequest(command="x", gpu_count=1), metadata=key)
    other = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="y", gpu_count=1), metadata=key
    )
    await schedule_round(harness.deps)
    assert (
        await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=key)
    ).status == "scheduled"
    with pytest.raises(IntegrityError):
        async with harness.db.transaction(system=True) as s:
            await s.execute(
                text("INSERT INTO gpu_allocations (gpu_id, job_id, node_id) VALUES (:g, :j, :n)"),
                {"g": gpu.gpu_id, "j": other.id, "n": node},
            )


async def test_cancel_paths(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    await harness.add_gpus(org, node, 1)
    # held: it stays queued whatever the fleet has free (a 2-GPU job no node could hold is refused now)
    queued_first = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="q", gpu_count=1, hold=True), metadata=key
    )
    cancelled = await harness.jobs.CancelJob(
        scheduler_pb2.CancelJobRequest(id=queued_first.id, reason="not needed"), metadata=key
    )
    assert cancelled.status == "cancelled" and cancelled.finished_at and cancelled.cancel_requested
    assert [(h.status, h.reason) for h in cancelled.history] == [
        ("queued", "submitted held"),
        ("cancelled", "not needed"),
    ]
    events = await outbox_events(harness.db, queued_first.id)
    assert [t for t, _ in events] == [contract.JOB_SUBMITTED, contract.JOB_CANCELLED]
    assert (
        await rpc_error(
            harness.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=queued_first.id), metadata=key)
        )
        == grpc.StatusCode.FAILED_PRECONDITION
    )

    running = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="r", gpu_count=1), metadata=key
    )
    await schedule_round(harness.deps)
    await harness.agents.ReportJobStarted(
        scheduler_pb2.ReportJobStartedRequest(node_id=str(node), job_id=running.id), metadata=harness.agent
    )
    requested = await harness.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=running.id), metadata=key)
    assert requested.status == "running" and requested.cancel_requested
    [assignment] = [
        a
        for a in (
            await harness.agents.GetAssignments(
                scheduler_pb2.GetAssignmentsRequest(node_id=str(node)), metadata=harness.agent
            )
        ).assignments
        if a.job_id == running.id
    ]
    assert assignment.cancel_requested
    await harness.agents.ReportJobFinished(
        scheduler_pb2.ReportJobFinishedRequest(
            node_id=str(node), job_id=running.id, cancelled=True, has_exit_code=True, exit_code=143
        ),
        metadata=harness.agent,
    )
    final = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=running.id), metadata=key)
    assert final.status == "cancelled"
    assert [t for t, _ in await outbox_events(harness.db, running.id)][-1] == contract.JOB_CANCELLED
    assert await allocations_of(harness.db, running.id) == []


async def test_other_organizations_and_bad_callers(harness):
    org, key = harness.tenant()
    _, other = harness.tenant()
    job = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="mine", gpu_count=16), metadata=key
    )
    for call in (
        harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=other),
        harness.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=job.id), metadata=other),
        harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id="nope"), metadata=key),
        harness.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=""), metadata=key),
    ):
        assert await rpc_error(call) == grpc.StatusCode.NOT_FOUND
    assert job.id not in {
        j.id for j in (await harness.jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=other)).jobs
    }
    # row-level security, not only the handler, keeps the rows apart
    async with harness.db.transaction(org_id=uuid.uuid4()) as s:
        assert (await s.execute(text("SELECT count(*) FROM jobs WHERE id = :i"), {"i": job.id})).scalar() == 0
    viewer = harness.key(org, role="viewer")
    assert (
        await rpc_error(
            harness.jobs.SubmitJob(scheduler_pb2.SubmitJobRequest(command="x", gpu_count=1), metadata=viewer)
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=viewer)).id == job.id
    assert (
        await rpc_error(
            harness.jobs.GetJob(
                scheduler_pb2.GetJobRequest(id=job.id), metadata=(("authorization", "Bearer gpf_nope"),)
            )
        )
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await rpc_error(
            harness.agents.GetAssignments(
                scheduler_pb2.GetAssignmentsRequest(node_id=str(uuid.uuid4())), metadata=key
            )
        )
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await rpc_error(
            harness.agents.ReportJobStarted(
                scheduler_pb2.ReportJobStartedRequest(node_id=str(uuid.uuid4()), job_id=job.id),
                metadata=harness.agent,
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED  # a job not placed on the caller's node
    )


@pytest.mark.parametrize(
    "request_kw",
    [
        {"command": "x", "gpu_count": 1, "gpu_memory_mb": -5},
        {"command": "x", "gpu_count": 0},
        {"command": "", "gpu_count": 1},
        {"command": "x", "gpu_count": 1, "gpu_type": "quantum-9000"},
        {"command": "x", "gpu_count": 1, "priority": 101},
        {"command": "x", "gpu_count": 1, "webhook_url": "ftp://example.com"},
    ],
)
async def test_bad_submissions_are_invalid_and_write_nothing(harness, request_kw):
    _org, key = harness.tenant()
    assert (
        await rpc_error(harness.jobs.SubmitJob(scheduler_pb2.SubmitJobRequest(**request_kw), metadata=key))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert list((await harness.jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=key)).jobs) == []


async def test_idempotency_key_returns_the_same_job_even_when_racing(harness):
    _org, key = harness.tenant()
    request = scheduler_pb2.SubmitJobRequest(command="once", gpu_count=1, idempotency_key="deploy-42")
    results = await asyncio.gather(*(harness.jobs.SubmitJob(request, metadata=key) for _ in range(5)))
    assert len({r.id for r in results}) == 1
    again = await harness.jobs.SubmitJob(request, metadata=key)
    assert again.id == results[0].id
    listed = (await harness.jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=key)).jobs
    assert [j.id for j in listed] == [again.id]
    assert [t for t, _ in await outbox_events(harness.db, again.id)] == [contract.JOB_SUBMITTED]
    _, other = harness.tenant()
    assert (await harness.jobs.SubmitJob(request, metadata=other)).id != again.id


async def test_a_reused_idempotency_key_with_another_request_is_already_exists(harness):
    _org, key = harness.tenant()
    first = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="train", gpu_count=1, idempotency_key="k-9"), metadata=key
    )
    # The default priority spelled out is the same request after normalization: still a retry.
    same = scheduler_pb2.SubmitJobRequest(command="train", gpu_count=1, priority=50, idempotency_key="k-9")
    assert (await harness.jobs.SubmitJob(same, metadata=key)).id == first.id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.jobs.SubmitJob(
            scheduler_pb2.SubmitJobRequest(command="train", gpu_count=2, idempotency_key="k-9"), metadata=key
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "different request" in (err.value.details() or "")
    assert ("gpufleet-error-field", "idempotency_key") in tuple(err.value.trailing_metadata() or ())
    listed = (await harness.jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=key)).jobs
    assert [j.id for j in listed] == [first.id]
    async with harness.db.transaction(system=True) as s:
        stored = (
            await s.execute(text("SELECT idempotency_fingerprint FROM jobs WHERE id = :j"), {"j": first.id})
        ).scalar_one()
    assert len(stored) == 64 and int(stored, 16) >= 0


async def test_priority_zero_is_expressible_and_absent_is_the_default(harness):
    _org, key = harness.tenant()
    low = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="x", gpu_count=1, priority=0), metadata=key
    )
    default = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="x", gpu_count=1), metadata=key
    )
    assert (low.priority, default.priority) == (0, 50)


async def test_a_row_from_before_the_fingerprint_column_still_answers_retries(harness):
    _org, key = harness.tenant()
    request = scheduler_pb2.SubmitJobRequest(command="legacy", gpu_count=1, idempotency_key="old-1")
    first = await harness.jobs.SubmitJob(request, metadata=key)
    async with harness.db.transaction(system=True) as s:
        await s.execute(text("UPDATE jobs SET idempotency_fingerprint = NULL WHERE id = :j"), {"j": first.id})
    assert (await harness.jobs.SubmitJob(request, metadata=key)).id == first.id
    request.command = "changed"
    assert await rpc_error(harness.jobs.SubmitJob(request, metadata=key)) == grpc.StatusCode.ALREADY_EXISTS


def test_the_schema_version_is_the_latest_migration():
    assert SCHEMA_VERSION == latest_version("scheduler")


async def test_list_jobs_pages_and_filters(harness):
    _org, key = harness.tenant()
    ids = [
        (
            await harness.jobs.SubmitJob(
                scheduler_pb2.SubmitJobRequest(command=f"j{i}", gpu_count=16), metadata=key
            )
        ).id
        for i in range(5)
    ]
    await harness.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=ids[1]), metadata=key)
    seen, cursor = [], ""
    while True:
        page = await harness.jobs.ListJobs(
            scheduler_pb2.ListJobsRequest(limit=2, cursor=cursor), metadata=key
        )
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == ids[::-1]
    cancelled = await harness.jobs.ListJobs(scheduler_pb2.ListJobsRequest(status="cancelled"), metadata=key)
    assert [j.id for j in cancelled.jobs] == [ids[1]]
    for bad in ({"limit": 500}, {"status": "done"}, {"cursor": "garbage!"}):
        assert (
            await rpc_error(harness.jobs.ListJobs(scheduler_pb2.ListJobsRequest(**bad), metadata=key))
            == grpc.StatusCode.INVALID_ARGUMENT
        )
