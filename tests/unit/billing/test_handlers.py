"""Billing's handlers over the in-memory unit of work: each job billed once whatever is redelivered,
tenants apart, paging and its limits. No I/O."""

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
from .helpers import T0, allocation, job_event, metric

RECORDED = "gpufleet_billing_costs_recorded_total"
USD = "gpufleet_billing_cost_usd_total"


def record(envelope) -> commands.RecordJobCost:  # type: ignore[no-untyped-def]
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
    assert list(store.costs) == [event.data.job.job_id]
    assert store.announced == [first]
    assert {(CONSUMER, event.id), (CONSUMER, other.id)} <= store.claims
    assert metric(RECORDED) - before[0] == 1
    assert metric(USD, gpu_type="unit-a") - before[1] == pytest.approx(0.815)


async def test_a_crash_at_commit_leaves_nothing_and_the_redelivery_bills_the_job_once() -> None:
    deps, store = fake_dependencies()
    event = job_event(jobs.JOB_SUCCEEDED, allocation("3.6000", gpu_type="unit-b"), held=timedelta(hours=1))
    before = metric(RECORDED), metric(USD, gpu_type="unit-b")

    store.fail_next_commit = True
    with pytest.raises(CommitFailed):
        await handle(record(event), deps)
    assert store.claims == set() and store.costs == {} and store.announced == []
    assert (metric(RECORDED), metric(USD, gpu_type="unit-b")) == before  # counted only after commit

    billed = await handle(record(event), deps)  # the broker redelivers: the offset was never committed
    assert billed is not None and billed.total == Decimal("3.60000000")
    assert await handle(record(event), deps) is None
    assert store.announced == [billed] and len(store.costs) == 1
    assert metric(RECORDED) - before[0] == 1
    assert metric(USD, gpu_type="unit-b") - before[1] == pytest.approx(3.6)


async def test_a_job_that_never_held_a_gpu_is_claimed_but_costs_nothing() -> None:
    deps, store = fake_dependencies()
    event = job_event(jobs.JOB_CANCELLED, [])
    before = metric(RECORDED)
    assert await handle(record(event), deps) is None
    assert store.claims == {(CONSUMER, event.id)}
    assert store.costs == {} and store.announced == [] and metric(RECORDED) == before


@pytest.mark.parametrize("event_type", [jobs.JOB_SUBMITTED, jobs.JOB_SCHEDULED, jobs.JOB_STARTED])
async def test_non_terminal_events_are_ignored_without_a_unit_of_work(event_type: str) -> None:
    deps, store = fake_dependencies()
    sink = job_event_handler(deps)
    await sink(job_event(event_type, allocation("2.0000")))
    assert store.commits == 0 and store.claims == set() and store.costs == {}


async def test_the_consumer_sink_bills_a_terminal_event() -> None:
    deps, store = fake_dependencies()
    event = job_event(jobs.JOB_FAILED, allocation("0.3600"), held=timedelta(seconds=10))
    await job_event_handler(deps)(event)
    assert store.costs[event.data.job.job_id].cost.total == Decimal("0.00100000")


async def test_a_cost_is_shown_to_its_organization_only() -> None:
    deps, _ = fake_dependencies()
    org = uuid.uuid4()
    event = job_event(jobs.JOB_SUCCEEDED, allocation("2.0000"), org=org)
    billed = await handle(record(event), deps)
    job_id = str(event.data.job.job_id)

    found = await handle(commands.GetJobCost(organization_id=org, job_id=job_id), deps)
    assert found.cost == billed and found.recorded_at > T0

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
