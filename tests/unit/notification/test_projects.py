"""Projects in notification, no I/O: the event log and deliveries keep each event's project; a
project-bound key streams only its project's events (cursors skip, never renumber), lists only its
project's job-URL deliveries, and may not touch the organization's webhooks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.notification.domain.projects import event_visible, refuse_bound_key
from services.notification.entrypoints.consumers import to_command, to_cost_command
from services.notification.service_layer import commands, event_stream, handlers
from services.notification.service_layer.event_stream import Heartbeat
from services.notification.service_layer.handlers import Dependencies
from shared.contracts import costs, jobs
from shared.errors import PermissionDenied
from shared.events import Envelope

from .fakes import FakeUnitOfWorkFactory

ORG = uuid.uuid4()
P, Q = uuid.uuid4(), uuid.uuid4()
AT = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
READ = ("jobs:read", "costs:read")


def deps() -> Dependencies:
    return Dependencies(uow=FakeUnitOfWorkFactory(), allow_private_targets=True)


def job_event(
    project: uuid.UUID | None, *, job: uuid.UUID | None = None, webhook_url: str | None = None
) -> Envelope:
    snapshot = jobs.JobSnapshotV1(
        job_id=job or uuid.uuid4(),
        organization_id=ORG,
        status="succeeded",
        command="true",
        gpu_count=1,
        gpu_memory_mb=0,
        priority=0,
        created_at=AT,
        webhook_url=webhook_url,
        project_id=project,
    )
    return Envelope(
        type=jobs.JOB_SUCCEEDED,
        source="gpufleet/scheduler",
        data=jobs.JobEventV1(job=snapshot, previous_status="running"),
        subject=str(snapshot.job_id),
        organization_id=str(ORG),
        time=AT,
    )


def cost_event(project: uuid.UUID | None) -> Envelope:
    job = uuid.uuid4()
    return Envelope(
        type=costs.COST_RECORDED,
        source="gpufleet/billing",
        data=costs.CostRecordedV1(
            job_id=job,
            organization_id=ORG,
            total_cost=Decimal("1.25"),
            gpu_count=1,
            held_seconds=Decimal(3600),
            start_time=AT,
            end_time=AT + timedelta(hours=1),
            lines=[],
            project_id=project,
        ),
        subject=str(job),
        organization_id=str(ORG),
        time=AT,
    )


def test_the_converters_carry_the_events_project() -> None:
    assert to_command(job_event(P)).project_id == P
    assert to_command(job_event(None)).project_id is None
    assert to_cost_command(cost_event(Q)).project_id == Q
    assert to_cost_command(cost_event(None)).project_id is None


def test_the_rules() -> None:
    assert event_visible(None, None) and event_visible(P, None) and event_visible(P, P)
    assert not event_visible(Q, P) and not event_visible(None, P)
    refuse_bound_key(None, "do it")
    with pytest.raises(PermissionDenied):
        refuse_bound_key(P, "do it")


async def log(d: Dependencies, *envelopes: Envelope) -> None:
    for env in envelopes:
        if env.type == costs.COST_RECORDED:
            await handlers.notify_cost_event(to_cost_command(env), d)
        else:
            await handlers.notify_job_event(to_command(env), d)


async def test_a_bound_key_reads_only_its_projects_events_and_resumes_past_the_others() -> None:
    d = deps()
    # seq: 1 P job, 2 Q job, 3 no project, 4 P cost, 5 Q cost, 6 P job
    sent = [job_event(P), job_event(Q), job_event(None), cost_event(P), cost_event(Q), job_event(P)]
    await log(d, *sent)

    start = await handlers.open_event_stream(
        commands.OpenEventStream(ORG, READ, from_start=True, bound_project=P), d
    )
    page = await handlers.read_events(start, d)
    assert [(e.seq, e.event_id) for e in page.events] == [(1, sent[0].id), (4, sent[3].id), (6, sent[5].id)]
    assert page.position == 6
    # Resuming from a cursor it was sent skips what is not its project's, without renumbering.
    resumed = await handlers.open_event_stream(
        commands.OpenEventStream(ORG, READ, after="1", bound_project=P), d
    )
    assert [e.cursor for e in (await handlers.read_events(resumed, d)).events] == ["4", "6"]
    # An unbound key of the organization reads everything, under the same numbers.
    everything = await handlers.open_event_stream(commands.OpenEventStream(ORG, READ, from_start=True), d)
    assert [e.seq for e in (await handlers.read_events(everything, d)).events] == [1, 2, 3, 4, 5, 6]
    # A job filter naming another project's job finds nothing for a bound key.
    other_job = sent[1].data.job.job_id
    foreign = await handlers.open_event_stream(
        commands.OpenEventStream(ORG, READ, from_start=True, job_id=other_job, bound_project=P), d
    )
    assert (await handlers.read_events(foreign, d)).events == []


async def _next_event(it):  # type: ignore[no-untyped-def]
    while isinstance(item := await asyncio.wait_for(anext(it), 5.0), Heartbeat):
        pass
    return item


async def test_a_bound_keys_live_stream_skips_other_projects() -> None:
    d = deps()
    start = await handlers.open_event_stream(commands.OpenEventStream(ORG, READ, bound_project=P), d)

    async def read(q: commands.ReadEvents) -> event_stream.EventPage:
        return await handlers.read_events(q, d)

    it = event_stream.stream(start, read, d.events, heartbeat_seconds=0.2)
    assert isinstance(await asyncio.wait_for(anext(it), 5.0), Heartbeat)
    waiting = asyncio.ensure_future(_next_event(it))
    await asyncio.sleep(0)
    mine = job_event(P)
    await log(d, job_event(Q), cost_event(None), mine)
    got = await waiting
    assert (got.event_id, got.cursor) == (mine.id, "3")
    await it.aclose()


async def test_a_bound_key_lists_only_its_projects_job_url_deliveries() -> None:
    d = deps()
    hook = await handlers.create_webhook(commands.CreateWebhook(ORG, "http://org.example/all"), d)
    mine, theirs = (
        job_event(P, webhook_url="http://p.example/hook"),
        job_event(Q, webhook_url="http://q.example/h"),
    )
    await log(d, mine, theirs, job_event(None, webhook_url="http://none.example/h"))
    listed = await handlers.list_deliveries(commands.ListDeliveries(ORG, bound_project=P), d)
    assert [(x.url, x.job_id, x.project_id) for x in listed] == [
        ("http://p.example/hook", mine.data.job.job_id, P)
    ]
    everything = await handlers.list_deliveries(commands.ListDeliveries(ORG), d)
    assert len(everything) == 6  # each of the three events to the org webhook and to its job's URL
    by_job = await handlers.list_deliveries(
        commands.ListDeliveries(ORG, job_id=theirs.data.job.job_id, bound_project=P), d
    )
    assert by_job == []  # another project's job answers as a job with no deliveries
    with pytest.raises(PermissionDenied):
        await handlers.list_deliveries(
            commands.ListDeliveries(ORG, webhook_id=hook.webhook.id, bound_project=P), d
        )


async def test_a_bound_key_may_not_touch_the_organizations_webhooks() -> None:
    d = deps()
    hook = await handlers.create_webhook(commands.CreateWebhook(ORG, "http://org.example/all"), d)
    refused = [
        commands.CreateWebhook(ORG, "http://p.example/mine", bound_project=P),
        commands.ListWebhooks(ORG, bound_project=P),
        commands.DeleteWebhook(ORG, str(hook.webhook.id), bound_project=P),
        commands.DeleteWebhook(ORG, str(uuid.uuid4()), bound_project=P),  # the same for any id
        commands.GetJobWebhookSecret(ORG, "owner", bound_project=P),
    ]
    for cmd in refused:
        with pytest.raises(PermissionDenied):
            await handlers.handle(cmd, d)
    assert list(d.uow.store.webhooks) == [hook.webhook.id]
    assert [w.id for w in await handlers.handle(commands.ListWebhooks(ORG), d)] == [hook.webhook.id]
