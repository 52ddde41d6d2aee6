"""Job output against real PostgreSQL and over gRPC: a replayed chunk is stored once, reads from an
offset, head + tail past the limit, follow ends at the end of output, and tenancy (NOT_FOUND)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from gpufleet.v1 import common_pb2, output_pb2, output_pb2_grpc

from services.monitoring.entrypoints.output_consumers import to_attempt, to_store
from services.monitoring.entrypoints.output_server import SERVICE_NAME
from services.monitoring.output_bootstrap import OutputApp, bootstrap_output
from services.monitoring.service_layer.output_handlers import handle
from shared import api_keys
from shared.contracts import jobs
from shared.contracts.output import JOB_OUTPUT_CHUNK, JobOutputChunkV1
from shared.events import Envelope
from shared.grpc import Authenticator, channel
from tests.fake_identity import grpc_server

from .conftest import Monitoring, job_event, record_jobs

pytestmark = pytest.mark.integration


@pytest.fixture
async def output(
    monitoring: Monitoring, identity
) -> AsyncIterator[tuple[OutputApp, output_pb2_grpc.JobOutputServiceStub]]:
    _, identity_target = identity
    auth = Authenticator(identity_target, ttl=0)
    settings = monitoring.settings.model_copy(update={"monitoring_output_max_bytes": 2000})
    app = bootstrap_output(settings, db=monitoring.db, auth=auth)
    async with grpc_server([(add, s) for add, s, _ in app.grpc_services], [SERVICE_NAME]) as target:
        client = channel(target)
        yield app, output_pb2_grpc.JobOutputServiceStub(client)
        await client.close()
    await auth.close()


NODE = uuid.uuid4()  # where the tests' jobs run (placed by :func:`place`)


def chunk(
    org: uuid.UUID, job: uuid.UUID, offset: int, data: bytes, eof: bool = False, node: uuid.UUID = NODE
) -> Envelope:
    """A chunk as an agent on ``node`` ships it; ``org`` is its claim, which monitoring does not use."""
    return Envelope(
        type=JOB_OUTPUT_CHUNK,
        source="test",
        data=JobOutputChunkV1(
            job_id=job, attempt=1, organization_id=org, offset=offset, data=data, eof=eof, node_id=node
        ),
    )


async def place(app: OutputApp, org: uuid.UUID, job: uuid.UUID, node: uuid.UUID = NODE) -> None:
    """The job topic says ``job`` (of ``org``) runs on ``node`` (through ``app``'s job-topic handler)."""
    await record_jobs(app, job_event(jobs.JOB_SCHEDULED, job, org, node, [uuid.uuid4()], datetime.now(UTC)))


async def deliver(app: OutputApp, *envelopes: Envelope) -> None:
    """What the output consumer does with one batch (converter, then handler), minus the broker."""
    cmd = to_store(list(envelopes))
    assert cmd is not None
    await handle(cmd, app.deps)


async def test_replayed_chunks_are_stored_once_and_read_from_an_offset(
    monitoring: Monitoring, output
) -> None:
    app, stub = output
    org, job = uuid.uuid4(), uuid.uuid4()
    await place(app, org, job)
    key = monitoring.identity.key(org)
    first, second = chunk(org, job, 0, b"hello, "), chunk(org, job, 7, b"world\n")
    await deliver(app, first, second)
    await deliver(app, first, second, chunk(org, job, 0, b"hello, world\nmore"))  # replays, other cuts
    rows = await monitoring.rows(
        "SELECT byte_offset, data FROM job_output_chunks WHERE job_id = :j ORDER BY byte_offset", j=job
    )
    assert [(r.byte_offset, bytes(r.data)) for r in rows] == [(0, b"hello, "), (7, b"world\n"), (13, b"more")]
    page = await stub.ReadOutput(output_pb2.ReadOutputRequest(job_id=str(job), offset=7), metadata=key)
    assert (page.data, page.size, page.complete, page.truncated) == (b"world\nmore", 17, False, False)


async def test_past_the_limit_head_marker_tail_and_storage_stays_bounded(
    monitoring: Monitoring, output
) -> None:
    app, stub = output
    org, job = uuid.uuid4(), uuid.uuid4()
    await place(app, org, job)
    raw = b"".join(b"%06d\n" % i for i in range(2000))  # 14 000 bytes against a 2000-byte limit
    for at in range(0, len(raw), 500):
        await deliver(app, chunk(org, job, at, raw[at : at + 500]))
    await deliver(app, chunk(org, job, len(raw), b"", eof=True))
    page = await stub.ReadOutput(
        output_pb2.ReadOutputRequest(job_id=str(job)), metadata=monitoring.identity.key(org)
    )
    assert page.complete and page.truncated and page.cut_bytes == len(raw) - 2000
    head, _, _ = page.data.partition(b"bytes of output cut here")
    assert page.data.startswith(raw[:1000]) and page.data.endswith(raw[-1000:])
    assert str(len(raw) - 2000).encode() in head[1000:]
    (stored,) = await monitoring.rows(
        "SELECT sum(length(data)) AS n FROM job_output_chunks WHERE job_id = :j", j=job
    )
    assert stored.n <= 2000 + 2 * 500


async def test_follow_gets_new_chunks_then_ends_at_eof(monitoring: Monitoring, output) -> None:
    app, stub = output
    org, job = uuid.uuid4(), uuid.uuid4()
    await place(app, org, job)
    await deliver(app, chunk(org, job, 0, b"one\n"))
    call = stub.FollowOutput(
        output_pb2.FollowOutputRequest(job_id=str(job)), metadata=monitoring.identity.key(org)
    )
    first = await call.read()
    assert first.data == b"one\n" and not first.complete
    await deliver(app, chunk(org, job, 4, b"two\n"))
    await deliver(app, chunk(org, job, 8, b"three\n", eof=True))
    rest = b""
    async with asyncio.timeout(30):  # a bound against a hang, not a timing assertion
        while (page := await call.read()) is not grpc.aio.EOF:
            rest += page.data
            last = page
    assert first.data + rest == b"one\ntwo\nthree\n" and last.complete


async def test_another_organization_gets_not_found_as_for_an_unknown_job(
    monitoring: Monitoring, output
) -> None:
    app, stub = output
    org, job = uuid.uuid4(), uuid.uuid4()
    await place(app, org, job)
    await deliver(app, chunk(org, job, 0, b"private"))
    stranger = monitoring.identity.key(uuid.uuid4())
    for job_id in (str(job), str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(grpc.aio.AioRpcError) as read:
            await stub.ReadOutput(output_pb2.ReadOutputRequest(job_id=job_id), metadata=stranger)
        assert read.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as follow:
            await stub.FollowOutput(output_pb2.FollowOutputRequest(job_id=job_id), metadata=stranger).read()
        assert follow.value.code() == grpc.StatusCode.NOT_FOUND


async def test_following_needs_jobs_read(monitoring: Monitoring, output) -> None:
    _, stub = output
    secret = api_keys.new_key()
    monitoring.identity.keys[secret] = common_pb2.Principal(
        organization_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()), role="member", scopes=["costs:read"]
    )
    metadata = (("authorization", f"Bearer {secret}"),)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.FollowOutput(
            output_pb2.FollowOutputRequest(job_id=str(uuid.uuid4())), metadata=metadata
        ).read()
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_job_topic_completes_an_attempt_whose_agent_died(monitoring: Monitoring, output) -> None:
    app, stub = output
    org, job = uuid.uuid4(), uuid.uuid4()
    await deliver(app, chunk(org, job, 0, b"half a line"))
    snapshot = jobs.JobSnapshotV1.model_validate(
        {
            "job_id": job,
            "organization_id": org,
            "status": "failed",
            "command": "x",
            "gpu_count": 1,
            "gpu_memory_mb": 1,
            "priority": 50,
            "created_at": "2026-01-01T00:00:00Z",
            "attempt": 1,
            # Placed: the chunk that came first (parked, the placement unknown then) is applied now.
            "scheduled_at": "2026-01-01T00:00:01Z",
            "finished_at": "2026-01-01T00:00:02Z",
            "placements": [{"node_id": NODE, "rank": 0, "gpu_ids": [uuid.uuid4()]}],
        }
    )
    event = Envelope(type=jobs.JOB_FAILED, source="test", data=jobs.JobEventV1(job=snapshot))
    cmd = to_attempt(event)
    assert cmd is not None
    await handle(cmd, app.deps)
    await handle(cmd, app.deps)  # redelivered: the same effect
    call = stub.FollowOutput(
        output_pb2.FollowOutputRequest(job_id=str(job)), metadata=monitoring.identity.key(org)
    )
    assert (await call.read()).data == b"half a line"
    assert await app.complete_once() == 0  # ended within the grace: its end of output may still come
    await monitoring.rows(
        "UPDATE job_output SET ended_at = ended_at - interval '1 hour' WHERE job_id = :j RETURNING job_id",
        j=job,
    )
    assert await app.complete_once() >= 1
    async with asyncio.timeout(30):
        rest = [p async for p in call]
    assert rest and rest[-1].complete and b"may be incomplete" in rest[-1].data


async def test_a_batch_records_the_end_of_each_attempt_once(monitoring: Monitoring, output) -> None:
    """Several jobs end in one batch (one statement marks them all), one of them named twice (a
    redelivery inside the batch): each attempt's end is recorded once, and the batch again changes
    nothing. Another organization's claim on a job marks nothing."""
    app, _ = output
    org, other = uuid.uuid4(), uuid.uuid4()
    a, b = uuid.uuid4(), uuid.uuid4()
    start = datetime.now(UTC)
    for job in (a, b):
        await place(app, org, job)
    end = datetime.now(UTC)
    ended = [job_event(jobs.JOB_SUCCEEDED, job, org, NODE, [uuid.uuid4()], start, end) for job in (a, b, a)]
    await record_jobs(app, *ended)
    rows = await monitoring.rows(
        "SELECT job_id, ended_at FROM job_output WHERE job_id = ANY(:j) ORDER BY job_id", j=[a, b]
    )
    assert len(rows) == 2 and all(r.ended_at is not None for r in rows)
    first = {r.job_id: r.ended_at for r in rows}
    await record_jobs(app, *ended)  # redelivered: recorded already
    again = await monitoring.rows("SELECT job_id, ended_at FROM job_output WHERE job_id = ANY(:j)", j=[a, b])
    assert {r.job_id: r.ended_at for r in again} == first
    c = uuid.uuid4()
    await place(app, org, c)
    await record_jobs(app, job_event(jobs.JOB_SUCCEEDED, c, other, NODE, [uuid.uuid4()], start, end))
    [row] = await monitoring.rows("SELECT ended_at FROM job_output WHERE job_id = :j", j=c)
    assert row.ended_at is None
