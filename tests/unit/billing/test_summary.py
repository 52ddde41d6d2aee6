"""The cost summary's rules (window, grouping keys, money) and its handler over the fake unit of work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.billing.domain.summary import (
    CostGroup,
    GroupedSums,
    Window,
    group_by,
    money,
    summary,
    window,
)
from services.billing.entrypoints.consumers import job_event_handler, to_running_command
from services.billing.entrypoints.grpc_server import summary_to_proto
from services.billing.service_layer import commands
from services.billing.service_layer.handlers import Dependencies, handle
from shared.contracts import jobs
from shared.errors import InvalidArgument

from .fakes import fake_dependencies
from .helpers import T0, allocation, job_event

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def group(key: str, cost: str, running: str = "0", seconds: str = "0", jobs_: int = 1) -> CostGroup:
    return CostGroup(key, Decimal(seconds), Decimal(cost), Decimal(running), jobs_)


@pytest.mark.parametrize("key", ["day", "gpu_type", "project"])
def test_the_three_groupings_are_accepted(key: str) -> None:
    assert group_by(key) == key


@pytest.mark.parametrize("key", ["", "week", "DAY", "gpu", "project; DROP TABLE"])
def test_any_other_grouping_is_refused_naming_the_field(key: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        group_by(key)
    assert err.value.field == "group_by"


def test_the_default_window_is_the_30_days_up_to_now() -> None:
    assert window(None, None, NOW) == Window(NOW - timedelta(days=30), NOW)
    end = NOW - timedelta(days=3)
    assert window(None, end, NOW) == Window(end - timedelta(days=30), end)
    start = NOW - timedelta(hours=1)
    assert window(start, None, NOW) == Window(start, NOW)


@pytest.mark.parametrize(
    ("start", "end"),
    [(NOW, NOW), (NOW, NOW - timedelta(seconds=1)), (NOW - timedelta(days=367), NOW)],
)
def test_an_empty_reversed_or_too_long_window_is_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(InvalidArgument) as err:
        window(start, end, NOW)
    assert err.value.field == "from"


def test_a_window_of_exactly_the_longest_span_is_accepted() -> None:
    assert window(NOW - timedelta(days=366), NOW, NOW).start == NOW - timedelta(days=366)


def test_money_is_eight_places_rounded_half_even() -> None:
    assert str(money(Decimal("0.000000005"))) == "0E-8"  # half to even: down to 0
    assert format(money(Decimal("0.000000015")), "f") == "0.00000002"
    assert format(money(Decimal("7.2")), "f") == "7.20000000"
    assert format(money(None), "f") == "0.00000000"


def test_the_summary_orders_groups_and_its_money_is_the_sum_of_the_groups() -> None:
    sums = GroupedSums(
        [group("2026-12-02", "3.61666667", "19.2"), group("2026-12-01", "4.93333333", "0.5")],
        CostGroup("", Decimal("62460"), Decimal("999"), Decimal("999"), 6),  # the database's money: unused
    )
    win = Window(NOW - timedelta(days=2), NOW)
    s = summary("day", win, NOW, True, sums)
    assert [g.key for g in s.groups] == ["2026-12-01", "2026-12-02"]
    assert (s.total.cost, s.total.running_cost) == (Decimal("8.55000000"), Decimal("19.70000000"))
    assert (s.total.gpu_seconds, s.total.jobs, s.total.key) == (Decimal("62460"), 6, "")


def test_the_wire_carries_money_as_decimal_strings() -> None:
    sums = GroupedSums([group("a100", "0.1", "0.00000001", "12.5")], group("", "0", seconds="12.5"))
    reply = summary_to_proto(summary("gpu_type", Window(T0, NOW), NOW, True, sums))
    assert [(g.key, g.cost, g.running_cost, g.gpu_seconds) for g in reply.groups] == [
        ("a100", "0.1", "0.00000001", "12.5")
    ]
    assert (reply.total.cost, reply.total.running_cost) == ("0.10000000", "0.00000001")
    assert (reply.as_of, reply.to_time, reply.group_by) == (
        "2026-12-02T12:00:00Z",
        "2026-12-02T12:00:00Z",
        "gpu_type",
    )


async def test_the_handler_asks_as_the_tenant_and_values_running_jobs_at_its_clock() -> None:
    deps, store = fake_dependencies()
    clocked = Dependencies(uow=deps.uow, clock=lambda: NOW)
    org = uuid.uuid4()
    store.sums = GroupedSums([group("", "1.5")], group("", "0"))
    s = await handle(commands.SummarizeCosts(org, "project", include_running=False), clocked)
    ((asked_org, by, win, as_of, include_running, unit_org),) = store.summary_calls
    assert (asked_org, unit_org, by, as_of, include_running) == (org, org, "project", NOW, False)
    assert win == Window(NOW - timedelta(days=30), NOW)
    assert s.total.cost == Decimal("1.5") and s.include_running is False


async def test_the_handler_refuses_a_bad_grouping_before_any_unit_of_work() -> None:
    deps, store = fake_dependencies()
    with pytest.raises(InvalidArgument):
        await handle(commands.SummarizeCosts(uuid.uuid4(), "month"), deps)
    assert store.summary_calls == [] and store.commits == 0


@pytest.mark.parametrize("event_type", [jobs.JOB_SCHEDULED, jobs.JOB_STARTED])
def test_a_holding_event_becomes_a_running_attempt(event_type: str) -> None:
    alloc = allocation("2.0000", "3.5000", gpu_type="h100")
    event = job_event(event_type, alloc, attempt=2)
    cmd = to_running_command(event)
    assert cmd is not None
    job = event.data.job
    assert (cmd.attempt.job_id, cmd.attempt.attempt, cmd.attempt.scheduled_at) == (job.job_id, 2, T0)
    assert [(g.gpu_id, g.gpu_type, g.cost_per_hour) for g in cmd.attempt.allocation] == [
        (a.gpu_id, "h100", a.cost_per_hour) for a in alloc
    ]


@pytest.mark.parametrize(
    "event_type",
    [
        jobs.JOB_SUBMITTED,
        jobs.JOB_PENDING,
        jobs.JOB_TIME_LIMIT_WARNING,
        jobs.JOB_SUCCEEDED,
        jobs.JOB_CANCELLED,
    ],
)
def test_other_events_are_no_running_attempt(event_type: str) -> None:
    assert to_running_command(job_event(event_type, allocation("2.0000"))) is None


def test_a_scheduled_event_without_gpus_is_no_running_attempt() -> None:
    assert to_running_command(job_event(jobs.JOB_SCHEDULED, [])) is None


async def test_the_end_of_an_attempt_ends_its_running_record_in_the_same_unit() -> None:
    deps, store = fake_dependencies()
    alloc = allocation("1.0000")
    started = job_event(jobs.JOB_STARTED, alloc)
    job_id = started.data.job.job_id
    sink = job_event_handler(deps)
    await sink([started])
    await sink([job_event(jobs.JOB_SUCCEEDED, alloc, job_id=job_id, org=started.data.job.organization_id)])
    (_, ended) = store.running[job_id, 1]
    assert ended == T0 + timedelta(minutes=10)
    await sink([started])  # replayed after the end: billed already, nothing runs again
    assert store.running[job_id, 1][1] == ended
