"""JobService/WatchJob over gRPC: the job at once, again at each change (a commit in this process is
pushed; another replica's is caught by the re-read), the stream ends after the final status, and it
answers as GetJob does for what the caller may not see."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import grpc
import pytest
from gpufleet.v1 import common_pb2, scheduler_pb2
from sqlalchemy import text

from services.scheduler.adapters.repository import SqlUnitOfWorkFactory
from services.scheduler.service_layer.scheduling import Scheduler
from shared import api_keys

from .rounds import schedule_round
from .test_agent_api import FAST, finished, started, submit

pytestmark = pytest.mark.integration


def watch_job(harness, job_id: str, key):
    return harness.jobs.WatchJob(scheduler_pb2.WatchJobRequest(id=job_id), metadata=key)


async def read(stream, timeout: float = 5.0):
    async with asyncio.timeout(timeout):
        return await stream.read()


async def test_a_watch_sends_the_job_now_and_each_change_pushed_until_it_ends(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    await harness.add_gpus(org, node, 1)
    job_id = await submit(harness, key)
    stream = watch_job(harness, job_id, key)
    first = await read(stream)
    assert first.id == job_id and first.status == "queued"

    placed = await schedule_round(harness.deps)
    assert [str(j.id) for j in placed] == [job_id]
    began = time.perf_counter()  # from the placement's commit
    scheduled = await read(stream)
    assert scheduled.status == "scheduled" and scheduled.node_id == str(node)
    assert time.perf_counter() - began < FAST, "the placement was not pushed"

    report = scheduler_pb2.ReportJobsRequest(node_id=str(node), reports=[started(node, job_id)])
    await harness.agents.ReportJobs(report, metadata=harness.agent)
    assert (await read(stream)).status == "running"
    report = scheduler_pb2.ReportJobsRequest(node_id=str(node), reports=[finished(node, job_id, exit_code=3)])
    await harness.agents.ReportJobs(report, metadata=harness.agent)
    last = await read(stream)
    assert last.status == "failed" and last.has_exit_code and last.exit_code == 3
    assert [h.status for h in last.history][-1] == "failed"
    assert await read(stream) is grpc.aio.EOF  # the final status is the last message
    assert await stream.code() == grpc.StatusCode.OK
    async with asyncio.timeout(5):
        while harness.deps.jobs.watching(uuid.UUID(job_id)):
            await asyncio.sleep(0.01)  # the ended stream leaves no watcher behind


async def test_a_change_committed_elsewhere_reaches_the_stream_by_its_reread(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    await harness.add_gpus(org, node, 1)
    job_id = await submit(harness, key)
    stream = watch_job(harness, job_id, key)
    try:
        assert (await read(stream)).status == "queued"
        # Another replica's leader: its unit of work tells this process's feed nothing.
        elsewhere = Scheduler(
            replace(harness.deps, uow=SqlUnitOfWorkFactory(harness.db)), "integration-leader"
        )
        report = await elsewhere.step()
        assert report is not None and [str(j.id) for j in report.placed] == [job_id]
        began = time.perf_counter()
        scheduled = await read(stream)
        assert scheduled.status == "scheduled"
        assert 0.2 < time.perf_counter() - began < 3.0  # the re-read, not a push
    finally:
        stream.cancel()


async def test_a_watch_answers_as_get_job_for_what_the_caller_may_not_see(harness):
    org, key = harness.tenant()
    await harness.add_gpus(org, uuid.uuid4(), 1)
    job_id = await submit(harness, key)
    _, other_key = harness.tenant()
    for asked, metadata in ((job_id, other_key), (str(uuid.uuid4()), key), ("not-a-uuid", key)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await read(watch_job(harness, asked, metadata))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND, asked
    # A key whose scopes leave out jobs:read is refused; one with only jobs:read is served.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await read(watch_job(harness, job_id, scoped_key(harness, org, "costs:read")))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "jobs:read" in (refused.value.details() or "")
    stream = watch_job(harness, job_id, scoped_key(harness, org, "jobs:read"))
    assert (await read(stream)).id == job_id
    stream.cancel()


def scoped_key(harness, org: uuid.UUID, *scopes: str) -> tuple[tuple[str, str], ...]:
    secret = api_keys.new_key()
    harness.identity.keys[secret] = common_pb2.Principal(
        organization_id=str(org),
        user_id=str(uuid.uuid4()),
        role="member",
        api_key_id=str(uuid.uuid4()),
        scopes=list(scopes),
    )
    return (("authorization", f"Bearer {secret}"),)


async def test_an_open_watch_ends_once_its_key_is_revoked(harness):
    org, _ = harness.tenant()
    key = harness.key(org)
    await harness.add_gpus(org, uuid.uuid4(), 1)
    job_id = await submit(harness, key)
    stream = watch_job(harness, job_id, key)
    assert (await read(stream)).status == "queued"
    harness.identity.keys.clear()  # revoked
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while True:
            assert await read(stream) is not grpc.aio.EOF
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_priority_change_of_a_queued_job_is_sent(harness):
    _, key = harness.tenant()
    job_id = await submit(harness, key)  # no GPUs: it stays queued
    stream = watch_job(harness, job_id, key)
    try:
        assert (await read(stream)).priority == 50  # the default
        await harness.jobs.UpdateJobPriority(
            scheduler_pb2.UpdateJobPriorityRequest(id=job_id, priority=40), metadata=key
        )
        began = time.perf_counter()
        assert (await read(stream)).priority == 40
        assert time.perf_counter() - began < FAST
        async with harness.db.transaction(system=True) as s:  # nothing changed: nothing is sent
            await s.execute(text("SELECT 1"))
        with pytest.raises(TimeoutError):
            await read(stream, timeout=1.5)
    finally:
        stream.cancel()
