"""Billing's handlers over the in-memory unit of work: each attempt of a job billed once whatever is
redelivered, attempts lost to infrastructure credited, tenants apart, paging and its limits. No I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from services.billing.entrypoints.consumers import job_event_handler, to_command
from services.billing.service_layer import commands
from services.billing.service_layer.handlers import CONSUMER, handle
from shared.contracts import jobs
from shared.contracts.limits import DEFAULT_PAGE, MAX_PAGE
from shared.cursors import encode_cursor
from shared.errors import InvalidArgument, NotFound

from .fakes import CommitFailed, fake_dependencies
from .helpers import T0, allocation, job_event, metric, requeued_event

RECORDED = "gpufleet_billing_costs_recorded_total"
USD = "gpufleet_billing_cost_usd_total"
CREDITS = "gpufleet_billing_credits_usd_total"


def record(envelope) -> commands.RecordAttemptCost:  # type: ignore[no-untyped-def]
    cmd = to_command(envelope)
    assert cmd is not None
    return cmd


async def test_a_finished_job_is_billed_and_announced_once_however_often_it_arrives() -> None:
    deps, store = fake_dependencies()
    event = job_event(jobs.JOB_SUCCEEDED, allocation("1.8900", "3.0000", gpu_type="unit-a"))
    before = metric(RECORDED), metric(USD, gpu_type="unit-a")

    first = await handle(record(event), deps)
    again = await handle(record(event), deps)  # redelivery: same event id
    # The same job under another event id (a scheduler that re-emitted its terminal event).
    other = job_event(jobs.JOB_FAILED, list(event.data.job.allocation), job_id=event.data.job.job_id)
    third = await handle(record(other), deps)

    assert first is not None and again is None and third is None
    assert first.total == Decimal("0.81500000")  # (1.89 + 3.00) $/h x 600 s / 3600
    assert list(store.attempts) == [(event.data.job.job_id, 1)]
    assert store.announced == [first]
    assert {(CONSUMER, event.id), (CONSUMER, other.id)} <= store.claims
    assert metric(RECORDED) - before[0] == 1
    assert metric(USD, gpu_type="unit-a") - before[1] == pytest.approx(0.815)


async def test_requeued_then_succeeded_is_two_attempts_one_credited_and_the_job_pays_the_last() -> None:
    deps, store = fake_dependencies()
    org = uuid.uuid4()
    first_gpus = allocation("3.6000", "3.6000", gpu_type="unit-r")
    lost = requeued_event(first_gpus, held=timedelta(minutes=20), org=org, attempt=1)
    job_id = lost.data.job.job_id
    second_gpus = allocation("3.6000", "3.6000", gpu_type="unit-r")
    done = job_event(
        jobs.JOB_SUCCEEDED,
        second_gpus,
        org=org,
        job_id=job_id,
        attempt=2,
        start=T0 + timedelta(minutes=21),
        held=timedelta(minutes=5),
    )
    before = metric(RECORDED), metric(USD, gpu_type="unit-r"), metric(CREDITS, gpu_type="unit-r")

    credited = await handle(record(lost), deps)
    charged = await handle(record(done), deps)
    # Every delivery again, in any order: redelivery and replay bill nothing twice.
    for again in (done, lost, lost, done):
        assert await handle(record(again), deps) is None

    assert credited is not None and credited.credited and credited.attempt == 1
    assert credited.gross == credited.credit == Decimal("2.40000000") and credited.total == 0
    assert charged is not None and charged.attempt == 2 and charged.total == Decimal("0.60000000")
    assert store.announced == [credited, charged]
    job = (await handle(commands.GetJobCost(organization_id=org, job_id=str(job_id)), deps)).cost
    assert [(a.attempt, a.outcome, a.total) for a in job.attempts] == [
        (1, "requeued", Decimal(0)),
        (2, "succeeded", Decimal("0.60000000")),
    ]
    assert job.total == charged.total and job.gross == Decimal("3.00000000") and job.credit == Decimal("2.4")
    assert len(job.lines) == 4 and job.gpu_count == 2 and job.held_seconds == Decimal(300)
    assert metric(RECORDED) - before[0] == 2
    assert metric(USD, gpu_type="unit-r") - before[1] == pytest.approx(0.6)
    assert metric(CREDITS, gpu_type="unit-r") - before[2] == pytest.approx(2.4)


async def test_a_lost_attempt_stays_credited_when_a_terminal_event_names_it_again() -> None:
    """A scheduler that re-emitted attempt 1 as failed, after requeueing it: the attempt is billed
    already (as credited), so nothing is charged for it."""
    deps, store = fake_dependencies()
    gpus = allocation("1.0000")
    lost = requeued_event(gpus, held=timedelta(hours=1), attempt=1)
    stale = job_event(jobs.JOB_FAILED, gpus, job_id=lost.data.job.job_id, org=lost.data.job.organization_id)
    assert await handle(record(lost), deps) is not None
    assert await handle(record(stale), deps) is None
    (job,) = store.costs.values()
    assert job.cost.total == 0 and job.cost.credit == Decimal("1.00000000")


async def test_a_timed_out_attempt_is_billed_like_any_end_of_its_own() -> None:
    deps, store = fake_dependencies()
    before = metric(CREDITS, gpu_type="unit-t")
    event = job_event(jobs.JOB_TIMED_OUT, allocation("7.2000", gpu_type="unit-t"), held=timedelta(minutes=30))
    billed = await handle(record(event), deps)
    assert billed is not None and billed.outcome == "timed_out" and billed.total == Decimal("3.60000000")
    assert billed.credit == 0 and metric(CREDITS, gpu_type="unit-t") == before
    assert store.announced == [billed]


async def test_a_crash_at_commit_leaves_nothing_and_the_redelivery_bills_the_job_once() -> None:
    deps, store = fake_dependencies()
    event = job_event(jobs.JOB_SUCCEEDED, allocation("3.6000", gpu_type="unit-b"), held=timedelta(hours=1))
    before = metric(RECORDED), metric(USD, gpu_type="unit-b")

    store.fail_next_commit = True
    with pytest.raises(CommitFailed):
        await handle(record(event), deps)
    assert store.claims == set() and store.attempts == {} and store.announced == []
    assert (metric(RECORDED), metric(USD, gpu_type="unit-b")) == before  # counted only after commit

    billed = await handle(record(event), deps)  # the broker redelivers: the offset was never committed
    assert billed is not None and billed.total == Decimal("3.60000000")
    assert await handle(record(event), deps) is None
    assert store.announced == [billed] and len(store.attempts) == 1
    assert metric(RECORDED) - before[0] == 1
    assert metric(USD, gpu_type="unit-b") - before[1] == pytest.approx(3.6)


async def test_a_job_that_never_held_a_gpu_is_claimed_but_costs_nothing() -> None:
    deps, store = fake_dependencies()
    event = job_event(jobs.JOB_CANCELLED, [])
    before = metric(RECORDED)
    assert await handle(record(event), deps) is None
    assert store.claims == {(CONSUMER, event.id)}
    assert store.attempts == {} and store.announced == [] and metric(RECORDED) == before


@pytest.mark.parametrize("event_type", [jobs.JOB_SUBMITTED, jobs.JOB_PENDING])
async def test_events_of_a_waiting_job_are_ignored_without_a_unit_of_work(event_type: str) -> None:
    deps, store = fake_dependencies()
    sink = job_event_handler(deps)
    await sink([job_event(event_type, allocation("2.0000"))])
    assert store.commits == 0 and store.claims == set() and store.attempts == {} and store.running == {}


@pytest.mark.parametrize("event_type", [jobs.JOB_SCHEDULED, jobs.JOB_STARTED])
async def test_a_holding_event_tracks_the_attempt_as_running_and_bills_nothing(event_type: str) -> None:
    deps, store = fake_dependencies()
    event = job_event(event_type, allocation("2.0000"))
    await job_event_handler(deps)([event])
    running, ended = store.running[event.data.job.job_id, 1]
    assert ended is None and running.scheduled_at == event.data.job.scheduled_at
    assert store.claims == set() and store.attempts == {} and store.announced == []


async def test_the_consumer_sink_bills_a_terminal_event() -> None:
    deps, store = fake_dependencies()
    event = job_event(jobs.JOB_FAILED, allocation("0.3600"), held=timedelta(seconds=10))
    await job_event_handler(deps)([event])
    assert store.costs[event.data.job.job_id].cost.total == Decimal("0.00100000")


async def test_a_later_attempt_does_not_move_a_job_in_the_listing() -> None:
    """Pages are keyed by when a job was first billed: its next attempt landing mid-walk neither
    repeats nor skips it."""
    deps, _ = fake_dependencies()
    org = uuid.uuid4()
    lost = requeued_event(allocation("1.0000"), org=org)
    await handle(record(lost), deps)
    newer = job_event(jobs.JOB_SUCCEEDED, allocation("1.0000"), org=org)
    await handle(record(newer), deps)
    first = await handle(commands.ListJobCosts(organization_id=org, limit=1), deps)
    assert [c.cost.job_id for c in first.costs] == [newer.data.job.job_id]
    retry = job_event(
        jobs.JOB_SUCCEEDED, allocation("1.0000"), org=org, job_id=lost.data.job.job_id, attempt=2
    )
    await handle(record(retry), deps)
    second = await handle(commands.ListJobCosts(organization_id=org, limit=1, cursor=first.next_cursor), deps)
    (job,) = second.costs
    assert job.cost.job_id == lost.data.job.job_id and len(job.cost.attempts) == 2
    assert job.recorded_at > job.first_recorded_at and second.next_cursor is None


async def test_a_cost_is_shown_to_its_organization_only() -> None:
    deps, _ = fake_dependencies()
    org = uuid.uuid4()
    event = job_event(jobs.JOB_SUCCEEDED, allocation("2.0000"), org=org)
    billed = await handle(record(event), deps)
    job_id = str(event.data.job.job_id)

    found = await handle(commands.GetJobCost(organization_id=org, job_id=job_id), deps)
    assert found.cost.attempts == (billed,) and found.recorded_at > T0

    for stranger, asked in ((uuid.uuid4(), job_id), (org, "not-a-uuid"), (org, ""), (org, str(uuid.uuid4()))):
        with pytest.raises(NotFound):
            await handle(commands.GetJobCost(organization_id=stranger, job_id=asked), deps)


async def test_list_pages_newest_first_with_a_cursor_and_the_page_total() -> None:
    deps, _ = fake_dependencies()
    org = uuid.uuid4()
    events = [
        job_event(jobs.JOB_SUCCEEDED, allocation("1.0000"), org=org, held=timedelta(hours=h))
        for h in (1, 2, 3)
    ]
    for e in events:
        await handle(record(e), deps)
    await handle(record(job_event(jobs.JOB_SUCCEEDED, allocation("9.0000"))), deps)  # another tenant's
    newest_first = [e.data.job.job_id for e in reversed(events)]

    first = await handle(commands.ListJobCosts(organization_id=org, limit=2), deps)
    assert [c.cost.job_id for c in first.costs] == newest_first[:2]
    assert first.total == Decimal(5) and first.next_cursor
    second = await handle(commands.ListJobCosts(organization_id=org, limit=2, cursor=first.next_cursor), deps)
    assert [c.cost.job_id for c in second.costs] == newest_first[2:]
    assert second.total == Decimal(1) and second.next_cursor is None

    everything = await handle(commands.ListJobCosts(organization_id=org), deps)
    assert [c.cost.job_id for c in everything.costs] == newest_first and everything.next_cursor is None
    empty = await handle(commands.ListJobCosts(organization_id=uuid.uuid4()), deps)
    assert empty.costs == [] and empty.total == 0 and empty.next_cursor is None


async def test_the_default_page_is_the_shared_one() -> None:
    deps, _ = fake_dependencies()
    org = uuid.uuid4()
    for _ in range(DEFAULT_PAGE + 1):
        await handle(record(job_event(jobs.JOB_SUCCEEDED, allocation("1.0000"), org=org)), deps)
    page = await handle(commands.ListJobCosts(organization_id=org), deps)
    assert len(page.costs) == DEFAULT_PAGE and page.next_cursor


@pytest.mark.parametrize(
    ("limit", "cursor", "field"),
    [
        (-1, None, "limit"),
        (MAX_PAGE + 1, None, "limit"),
        (0, "not-one-of-ours", "cursor"),
        (0, encode_cursor(T0.replace(tzinfo=None), uuid.uuid4()), "cursor"),  # a naive time: never ours
    ],
)
async def test_bad_paging_arguments_are_refused(limit: int, cursor: str | None, field: str) -> None:
    deps, store = fake_dependencies()
    with pytest.raises(InvalidArgument) as err:
        await handle(commands.ListJobCosts(organization_id=uuid.uuid4(), limit=limit, cursor=cursor), deps)
    assert err.value.field == field and store.commits == 0


async def test_a_command_without_a_handler_is_a_wiring_error() -> None:
    @dataclass(frozen=True)
    class RefundJob:
        job_id: uuid.UUID

    deps, _ = fake_dependencies()
    with pytest.raises(TypeError, match="RefundJob"):
        await handle(RefundJob(uuid.uuid4()), deps)


async def test_a_batch_of_events_is_one_unit_of_work_and_bills_each_attempt_once() -> None:
    deps, store = fake_dependencies()
    alloc = allocation("0.3600")
    started = job_event(jobs.JOB_STARTED, alloc)
    job = started.data.job
    ended = job_event(
        jobs.JOB_FAILED, alloc, job_id=job.job_id, org=job.organization_id, held=timedelta(seconds=10)
    )
    await job_event_handler(deps)([started, job_event(jobs.JOB_SUBMITTED, alloc), ended, ended, started])
    assert store.commits == 1
    assert store.costs[job.job_id].cost.total == Decimal("0.00100000")
    assert len(store.announced) == 1
    assert store.running[job.job_id, 1][1] is not None  # the replayed start did not revive it
