"""The event log and stream over in-memory fakes: the CloudEvent kept, the cursor codec, which types a
key's scopes let it read, where a stream starts, and the stream itself (backlog, live, heartbeats)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.notification.domain import event_log
from services.notification.domain.event_log import (
    COST_TYPES,
    JOB_TYPES,
    check_position,
    decode_cursor,
    encode_cursor,
    readable_types,
)
from services.notification.entrypoints.consumers import to_command, to_cost_command
from services.notification.service_layer import commands, event_stream, handlers
from services.notification.service_layer.event_stream import EventSignal, Heartbeat
from services.notification.service_layer.handlers import Dependencies
from shared import scopes
from shared.contracts import costs, jobs
from shared.errors import InvalidArgument, PermissionDenied
from shared.events import Envelope

from .fakes import FakeUnitOfWorkFactory

ORG, OTHER = uuid.uuid4(), uuid.uuid4()
AT = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def deps() -> Dependencies:
    return Dependencies(uow=FakeUnitOfWorkFactory(), allow_private_targets=True)


def job_event(
    event_type: str = jobs.JOB_SUCCEEDED, org: uuid.UUID = ORG, job: uuid.UUID | None = None
) -> Envelope:
    snapshot = jobs.JobSnapshotV1(
        job_id=job or uuid.uuid4(),
        organization_id=org,
        status="succeeded",
        command="echo <hi>",
        gpu_count=1,
        gpu_memory_mb=0,
        priority=0,
        created_at=AT,
    )
    return Envelope(
        type=event_type,
        source="gpufleet/scheduler",
        data=jobs.JobEventV1(job=snapshot, previous_status="running"),
        subject=str(snapshot.job_id),
        organization_id=str(org),
        time=AT,
    )


def cost_event(org: uuid.UUID = ORG) -> Envelope:
    job = uuid.uuid4()
    return Envelope(
        type=costs.COST_RECORDED,
        source="gpufleet/billing",
        data=costs.CostRecordedV1(
            job_id=job,
            organization_id=org,
            total_cost=Decimal("1.25"),
            gpu_count=1,
            held_seconds=Decimal(3600),
            start_time=AT,
            end_time=AT + timedelta(hours=1),
            lines=[],
        ),
        subject=str(job),
        organization_id=str(org),
        time=AT,
    )


# --- the domain


def test_the_cloudevent_is_structured_mode_with_the_topics_attributes() -> None:
    env = job_event()
    cmd = to_command(env)
    event = json.loads(handlers.logged_event(cmd).cloudevent)
    assert event == {
        "specversion": "1.0",
        "id": str(env.id),
        "source": "gpufleet/scheduler",
        "type": jobs.JOB_SUCCEEDED,
        "time": "2025-01-01T12:00:00Z",
        "subject": str(env.data.job.job_id),
        "datacontenttype": "application/json",
        "organizationid": str(ORG),
        "data": env.data.model_dump(mode="json"),
    }
    assert "\n" not in handlers.logged_event(cmd).cloudevent


@pytest.mark.parametrize("seq", [0, 1, 42, 2**63 - 1])
def test_cursor_round_trip(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


@pytest.mark.parametrize("bad", ["", "abc", "-1", "1.5", " 7", "9" * 20, str(2**63), "１２"])
def test_a_cursor_the_stream_never_sent_is_invalid(bad: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        decode_cursor(bad)
    assert err.value.field == "last_event_id"


def test_a_cursor_ahead_of_the_log_is_invalid() -> None:
    check_position(5, 5)
    with pytest.raises(InvalidArgument) as err:
        check_position(6, 5)
    assert err.value.field == "last_event_id"


def test_scopes_decide_which_kinds_a_key_reads() -> None:
    assert readable_types(scopes.granted(["jobs:read"])) == JOB_TYPES
    assert readable_types(scopes.granted(["costs:read"])) == COST_TYPES
    assert readable_types(scopes.granted(["jobs:write", "costs:read"])) == (*JOB_TYPES, *COST_TYPES)
    assert readable_types(scopes.granted([])) == (*JOB_TYPES, *COST_TYPES)  # unrestricted key
    assert readable_types(scopes.granted(["admin"])) == (*JOB_TYPES, *COST_TYPES)
    with pytest.raises(PermissionDenied) as err:
        readable_types(scopes.granted(["fleet:read"]))
    assert err.value.field == "scopes"


def test_named_types_are_checked_and_kept_in_canonical_order() -> None:
    granted = scopes.granted(["jobs:read"])
    assert readable_types(granted, [jobs.JOB_SUCCEEDED, jobs.JOB_STARTED, jobs.JOB_SUCCEEDED]) == (
        jobs.JOB_STARTED,
        jobs.JOB_SUCCEEDED,
    )
    with pytest.raises(PermissionDenied) as denied:
        readable_types(granted, [costs.COST_RECORDED])
    assert denied.value.details == {"required_scope": "costs:read"}
    with pytest.raises(InvalidArgument) as unknown:
        readable_types(granted, ["gpufleet.gpu.registered"])
    assert unknown.value.field == "types"


# --- the consumers' side


async def test_job_and_cost_events_are_logged_once_per_event_id() -> None:
    d = deps()
    env, cost = job_event(), cost_event()
    await handlers.notify_job_event(to_command(env), d)
    await handlers.notify_job_event(to_command(env), d)  # redelivered
    await handlers.notify_cost_event(to_cost_command(cost), d)
    await handlers.notify_cost_event(to_cost_command(cost), d)
    await handlers.notify_job_event(to_command(job_event(org=OTHER)), d)
    mine = [(e.seq, e.event_id, e.type) for org, e, _ in d.uow.store.log if org == ORG]
    assert mine == [(1, env.id, jobs.JOB_SUCCEEDED), (2, cost.id, costs.COST_RECORDED)]
    assert d.uow.store.heads == {ORG: 2, OTHER: 1}  # numbered per organization


async def test_a_cost_event_reaches_only_webhooks_subscribed_to_it_with_its_id() -> None:
    d = deps()
    wants = await handlers.create_webhook(
        commands.CreateWebhook(ORG, "http://a.example/c", ("cost.recorded",)), d
    )
    await handlers.create_webhook(commands.CreateWebhook(ORG, "http://b.example/all"), d)  # job events only
    cost = cost_event()
    assert await handlers.notify_cost_event(to_cost_command(cost), d) == 1
    (delivery,) = d.uow.store.deliveries.values()
    assert (delivery.webhook_id, delivery.event_id, delivery.event_type) == (
        wants.webhook.id,
        cost.id,
        "cost.recorded",
    )
    body = json.loads(delivery.payload)
    assert body["id"] == str(cost.id) and body["data"]["total_cost"] == "1.25"


async def test_where_a_stream_starts() -> None:
    d = deps()
    for _ in range(3):
        await handlers.notify_job_event(to_command(job_event()), d)
    open_ = commands.OpenEventStream
    assert (await handlers.open_event_stream(open_(ORG, ("jobs:read",)), d)).after == 3  # new events only
    assert (await handlers.open_event_stream(open_(ORG, ("jobs:read",), from_start=True), d)).after == 0
    resumed = await handlers.open_event_stream(open_(ORG, ("jobs:read",), after="2", from_start=True), d)
    assert resumed.after == 2 and resumed.types == JOB_TYPES
    with pytest.raises(InvalidArgument):
        await handlers.open_event_stream(open_(ORG, ("jobs:read",), after="4"), d)
    # Another organization's numbers are not this one's: its log is empty, so 1 is ahead of it.
    with pytest.raises(InvalidArgument):
        await handlers.open_event_stream(open_(OTHER, ("jobs:read",), after="1"), d)


async def test_retention_by_count_and_age() -> None:
    d = deps()
    for _ in range(5):
        await handlers.notify_job_event(to_command(job_event()), d)
    assert await handlers.prune_event_log(commands.PruneEventLog(timedelta(days=1), keep=3), d) == 2
    assert [e.seq for _, e, _ in d.uow.store.log] == [3, 4, 5]
    d.uow.store.now += timedelta(days=2)
    assert await handlers.prune_event_log(commands.PruneEventLog(timedelta(days=1), keep=3), d) == 3
    # A cursor older than what was kept resumes at the oldest kept: nothing left, nothing sent.
    start = await handlers.open_event_stream(commands.OpenEventStream(ORG, (), after="1"), d)
    page = await handlers.read_events(start, d)
    assert page.events == [] and page.position == 5


# --- the stream


async def _next(it, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(anext(it), timeout)


async def _next_event(it):  # type: ignore[no-untyped-def]
    """The next event, past any heartbeat (on a slow machine one may come first)."""
    while isinstance(item := await _next(it), Heartbeat):
        pass
    return item


async def test_stream_sends_the_backlog_then_live_events_then_heartbeats() -> None:
    d = deps()
    job = uuid.uuid4()
    first = job_event(jobs.JOB_STARTED, job=job)
    await handlers.notify_job_event(to_command(first), d)
    await handlers.notify_job_event(to_command(job_event(jobs.JOB_STARTED)), d)  # another job
    start = await handlers.open_event_stream(
        commands.OpenEventStream(ORG, ("jobs:read",), from_start=True, job_id=job), d
    )

    async def read(q: commands.ReadEvents) -> event_stream.EventPage:
        return await handlers.read_events(q, d)

    it = event_stream.stream(start, read, d.events, heartbeat_seconds=0.2)
    assert isinstance(await _next(it), Heartbeat)  # open: the request was accepted
    got = await _next(it)
    assert (got.event_id, got.cursor) == (first.id, "1")

    later = job_event(jobs.JOB_SUCCEEDED, job=job)
    waiting = asyncio.ensure_future(_next_event(it))
    await asyncio.sleep(0)
    await handlers.notify_job_event(to_command(job_event(jobs.JOB_FAILED, org=OTHER, job=job)), d)
    await handlers.notify_job_event(to_command(later), d)
    got = await waiting
    assert (got.event_id, got.cursor, got.type) == (later.id, "3", jobs.JOB_SUCCEEDED)
    assert isinstance(await _next(it), Heartbeat)  # nothing more for this stream: a heartbeat
    await it.aclose()
    assert d.events.listening() == 0


async def test_a_long_backlog_is_read_in_pages_in_order() -> None:
    d = deps()
    sent = [job_event() for _ in range(event_stream.PAGE + 5)]
    for env in sent:
        await handlers.notify_job_event(to_command(env), d)
    start = await handlers.open_event_stream(commands.OpenEventStream(ORG, (), from_start=True), d)

    async def read(q: commands.ReadEvents) -> event_stream.EventPage:
        return await handlers.read_events(q, d)

    it = event_stream.stream(start, read, EventSignal(), heartbeat_seconds=30)
    assert isinstance(await _next(it), Heartbeat)
    got = [await _next(it) for _ in sent]
    assert [e.event_id for e in got] == [e.id for e in sent]
    assert [int(e.cursor) for e in got] == list(range(1, len(sent) + 1))
    await it.aclose()


def test_signal_wakes_only_its_organization() -> None:
    signal = EventSignal()
    with signal.listen(ORG) as mine, signal.listen(OTHER) as theirs:
        signal.notify(ORG)
        assert mine.is_set() and not theirs.is_set()
        signal.notify_all()
        assert theirs.is_set()
    assert signal.listening() == 0


def test_event_types_are_the_topics() -> None:
    assert set(event_log.STREAM_TYPES) == set(jobs.EVENT_TYPES) | set(costs.EVENT_TYPES)
    assert event_log.scope_of(costs.COST_RECORDED) == "costs:read"
    assert event_log.scope_of(jobs.JOB_PENDING) == "jobs:read"
