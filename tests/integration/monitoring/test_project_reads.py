"""Project-bound API keys against real PostgreSQL, over gRPC (issue 9, docs/projects.md): a key bound to
a project reads only its project's jobs' output (another project's job, or one of no project, is
NOT_FOUND exactly like an unknown id) and the utilization of the samples its project's jobs were
attributed; an organization-wide key still sees everything; a malformed binding sees nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from gpufleet.v1 import monitoring_pb2, output_pb2, output_pb2_grpc

from services.monitoring.entrypoints.output_consumers import to_store
from services.monitoring.entrypoints.output_server import SERVICE_NAME
from services.monitoring.service_layer.output_handlers import handle
from shared.contracts import jobs
from shared.contracts.output import JOB_OUTPUT_CHUNK, JobOutputChunkV1
from shared.events import Envelope
from shared.grpc import channel
from shared.wire import ts
from tests.fake_identity import grpc_server

from .conftest import Monitoring, job_event, record, record_jobs

pytestmark = pytest.mark.integration

NODE = uuid.uuid4()


@pytest.fixture
async def output(monitoring: Monitoring) -> AsyncIterator[output_pb2_grpc.JobOutputServiceStub]:
    """The session's JobOutputService (its Authenticator asks the fake identity) on a free port."""
    async with grpc_server(
        [(add, s) for add, s, _ in monitoring.output.grpc_services], [SERVICE_NAME]
    ) as target:
        client = channel(target)
        yield output_pb2_grpc.JobOutputServiceStub(client)
        await client.close()


async def run_job(
    monitoring: Monitoring, org: uuid.UUID, project: uuid.UUID | None, text: bytes
) -> uuid.UUID:
    """A job of ``project`` placed on NODE that printed ``text`` and ended its output."""
    job = uuid.uuid4()
    placed = job_event(jobs.JOB_SCHEDULED, job, org, NODE, [uuid.uuid4()], datetime.now(UTC), project=project)
    await record_jobs(monitoring.output, placed)
    chunks = [
        Envelope(
            type=JOB_OUTPUT_CHUNK,
            source="test",
            data=JobOutputChunkV1(
                job_id=job, attempt=1, organization_id=org, offset=at, data=data, eof=eof, node_id=NODE
            ),
        )
        for at, data, eof in ((0, text, False), (len(text), b"", True))
    ]
    cmd = to_store(chunks)
    assert cmd is not None
    await handle(cmd, monitoring.output.deps)
    return job


async def read_error(stub: output_pb2_grpc.JobOutputServiceStub, job: uuid.UUID | str, key) -> tuple:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReadOutput(output_pb2.ReadOutputRequest(job_id=str(job)), metadata=key)
    return err.value.code(), err.value.details()


async def test_a_bound_key_reads_only_its_projects_output(monitoring: Monitoring, output) -> None:
    org, p, q = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    mine = await run_job(monitoring, org, p, b"project p\n")
    theirs = await run_job(monitoring, org, q, b"project q\n")
    loose = await run_job(monitoring, org, None, b"no project\n")
    stored = await monitoring.rows(
        "SELECT job_id, project_id FROM job_output WHERE organization_id = :o", o=org
    )
    assert {r.job_id: r.project_id for r in stored} == {mine: p, theirs: q, loose: None}

    bound = monitoring.bound_key(org, p)
    page = await output.ReadOutput(output_pb2.ReadOutputRequest(job_id=str(mine)), metadata=bound)
    assert (page.data, page.complete) == (b"project p\n", True)
    unknown = await read_error(output, uuid.uuid4(), bound)
    assert unknown[0] == grpc.StatusCode.NOT_FOUND
    assert await read_error(output, theirs, bound) == unknown  # the same answer as an unknown id
    assert await read_error(output, loose, bound) == unknown
    for job in (mine, theirs):  # a key bound to a project of another organization: nothing
        assert await read_error(output, job, monitoring.bound_key(uuid.uuid4(), p)) == unknown
    for job in (mine, theirs):  # a malformed binding binds to nothing, never to the whole organization
        assert await read_error(output, job, monitoring.bound_key(org, "not-a-uuid")) == unknown

    everyone = monitoring.identity.key(org)  # an organization-wide key reads every project's output
    for job, text in ((mine, b"project p\n"), (theirs, b"project q\n"), (loose, b"no project\n")):
        page = await output.ReadOutput(output_pb2.ReadOutputRequest(job_id=str(job)), metadata=everyone)
        assert page.data == text

    with pytest.raises(grpc.aio.AioRpcError) as err:  # following another project's output: the same
        async for _ in output.FollowOutput(
            output_pb2.FollowOutputRequest(job_id=str(theirs)), metadata=bound
        ):
            pass
    assert (err.value.code(), err.value.details()) == unknown
    pages = [
        p async for p in output.FollowOutput(output_pb2.FollowOutputRequest(job_id=str(mine)), metadata=bound)
    ]
    assert b"".join(p.data for p in pages) == b"project p\n"


