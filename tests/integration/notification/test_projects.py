"""Projects in notification against real PostgreSQL, through the gRPC servicer: the event log and the
deliveries keep each event's project; a project-bound key (Principal.project_id) streams only its
project's events (resuming with the organization's cursors, skipped events not renumbered), lists only
its project's job-URL deliveries and is refused the organization's webhooks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest
from gpufleet.v1 import common_pb2, notification_pb2, notification_pb2_grpc

from services.notification.bootstrap import NotificationApp
from services.notification.entrypoints.consumers import to_command, to_cost_command
from services.notification.service_layer import commands, handlers
from shared import api_keys
from shared.contracts import costs
from shared.embedded.postgres import free_port
from shared.events import Envelope
from shared.grpc import channel, serve

from .conftest import Harness, job_event

pytestmark = pytest.mark.integration

READ_TIMEOUT = 20.0
Metadata = tuple[tuple[str, str], ...]


def key(harness: Harness, org: uuid.UUID, project: uuid.UUID | None = None, role: str = "owner") -> Metadata:
    """A key of ``org`` (every scope), bound to ``project`` when given."""
    secret = api_keys.new_key()
    harness.identity.keys[secret] = common_pb2.Principal(
        organization_id=str(org),
        user_id=str(uuid.uuid4()),
        role=role,
        api_key_id=str(uuid.uuid4()),
        project_id=str(project) if project else "",
    )
    return (("authorization", f"Bearer {secret}"),)


def in_project(envelope: Envelope, project: uuid.UUID | None) -> Envelope:
    data = envelope.data
    if isinstance(data, costs.CostRecordedV1):
        data = data.model_copy(update={"project_id": project})
    else:
        data = data.model_copy(update={"job": data.job.model_copy(update={"project_id": project})})
    return Envelope(
        id=envelope.id,
        type=envelope.type,
        source=envelope.source,
        data=data,
        subject=envelope.subject,
        organization_id=envelope.organization_id,
    )


def cost_event(org: uuid.UUID, project: uuid.UUID | None) -> Envelope:
    job, now = uuid.uuid4(), datetime.now(UTC)
    data = costs.CostRecordedV1(
        job_id=job,
        organization_id=org,
        total_cost=Decimal("0.50"),
        gpu_count=1,
        held_seconds=Decimal(60),
        start_time=now,
        end_time=now,
        lines=[],
        project_id=project,
    )
    return Envelope(
        type=costs.COST_RECORDED,
        source="gpufleet/billing",
        data=data,
        subject=str(job),
        organization_id=str(org),
    )


async def store(app: NotificationApp, env: Envelope) -> None:
    if env.type in costs.EVENT_TYPES:
        await handlers.notify_cost_event(to_cost_command(env), app.deps)
    else:
        await handlers.notify_job_event(to_command(env), app.deps)


@asynccontextmanager
async def served(harness: Harness) -> AsyncIterator[tuple[NotificationApp, Any]]:
    app = harness.app(notification_stream_heartbeat_seconds=0.3, notification_stream_reauth_seconds=0.1)
    target = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        target,
        [(add, servicer) for add, servicer, _ in app.grpc_services],
        [name for _, _, name in app.grpc_services],
    )
    client = channel(target)
    try:
        yield app, notification_pb2_grpc.NotificationServiceStub(client)
    finally:
        await client.close()
        await server.stop(None)
        await app.close()


async def next_event(call: Any) -> notification_pb2.StreamedEvent:
    async with asyncio.timeout(READ_TIMEOUT):
        while True:
            message = await call.read()
            assert message is not grpc.aio.EOF
            if not message.heartbeat:
                return message


def event_id(message: notification_pb2.StreamedEvent) -> str:
    return str(json.loads(message.cloudevent_json)["id"])


async def test_the_log_keeps_each_events_project(harness: Harness) -> None:
    app = harness.app()
    org, p = uuid.uuid4(), uuid.uuid4()
    envs = [in_project(job_event(org), p), cost_event(org, p), job_event(org), cost_event(org, None)]
    for env in envs:
        await store(app, env)
    await app.close()
    async with harness.db.transaction(system=True) as s:
        from sqlalchemy import text

        rows = (
            await s.execute(
                text("SELECT event_id, project_id FROM event_log WHERE organization_id = :o ORDER BY seq"),
                {"o": org},
            )
        ).all()
    assert [(r.event_id, r.project_id) for r in rows] == [
        (envs[0].id, p),
        (envs[1].id, p),
        (envs[2].id, None),
        (envs[3].id, None),
    ]


async def test_a_bound_key_streams_only_its_project_and_resumes_with_the_organizations_cursors(
    harness: Harness,
) -> None:
    async with served(harness) as (app, stub):
        org, p, q = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        backlog = [
            in_project(job_event(org), p),  # 1
            in_project(job_event(org), q),  # 2
            job_event(org),  # 3: no project
            cost_event(org, p),  # 4
            cost_event(org, q),  # 5
        ]
        for env in backlog:
            await store(app, env)
        bound = key(harness, org, p)
        call = stub.StreamEvents(notification_pb2.StreamEventsRequest(from_start=True), metadata=bound)
        first, second = await next_event(call), await next_event(call)
        assert [(event_id(m), m.cursor) for m in (first, second)] == [
            (str(backlog[0].id), "1"),
            (str(backlog[3].id), "4"),
        ]
        # Live: another project's event and one of no project are skipped, its own arrives.
        live_mine = in_project(job_event(org), p)
        for env in (in_project(job_event(org), q), job_event(org), live_mine):
            await store(app, env)
        live = await next_event(call)
        assert (event_id(live), live.cursor) == (str(live_mine.id), "8")
        call.cancel()

        # Resume after the first frame: the skipped numbers stay skipped, nothing is renumbered.
        resumed = stub.StreamEvents(notification_pb2.StreamEventsRequest(after=first.cursor), metadata=bound)
        assert [(await next_event(resumed)).cursor for _ in range(2)] == ["4", "8"]
        resumed.cancel()
        # A job filter on another project's job finds nothing of it.
        start = await handlers.open_event_stream(
            commands.OpenEventStream(
                org, ("jobs:read",), from_start=True, job_id=backlog[1].data.job.job_id, bound_project=p
            ),
            app.deps,
        )
        page = await handlers.read_events(start, app.deps)
        assert (page.events, page.position) == ([], 8)
        # An unbound key of the organization reads all eight, under the same numbers.
        everyone = stub.StreamEvents(
            notification_pb2.StreamEventsRequest(from_start=True), metadata=key(harness, org)
        )
        assert [(await next_event(everyone)).cursor for _ in range(8)] == [str(n) for n in range(1, 9)]
        everyone.cancel()


async def test_a_bound_key_lists_its_projects_job_deliveries_and_is_refused_the_org_webhooks(
    harness: Harness,
) -> None:
    async with served(harness) as (app, stub):
        org, p, q = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        owner = key(harness, org)
        hook = await stub.CreateWebhook(
            notification_pb2.CreateWebhookRequest(url="http://127.0.0.1:9/org-hook"), metadata=owner
        )
        mine = in_project(job_event(org, webhook_url="http://127.0.0.1:9/p-hook"), p)
        await store(app, mine)
        await store(app, in_project(job_event(org, webhook_url="http://127.0.0.1:9/q-hook"), q))
        await store(app, job_event(org, webhook_url="http://127.0.0.1:9/none-hook"))

        bound = key(harness, org, p)
        listed = await stub.ListDeliveries(notification_pb2.ListDeliveriesRequest(), metadata=bound)
        assert [(d.url, d.job_id, d.webhook_id) for d in listed.deliveries] == [
            ("http://127.0.0.1:9/p-hook", str(mine.data.job.job_id), "")
        ]
        everything = await stub.ListDeliveries(notification_pb2.ListDeliveriesRequest(), metadata=owner)
        assert len(everything.deliveries) == 6

        refusals = [
            stub.ListWebhooks(common_pb2.Empty(), metadata=bound),
            stub.CreateWebhook(
                notification_pb2.CreateWebhookRequest(url="http://127.0.0.1:9/x"), metadata=bound
            ),
            stub.DeleteWebhook(notification_pb2.DeleteWebhookRequest(id=hook.webhook.id), metadata=bound),
            stub.DeleteWebhook(notification_pb2.DeleteWebhookRequest(id=str(uuid.uuid4())), metadata=bound),
            stub.GetJobWebhookSecret(common_pb2.Empty(), metadata=bound),
            stub.ListDeliveries(
                notification_pb2.ListDeliveriesRequest(webhook_id=hook.webhook.id), metadata=bound
            ),
        ]
        details = set()
        for call in refusals:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
            details.add(err.value.details())
        assert not any(hook.webhook.id in (d or "") for d in details)
        still = await stub.ListWebhooks(common_pb2.Empty(), metadata=owner)
        assert [w.id for w in still.webhooks] == [hook.webhook.id]
