"""The event log and StreamEvents against real PostgreSQL: stored once per CloudEvent id, streamed after
a cursor (backlog, then live: in-process and through LISTEN/NOTIFY from another replica), scoped by
organization and by the key's scopes, ended when the key is revoked, pruned by count and age."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest
from gpufleet.v1 import common_pb2, notification_pb2, notification_pb2_grpc

from services.notification.bootstrap import NotificationApp
from services.notification.entrypoints.consumers import to_command, to_cost_command
from services.notification.service_layer import commands, handlers
from shared import api_keys
from shared.contracts import costs, jobs
from shared.embedded.postgres import free_port
from shared.events import Envelope
from shared.grpc import channel, serve

from .conftest import Harness, job_event

pytestmark = pytest.mark.integration

READ_TIMEOUT = 20.0


def scoped_key(harness: Harness, org: uuid.UUID, *scopes: str) -> tuple[tuple[str, str], ...]:
    secret = api_keys.new_key()
    harness.identity.keys[secret] = common_pb2.Principal(
        organization_id=str(org), user_id=str(uuid.uuid4()), role="member", scopes=list(scopes)
    )
    return (("authorization", f"Bearer {secret}"),)


def cost_event(org: uuid.UUID) -> Envelope:
    from datetime import UTC, datetime

    job, now = uuid.uuid4(), datetime.now(UTC)
    return Envelope(
        type=costs.COST_RECORDED,
        source="gpufleet/billing",
        data=costs.CostRecordedV1(
            job_id=job,
            organization_id=org,
            total_cost=Decimal("0.50"),
            gpu_count=1,
            held_seconds=Decimal(60),
            start_time=now,
            end_time=now,
            lines=[],
        ),
        subject=str(job),
        organization_id=str(org),
    )


@dataclass
class StreamApi:
    app: NotificationApp
    stub: notification_pb2_grpc.NotificationServiceStub


@asynccontextmanager
async def stream_api(harness: Harness) -> AsyncIterator[StreamApi]:
    app = harness.app(notification_stream_heartbeat_seconds=0.3, notification_stream_reauth_seconds=0.1)
    target = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        target,
        [(add, servicer) for add, servicer, _ in app.grpc_services],
        [name for _, _, name in app.grpc_services],
    )
    client = channel(target)
    try:
        yield StreamApi(app, notification_pb2_grpc.NotificationServiceStub(client))
    finally:
        await client.close()
        await server.stop(None)
        await app.close()


async def next_event(call: Any) -> notification_pb2.StreamedEvent:
    """The next event frame, past heartbeats."""
    async with asyncio.timeout(READ_TIMEOUT):
        while True:
            message = await call.read()
            assert message is not grpc.aio.EOF
            if not message.heartbeat:
                return message


async def store(app: NotificationApp, env: Envelope) -> None:
    if env.type in costs.EVENT_TYPES:
        await handlers.notify_cost_event(to_cost_command(env), app.deps)
    else:
        await handlers.notify_job_event(to_command(env), app.deps)


async def test_a_replayed_event_is_stored_once(harness: Harness) -> None:
    app = harness.app()
    org = uuid.uuid4()
    env = job_event(org)
    await store(app, env)
    await store(app, env)  # redelivered: the consumer's ledger stops it
    cmd = to_command(env)
    async with harness.db.transaction(system=True) as s:  # replayed after the ledger was pruned
        from services.notification.adapters.repository import SqlUnitOfWork

        assert await SqlUnitOfWork(s).append_event(handlers.logged_event(cmd)) is None
    assert await harness.scalar("SELECT count(*) FROM event_log WHERE organization_id = :o", o=org) == 1
    row = await harness.scalar("SELECT cloudevent FROM event_log WHERE event_id = :e", e=env.id)
    assert json.loads(row)["id"] == str(env.id) and json.loads(row)["data"]["job"]["job_id"] == str(
        env.data.job.job_id
    )
    async with harness.db.transaction(org_id=uuid.uuid4()) as s:  # row-level security
        from sqlalchemy import text

        assert (await s.execute(text("SELECT count(*) FROM event_log"))).scalar() == 0


async def test_stream_after_a_cursor_then_live_in_order(harness: Harness) -> None:
    async with stream_api(harness) as api:
        org = uuid.uuid4()
        key = scoped_key(harness, org, "jobs:read")
        sent = [job_event(org) for _ in range(3)]
        for env in sent:
            await store(api.app, env)
        call = api.stub.StreamEvents(notification_pb2.StreamEventsRequest(from_start=True), metadata=key)
        first = await next_event(call)
        cursor = first.cursor
        assert json.loads(first.cloudevent_json)["id"] == str(sent[0].id)
        call.cancel()

        resumed = api.stub.StreamEvents(notification_pb2.StreamEventsRequest(after=cursor), metadata=key)
        got = [await next_event(resumed) for _ in range(2)]
        assert [json.loads(m.cloudevent_json)["id"] for m in got] == [str(e.id) for e in sent[1:]]
        assert int(cursor) < int(got[0].cursor) < int(got[1].cursor)
        live = job_event(org, jobs.JOB_FAILED)
        await store(api.app, live)
        message = await next_event(resumed)
        assert (json.loads(message.cloudevent_json)["id"], message.type) == (str(live.id), jobs.JOB_FAILED)
        resumed.cancel()


async def test_an_event_stored_by_another_replica_wakes_the_stream_through_listen_notify(
    harness: Harness,
) -> None:
    async with stream_api(harness) as api:
        assert api.app.listener is not None
        stop = asyncio.Event()
        listening = asyncio.create_task(api.app.listener.run(stop))
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                await api.app.listener.listening.wait()
            org = uuid.uuid4()
            call = api.stub.StreamEvents(
                notification_pb2.StreamEventsRequest(), metadata=scoped_key(harness, org)
            )
            assert (await call.read()).heartbeat  # open, at the head
            other_replica = harness.app()  # its own in-process signal: only the database connects them
            env = job_event(org)
            await store(other_replica, env)
            assert json.loads((await next_event(call)).cloudevent_json)["id"] == str(env.id)
            call.cancel()
        finally:
            stop.set()
            await listening


async def test_organizations_and_scopes_see_only_their_own(harness: Harness) -> None:
    async with stream_api(harness) as api:
        a, b = uuid.uuid4(), uuid.uuid4()
        await store(api.app, job_event(a))
        cost = cost_event(a)
        await store(api.app, cost)
        await store(api.app, job_event(b))

        costs_only = api.stub.StreamEvents(
            notification_pb2.StreamEventsRequest(from_start=True),
            metadata=scoped_key(harness, a, "costs:read"),
        )
        message = await next_event(costs_only)
        assert (message.type, json.loads(message.cloudevent_json)["id"]) == (
            costs.COST_RECORDED,
            str(cost.id),
        )
        costs_only.cancel()

        theirs = api.stub.StreamEvents(
            notification_pb2.StreamEventsRequest(from_start=True),
            metadata=scoped_key(harness, b, "jobs:read"),
        )
        message = await next_event(theirs)
        assert json.loads(message.cloudevent_json)["organizationid"] == str(b)
        assert (await theirs.read()).heartbeat  # and nothing of a's
        theirs.cancel()


async def test_refusals(harness: Harness) -> None:
    async with stream_api(harness) as api:
        org = uuid.uuid4()
        await store(api.app, job_event(org))
        cases = [
            (
                notification_pb2.StreamEventsRequest(after="x1"),
                ("jobs:read",),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                notification_pb2.StreamEventsRequest(after="99"),
                ("jobs:read",),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                notification_pb2.StreamEventsRequest(job_id="nope"),
                ("jobs:read",),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                notification_pb2.StreamEventsRequest(types=["gpufleet.cost.recorded"]),
                ("jobs:read",),
                grpc.StatusCode.PERMISSION_DENIED,
            ),
            (notification_pb2.StreamEventsRequest(), ("fleet:read",), grpc.StatusCode.PERMISSION_DENIED),
        ]
        for request, scopes, code in cases:
            call = api.stub.StreamEvents(request, metadata=scoped_key(harness, org, *scopes))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call.read()
            assert err.value.code() == code, (request, err.value.details())
        call = api.stub.StreamEvents(
            notification_pb2.StreamEventsRequest(after="x"), metadata=scoped_key(harness, org)
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert ("gpufleet-error-field", "last_event_id") in tuple(err.value.trailing_metadata() or ())


async def test_a_revoked_key_ends_the_stream(harness: Harness) -> None:
    async with stream_api(harness) as api:
        org = uuid.uuid4()
        key = scoped_key(harness, org, "jobs:read")
        call = api.stub.StreamEvents(notification_pb2.StreamEventsRequest(), metadata=key)
        assert (await call.read()).heartbeat
        del harness.identity.keys[key[0][1].removeprefix("Bearer ")]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async with asyncio.timeout(READ_TIMEOUT):
                while True:
                    assert (await call.read()).heartbeat
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_retention_by_count_and_age_and_a_cursor_older_than_it(harness: Harness) -> None:
    app = harness.app()
    org = uuid.uuid4()
    for _ in range(5):
        await store(app, job_event(org))
    # Other organizations' logs are pruned too; only this one's rows are counted here.
    await handlers.prune_event_log(commands.PruneEventLog(max_age=timedelta(days=7), keep=3), app.deps)
    kept = "SELECT array_agg(seq ORDER BY seq) FROM event_log WHERE organization_id = :o"
    assert await harness.scalar(kept, o=org) == [3, 4, 5]

    start = await handlers.open_event_stream(commands.OpenEventStream(org, (), after="1"), app.deps)
    page = await handlers.read_events(start, app.deps)  # resumes at the oldest kept
    assert [e.seq for e in page.events] == [3, 4, 5]

    async with harness.db.transaction(system=True) as s:
        from sqlalchemy import text

        await s.execute(
            text(
                "UPDATE event_log SET stored_at = now() - interval '2 days' WHERE organization_id = :o AND seq < 5"
            ),
            {"o": org},
        )
    await handlers.prune_event_log(commands.PruneEventLog(max_age=timedelta(days=1), keep=3), app.deps)
    assert await harness.scalar(kept, o=org) == [5]
    await store(app, job_event(org))  # numbering goes on after pruning
    assert await harness.scalar(kept, o=org) == [5, 6]