async def test_an_attempt_recorded_before_projects_is_hidden_from_bound_keys_until_named(
    monitoring: Monitoring, output
) -> None:
    org, p, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # As migration 004 leaves a row recorded before it: no project.
    await monitoring.rows(
        "INSERT INTO job_output (job_id, attempt, organization_id, head_bytes, tail_bytes)"
        " VALUES (:j, 1, :o, 1000, 1000) RETURNING 1",
        j=job,
        o=org,
    )
    bound = monitoring.bound_key(org, p)
    assert (await read_error(output, job, bound))[0] == grpc.StatusCode.NOT_FOUND
    page = await output.ReadOutput(
        output_pb2.ReadOutputRequest(job_id=str(job)), metadata=monitoring.identity.key(org)
    )
    assert page.data == b""
    # The job's next event names its project: from then on its bound keys read it.
    await record_jobs(
        monitoring.output,
        job_event(jobs.JOB_STARTED, job, org, NODE, [uuid.uuid4()], datetime.now(UTC), project=p),
    )
    page = await output.ReadOutput(output_pb2.ReadOutputRequest(job_id=str(job)), metadata=bound)
    assert page.job_id == str(job)
    (row,) = await monitoring.rows("SELECT project_id FROM job_output WHERE job_id = :j", j=job)
    assert row.project_id == p


async def test_a_bound_key_counts_only_its_projects_samples(monitoring: Monitoring) -> None:
    org, p, q = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    node = uuid.uuid4()
    g_p, g_q, g_none = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    await monitoring.allocate([g_p], org, node, start, project=p)
    await monitoring.allocate([g_q], org, node, start, project=q)
    await monitoring.allocate([g_none], org, node, start)
    at = [start + timedelta(minutes=m) for m in (1, 2)]
    samples = [(g, org, u, t) for t in at for g, u in ((g_p, 10.0), (g_q, 20.0), (g_none, 30.0))]
    assert await monitoring.consume([record(samples, node)]) == 6

    async def gpus(key) -> dict[str, float]:  # type: ignore[no-untyped-def]
        reply = await monitoring.stub.GetUtilization(monitoring_pb2.GetUtilizationRequest(), metadata=key)
        return {g.gpu_id: g.avg_utilization for g in reply.gpus}

    async def series(key) -> tuple[set[str], list[tuple[float, int]]]:  # type: ignore[no-untyped-def]
        request = monitoring_pb2.GetUtilizationSeriesRequest(
            from_time=ts(start), to_time=ts(start + timedelta(minutes=10)), step_seconds=600
        )
        reply = await monitoring.stub.GetUtilizationSeries(request, metadata=key)
        return {s.gpu_id for s in reply.series}, [(a.utilization, a.gpus) for a in reply.aggregate]

    assert await gpus(monitoring.bound_key(org, p)) == {str(g_p): 10.0}
    assert await gpus(monitoring.bound_key(org, q)) == {str(g_q): 20.0}
    everyone = monitoring.identity.key(org)
    assert await gpus(everyone) == {str(g_p): 10.0, str(g_q): 20.0, str(g_none): 30.0}
    for nothing in (monitoring.bound_key(org, uuid.uuid4()), monitoring.bound_key(org, "not-a-uuid")):
        assert await gpus(nothing) == {}
        assert await series(nothing) == (set(), [])
    assert await gpus(monitoring.bound_key(uuid.uuid4(), p)) == {}  # another organization's key

    assert await series(monitoring.bound_key(org, p)) == ({str(g_p)}, [(0.1, 1)])
    assert await series(everyone) == ({str(g_p), str(g_q), str(g_none)}, [(0.2, 3)])
