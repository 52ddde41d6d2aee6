"""NodeAgentService over real gRPC and PostgreSQL: pushed assignments and batched reports."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import grpc
import pytest
from gpufleet.v1 import scheduler_pb2, scheduler_pb2_grpc

from services.scheduler.entrypoints.agent_api import SERVICE_NAME, NodeAgentServicer
from services.scheduler.service_layer import commands, handlers
from services.scheduler.service_layer.assignments import AssignmentFeed
from services.scheduler.service_layer.scheduling import Scheduler
from shared.embedded.postgres import free_port
from shared.grpc import channel, serve

from .conftest import AnyNodeAuthenticator
from .rounds import schedule_round

pytestmark = pytest.mark.integration


@pytest.fixture
async def harness(harness):
    """The suite's harness, its agent API served the way the runtime serves it (shared.grpc.serve, with
    the tracing interceptor, which insists on a streaming method being an async generator)."""
    port = free_port()
    server, _ = await serve(
        f"127.0.0.1:{port}",
        [
            (
                scheduler_pb2_grpc.add_NodeAgentServiceServicer_to_server,
                NodeAgentServicer(harness.deps, AnyNodeAuthenticator(harness.fleet_target, ttl=0)),
            )
        ],
        [SERVICE_NAME],
    )
    client = channel(f"127.0.0.1:{port}")
    harness.agents = scheduler_pb2_grpc.NodeAgentServiceStub(client)
    yield harness
    await client.close()
    await server.stop(None)


FAST = 0.5  # "well under a second": the pushed path must beat the 1 s re-check by far


async def next_update(stream, timeout: float = 5.0) -> scheduler_pb2.AssignmentsUpdate:
    async with asyncio.timeout(timeout):
        return await stream.read()


def watch(harness, node: uuid.UUID, known: int = 0, metadata=None):
    return harness.agents.WatchAssignments(
        scheduler_pb2.WatchAssignmentsRequest(node_id=str(node), known_revision=known),
        metadata=metadata if metadata is not None else harness.agent,
    )


async def submit(harness, key, command: str = "true") -> str:
    job = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command=command, gpu_count=1), metadata=key
    )
    return job.id


def finished(node: uuid.UUID, job_id: str, **kw) -> scheduler_pb2.JobReport:
    return scheduler_pb2.JobReport(
        job_id=job_id,
        finished=scheduler_pb2.ReportJobFinishedRequest(
            node_id=str(node), job_id=job_id, has_exit_code=True, exit_code=kw.pop("exit_code", 0), **kw
        ),
    )


def started(node: uuid.UUID, job_id: str) -> scheduler_pb2.JobReport:
    return scheduler_pb2.JobReport(
        job_id=job_id, started=scheduler_pb2.ReportJobStartedRequest(node_id=str(node), job_id=job_id)
    )


async def test_a_watch_gets_the_list_at_once_and_a_placement_within_well_under_a_second(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    await harness.add_gpus(org, node, 2)
    stream = watch(harness, node)
    try:
        first = await next_update(stream)
        assert list(first.assignments) == [] and first.revision > 0

        job_id = await submit(harness, key, "python train.py")
        placed = await schedule_round(harness.deps)
        assert [str(j.id) for j in placed] == [job_id]
        began = time.perf_counter()  # from the placement's commit
        update = await next_update(stream)
        took = time.perf_counter() - began
        [a] = update.assignments
        assert a.job_id == job_id and a.status == "scheduled" and a.command == "python train.py"
        assert a.world_size == 1 and a.rank == 0 and a.master_port > 0 and a.attempt == 1
        assert update.revision > first.revision
        assert took < FAST, f"the placement reached the stream after {took:.3f}s"

        # A cancel of the scheduled job is pushed as well (the agent must see cancel_requested).
        began = time.perf_counter()
        await harness.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=job_id), metadata=key)
        update = await next_update(stream)
        assert time.perf_counter() - began < FAST
        assert [(a.job_id, a.cancel_requested) for a in update.assignments] == [(job_id, True)]
    finally:
        stream.cancel()
    async with asyncio.timeout(5):  # the server learns of the cancel a moment later
        while harness.deps.assignments.watching(node):
            await asyncio.sleep(0.01)  # the ended stream leaves no watcher behind


async def test_a_finish_is_pushed_and_a_change_made_elsewhere_is_caught_by_the_feeds_poll(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    await harness.add_gpus(org, node, 1)
    # Another replica's scheduler: its commits do not reach this process's feed.
    elsewhere = Scheduler(replace(harness.deps, assignments=AssignmentFeed()), "integration-leader")
    job_id = await submit(harness, key)
    await elsewhere.step()
    stream = watch(harness, node)
    try:
        first = await next_update(stream)
        assert [a.job_id for a in first.assignments] == [job_id]
        other = await submit(harness, key)
        answer = await harness.agents.ReportJobs(
            scheduler_pb2.ReportJobsRequest(node_id=str(node), reports=[finished(node, job_id)]),
            metadata=harness.agent,
        )
        assert list(answer.acknowledged) == [job_id]
        emptied = await next_update(stream, timeout=FAST)
        assert list(emptied.assignments) == []
        await elsewhere.step()
        began = time.perf_counter()
        caught = await next_update(stream, timeout=3.0)
        assert [a.job_id for a in caught.assignments] == [other]
        assert time.perf_counter() - began < 2.0
        # A cancel committed elsewhere changes no status, only what the agent must do: caught as well.
        await handlers.cancel_job(commands.CancelJob(organization_id=org, job_id=other), elsewhere.deps)
        cancelled = await next_update(stream, timeout=3.0)
        assert [(a.job_id, a.cancel_requested) for a in cancelled.assignments] == [(other, True)]
    finally:
        stream.cancel()


async def test_idle_streams_read_nothing_but_one_poll_a_second_for_all_of_them(harness, monkeypatch):
    """Three idle nodes' streams: each reads its list once (at the start), and the feed's poll reads the
    versions of all three in one statement a second; no stream re-reads its list on a timer of its own."""
    reads: list[str] = []
    polls: list[list[uuid.UUID]] = []
    real_handle = handlers.handle
    real_versions = getattr(NodeAgentServicer, "_node_versions", None)

    async def handle(cmd, deps):  # type: ignore[no-untyped-def]
        if isinstance(cmd, commands.GetAssignments):
            reads.append(cmd.node_id)
        return await real_handle(cmd, deps)

    async def versions(self, node_ids):  # type: ignore[no-untyped-def]
        polls.append(sorted(node_ids))
        assert real_versions is not None
        return await real_versions(self, node_ids)

    monkeypatch.setattr(handlers, "handle", handle)
    monkeypatch.setattr(NodeAgentServicer, "_node_versions", versions, raising=False)
    nodes = [uuid.uuid4() for _ in range(3)]
    streams = [watch(harness, n) for n in nodes]
    try:
        for stream in streams:
            await next_update(stream)
        await asyncio.sleep(3.2)
        assert sorted(reads) == sorted(str(n) for n in nodes)  # one read each, at the start
        assert 2 <= len(polls) <= 4 and all(p == sorted(nodes) for p in polls[-2:])
    finally:
        for stream in streams:
            stream.cancel()


async def test_a_reconnect_with_the_known_revision_gets_it_back_and_a_newer_one_after_a_change(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    await harness.add_gpus(org, node, 2)
    job_id = await submit(harness, key)
    await schedule_round(harness.deps)
    stream = watch(harness, node)
    first = await next_update(stream)
    stream.cancel()

    again = watch(harness, node, known=first.revision)
    same = await next_update(again)
    again.cancel()
    assert same.revision == first.revision and [a.job_id for a in same.assignments] == [job_id]

    # The agent knows a later revision (another replica's): whatever is sent now is above it.
    ahead = watch(harness, node, known=first.revision + 10**9)
    above = await next_update(ahead)
    ahead.cancel()
    assert above.revision > first.revision + 10**9

    await submit(harness, key)
    await schedule_round(harness.deps)
    changed = watch(harness, node, known=above.revision)
    newer = await next_update(changed)
    changed.cancel()
    assert newer.revision > above.revision and len(newer.assignments) == 2


async def test_report_jobs_acknowledges_in_order_and_is_idempotent(harness):
    org, key = harness.tenant()
    node = uuid.uuid4()
    await harness.add_gpus(org, node, 2)
    a, b = await submit(harness, key, "a"), await submit(harness, key, "b")
    await schedule_round(harness.deps)
    batch = scheduler_pb2.ReportJobsRequest(
        node_id=str(node),
        reports=[
            started(node, a),
            started(node, b),
            finished(node, a, exit_code=3, timed_out=True, attempt=1),
        ],
    )
    answer = await harness.agents.ReportJobs(batch, metadata=harness.agent)
    assert sorted(answer.acknowledged) == sorted([a, b])
    repeated = await harness.agents.ReportJobs(batch, metadata=harness.agent)  # the agent retried
    assert sorted(repeated.acknowledged) == sorted([a, b])

    got_a = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=a), metadata=key)
    got_b = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=b), metadata=key)
    assert got_a.status == "timed_out" and got_a.exit_code == 3  # the agent's timed_out went through
    assert [h.status for h in got_a.history] == ["queued", "scheduled", "running", "timed_out"]
    assert got_b.status == "running"

    # A report about a job that is not this node's is PERMISSION_DENIED (field "reports": the agent then
    # sends one by one and drops it) and not applied.
    elsewhere = uuid.uuid4()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.agents.ReportJobs(
            scheduler_pb2.ReportJobsRequest(node_id=str(elsewhere), reports=[finished(elsewhere, b)]),
            metadata=harness.agent,
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert dict(err.value.trailing_metadata() or ()).get("gpufleet-error-field") == "reports"
    still = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=b), metadata=key)
    assert still.status == "running"


async def rpc_code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_a_bad_credential_or_node_is_refused(harness):
    node = uuid.uuid4()
    wrong = (("authorization", "Bearer not-the-agent-token"),)
    assert await rpc_code(watch(harness, node, metadata=wrong).read()) == grpc.StatusCode.UNAUTHENTICATED
    assert await rpc_code(watch(harness, node, metadata=()).read()) == grpc.StatusCode.UNAUTHENTICATED
    refused = harness.agents.ReportJobs(
        scheduler_pb2.ReportJobsRequest(node_id=str(node), reports=[finished(node, str(uuid.uuid4()))]),
        metadata=wrong,
    )
    assert await rpc_code(refused) == grpc.StatusCode.UNAUTHENTICATED
    bad_node = harness.agents.WatchAssignments(
        scheduler_pb2.WatchAssignmentsRequest(node_id="not-a-uuid"), metadata=harness.agent
    )
    assert await rpc_code(bad_node.read()) == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_node_credential_acts_only_for_its_own_node_and_jobs(harness):
    """Real per-node credentials, verified through fleet's AuthenticateNode (faked): another node's id,
    another node's job, a revoked credential; each refused and nothing changed."""
    org, key = harness.tenant()
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    await harness.add_gpus(org, theirs, 1)
    job_id = await submit(harness, key)
    placed = await schedule_round(harness.deps)
    assert [str(j.id) for j in placed] == [job_id]  # on "theirs", the only node with GPUs
    own = harness.agent_of(mine)

    asked = harness.agents.GetAssignments(
        scheduler_pb2.GetAssignmentsRequest(node_id=str(theirs)), metadata=own
    )
    assert await rpc_code(asked) == grpc.StatusCode.PERMISSION_DENIED
    assert await rpc_code(watch(harness, theirs, metadata=own).read()) == grpc.StatusCode.PERMISSION_DENIED
    # Its own node id, but their job: refused, one by one and in a batch.
    done = scheduler_pb2.ReportJobFinishedRequest(node_id=str(mine), job_id=job_id, has_exit_code=True)
    assert (
        await rpc_code(harness.agents.ReportJobFinished(done, metadata=own))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    begun = scheduler_pb2.ReportJobStartedRequest(node_id=str(mine), job_id=job_id)
    assert (
        await rpc_code(harness.agents.ReportJobStarted(begun, metadata=own))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    batch = scheduler_pb2.ReportJobsRequest(node_id=str(mine), reports=[finished(mine, job_id)])
    assert await rpc_code(harness.agents.ReportJobs(batch, metadata=own)) == grpc.StatusCode.PERMISSION_DENIED
    got = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=job_id), metadata=key)
    assert got.status == "scheduled"  # nothing changed

    # Their own credential works; once revoked (removed from fleet), it is refused.
    their_agent = harness.agent_of(theirs)
    answer = await harness.agents.GetAssignments(
        scheduler_pb2.GetAssignmentsRequest(node_id=str(theirs)), metadata=their_agent
    )
    assert [a.job_id for a in answer.assignments] == [job_id]
    harness.registry.nodes.clear()
    asked = harness.agents.GetAssignments(
        scheduler_pb2.GetAssignmentsRequest(node_id=str(theirs)), metadata=their_agent
    )
    assert await rpc_code(asked) == grpc.StatusCode.UNAUTHENTICATED


async def test_an_open_assignments_stream_ends_once_its_credential_is_revoked(harness):
    """The stream asks again who its caller is every round (at least every second): a credential revoked
    while the stream is open ends it UNAUTHENTICATED, instead of it serving a decommissioned node on."""
    node = uuid.uuid4()
    stream = watch(harness, node, metadata=harness.agent_of(node))
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.assignments == []
    harness.registry.nodes.clear()  # fleet revoked it (decommission)
    began = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while True:
            update = await asyncio.wait_for(stream.read(), 10)
            assert update is not grpc.aio.EOF, "the stream ended without a status"
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - began < 5
