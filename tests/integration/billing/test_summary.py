"""The cost summary against real PostgreSQL: grouped sums equal hand-computed values, lines split at UTC
midnight and at the window's edges, running attempts valued at the request's instant, tenants apart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from gpufleet.v1 import billing_pb2

from services.billing.domain.summary import CostSummary
from services.billing.entrypoints.consumers import job_event_handler
from services.billing.service_layer import commands
from services.billing.service_layer.handlers import Dependencies, handle
from shared.contracts import jobs
from shared.errors import InvalidArgument
from shared.wire import dec

from .conftest import Billing, gpu, job_event, requeued_event

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
FROM, TO = datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def deps_at(billing: Billing, now: datetime = NOW) -> Dependencies:
    return Dependencies(uow=billing.app.deps.uow, clock=lambda: now)


async def feed(deps: Dependencies, *envelopes) -> None:  # type: ignore[no-untyped-def]
    sink = job_event_handler(deps)
    for envelope in envelopes:
        await sink([envelope])


async def summarize(deps: Dependencies, org: uuid.UUID, by: str, **kw) -> CostSummary:  # type: ignore[no-untyped-def]
    kw.setdefault("start", FROM)
    kw.setdefault("end", TO)
    return await handle(commands.SummarizeCosts(organization_id=org, group_by=by, **kw), deps)


def table(s: CostSummary) -> dict[str, tuple[str, str, str, int]]:
    """Each group as the wire shows it (decimal strings)."""
    return {g.key: (dec(g.gpu_seconds), dec(g.cost), dec(g.running_cost), g.jobs) for g in s.groups}


async def a_month_of_costs(billing: Billing) -> uuid.UUID:
    """One organization's jobs (prices per GPU-hour):

    J1  a100 3.60, 23:00 Dec 1 -> 01:00 Dec 2        7.20 = 3.60 + 3.60 (split at midnight)
    J2  h100 1.00, 10:00 Dec 1, 20 min               0.33333333
    J3  t4   1.00, 23:59 Dec 2, 3 min                0.05: 0.01666667 on Dec 2, the rest after the window
    J4  a100 2.00, attempt 1 lost (credited, out), attempt 2 07:00 Dec 1, 30 min: 1.00
    J5  2 x a100 3.60, running since 11:00 Dec 2     7.20 so far at noon
    J6  t4   1.00, running since 23:30 Dec 1         0.50 on Dec 1, 12.00 on Dec 2
    J7  a100 3.60, Nov 20: before the window
    """
    org = uuid.uuid4()
    deps = deps_at(billing)
    j4 = uuid.uuid4()
    await feed(
        deps,
        job_event(org, [gpu("3.6000", "a100")], scheduled=at(1, 23), held=timedelta(hours=2)),
        job_event(org, [gpu("1.0000", "h100")], scheduled=at(1, 10), held=timedelta(minutes=20)),
        job_event(org, [gpu("1.0000", "t4")], scheduled=at(2, 23, 59), held=timedelta(minutes=3)),
        requeued_event(org, [gpu("2.0000", "a100")], held=timedelta(hours=1), scheduled=at(1, 5), job_id=j4),
        job_event(
            org, [gpu("2.0000", "a100")], scheduled=at(1, 7), held=timedelta(minutes=30), job_id=j4, attempt=2
        ),
        job_event(
            org,
            [gpu("3.6000", "a100"), gpu("3.6000", "a100")],
            scheduled=at(2, 11),
            event_type=jobs.JOB_STARTED,
        ),
        job_event(org, [gpu("1.0000", "t4")], scheduled=at(1, 23, 30), event_type=jobs.JOB_SCHEDULED),
        job_event(org, [gpu("3.6000", "a100")], scheduled=at(20, 8, month=11), held=timedelta(hours=1)),
    )
    return org


async def test_costs_by_day_split_at_midnight_with_running_jobs_so_far(billing: Billing) -> None:
    org = await a_month_of_costs(billing)
    s = await summarize(deps_at(billing), org, "day")
    assert table(s) == {
        "2026-12-01": ("8400.000000", "4.93333333", "0.50000000", 4),  # J1 J2 J4 J6
        "2026-12-02": ("54060.000000", "3.61666667", "19.20000000", 4),  # J1 J3 J5 J6
    }
    assert (dec(s.total.cost), dec(s.total.running_cost), s.total.jobs) == ("8.55000000", "19.70000000", 6)
    assert dec(s.total.gpu_seconds) == "62460.000000"
    assert (s.as_of, s.window.start, s.window.end, s.currency) == (NOW, FROM, TO, "USD")


async def test_costs_by_gpu_type_and_by_project(billing: Billing) -> None:
    org = await a_month_of_costs(billing)
    by_type = await summarize(deps_at(billing), org, "gpu_type")
    assert table(by_type) == {
        "a100": ("16200.000000", "8.20000000", "7.20000000", 3),
        "h100": ("1200.000000", "0.33333333", "0.00000000", 1),
        "t4": ("45060.000000", "0.01666667", "12.50000000", 2),
    }
    by_project = await summarize(deps_at(billing), org, "project")
    assert table(by_project) == {"": ("62460.000000", "8.55000000", "19.70000000", 6)}
    assert by_project.total == by_type.total


async def test_without_running_jobs_only_ended_attempts_count(billing: Billing) -> None:
    org = await a_month_of_costs(billing)
    s = await summarize(deps_at(billing), org, "day", include_running=False)
    assert table(s) == {
        "2026-12-01": ("6600.000000", "4.93333333", "0.00000000", 3),
        "2026-12-02": ("3660.000000", "3.61666667", "0.00000000", 2),
    }
    assert (dec(s.total.cost), dec(s.total.running_cost), s.total.jobs) == ("8.55000000", "0.00000000", 4)


async def test_a_window_cuts_lines_and_the_parts_add_up_to_the_line(billing: Billing) -> None:
    """Summaries of adjacent windows add up to the summary of both, to the last digit."""
    org = uuid.uuid4()
    deps = deps_at(billing)
    await feed(deps, job_event(org, [gpu("1.0000", "t4")], scheduled=at(1, 10), held=timedelta(seconds=7)))
    cut = at(1, 10) + timedelta(seconds=3)
    left = await summarize(deps, org, "gpu_type", end=cut)
    right = await summarize(deps, org, "gpu_type", start=cut)
    assert (left.total.cost, right.total.cost) == (Decimal("0.00083333"), Decimal("0.00111111"))
    assert left.total.cost + right.total.cost == Decimal("0.00194444")  # the line: 1.00 x 7 s / 3600
    assert (left.total.gpu_seconds, right.total.gpu_seconds) == (Decimal(3), Decimal(4))


async def test_an_attempt_that_ends_moves_from_running_to_billed_once(billing: Billing) -> None:
    org, job_id = uuid.uuid4(), uuid.uuid4()
    deps = deps_at(billing)
    held = [gpu("3.6000", "a100")]
    started = job_event(org, held, scheduled=at(2, 10), event_type=jobs.JOB_STARTED, job_id=job_id)
    await feed(deps, started, started)  # redelivered: one running GPU
    s = await summarize(deps, org, "gpu_type")
    assert table(s) == {"a100": ("7200.000000", "0.00000000", "7.20000000", 1)}

    done = job_event(org, held, scheduled=at(2, 10), held=timedelta(minutes=30), job_id=job_id)
    await feed(deps, done, started)  # a replayed start after the end brings nothing back
    s = await summarize(deps, org, "gpu_type")
    assert table(s) == {"a100": ("1800.000000", "1.80000000", "0.00000000", 1)}


async def test_a_requeued_attempt_stops_running_and_the_next_one_runs(billing: Billing) -> None:
    org, job_id = uuid.uuid4(), uuid.uuid4()
    deps = deps_at(billing)
    first = [gpu("1.0000", "t4")]
    await feed(
        deps,
        job_event(org, first, scheduled=at(2, 8), event_type=jobs.JOB_STARTED, job_id=job_id),
        requeued_event(org, first, held=timedelta(hours=1), scheduled=at(2, 8), job_id=job_id),
        job_event(
            org,
            [gpu("1.0000", "t4")],
            scheduled=at(2, 11),
            event_type=jobs.JOB_STARTED,
            job_id=job_id,
            attempt=2,
        ),
    )
    s = await summarize(deps, org, "day")
    # The lost hour is credited (out of the summary); attempt 2 runs from 11:00 to noon.
    assert table(s) == {"2026-12-02": ("3600.000000", "0.00000000", "1.00000000", 1)}


async def test_another_organizations_costs_never_appear(billing: Billing) -> None:
    mine = await a_month_of_costs(billing)
    theirs = uuid.uuid4()
    await feed(deps_at(billing), job_event(theirs, [gpu("9.0000", "a100")], scheduled=at(1, 1)))
    assert table(await summarize(deps_at(billing), theirs, "gpu_type")) == {
        "a100": ("1800.000000", "4.50000000", "0.00000000", 1)
    }
    assert (await summarize(deps_at(billing), mine, "gpu_type")).total.cost == Decimal("8.55")
    assert table(await summarize(deps_at(billing), uuid.uuid4(), "day")) == {}

    reply = await billing.stub.SummarizeCosts(
        billing_pb2.SummarizeCostsRequest(
            group_by="gpu_type", from_time="2026-11-30T00:00:00Z", to_time="2026-12-03T00:00:00Z"
        ),
        metadata=billing.identity.key(theirs),
    )
    assert [(g.key, g.cost, g.running_cost, g.jobs) for g in reply.groups] == [
        ("a100", "4.50000000", "0.00000000", 1)
    ]
    assert (reply.total.cost, reply.currency, reply.include_running) == ("4.50000000", "USD", True)
    assert (reply.from_time, reply.to_time) == ("2026-11-30T00:00:00Z", "2026-12-03T00:00:00Z")


async def test_the_grpc_method_refuses_bad_arguments(billing: Billing) -> None:
    key = billing.identity.key(uuid.uuid4())
    bad = [
        billing_pb2.SummarizeCostsRequest(group_by="week"),
        billing_pb2.SummarizeCostsRequest(group_by="day", from_time="yesterday"),
        billing_pb2.SummarizeCostsRequest(
            group_by="day", from_time="2026-12-02T00:00:00Z", to_time="2026-12-01T00:00:00Z"
        ),
        billing_pb2.SummarizeCostsRequest(
            group_by="day", from_time="2020-01-01T00:00:00Z", to_time="2026-01-01T00:00:00Z"
        ),
    ]
    for request in bad:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await billing.stub.SummarizeCosts(request, metadata=key)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    with pytest.raises(InvalidArgument):
        await summarize(deps_at(billing), uuid.uuid4(), "month")


async def test_the_default_window_is_the_last_30_days(billing: Billing) -> None:
    org = uuid.uuid4()
    await feed(
        deps_at(billing),
        job_event(org, [gpu("1.0000", "t4")], scheduled=NOW - timedelta(days=29), held=timedelta(hours=1)),
        job_event(org, [gpu("1.0000", "t4")], scheduled=NOW - timedelta(days=31), held=timedelta(hours=1)),
    )
    s = await handle(commands.SummarizeCosts(organization_id=org, group_by="project"), deps_at(billing))
    assert (s.window.start, s.window.end) == (NOW - timedelta(days=30), NOW)
    assert table(s) == {"": ("3600.000000", "1.00000000", "0.00000000", 1)}


async def test_old_tombstones_are_pruned_and_running_attempts_kept(billing: Billing) -> None:
    org, ended_job = uuid.uuid4(), uuid.uuid4()
    old = NOW - timedelta(days=20)
    deps = deps_at(billing)
    await feed(
        deps,
        job_event(org, [gpu("1.0000", "t4")], scheduled=old, event_type=jobs.JOB_STARTED, job_id=ended_job),
        job_event(org, [gpu("1.0000", "t4")], scheduled=old, held=timedelta(hours=1), job_id=ended_job),
        job_event(org, [gpu("1.0000", "t4")], scheduled=old, event_type=jobs.JOB_STARTED),
    )
    await handle(commands.PruneEndedRunning(retention_hours=8 * 24), deps)
    rows = await billing.rows(
        "SELECT job_id, ended_at FROM running_attempts WHERE organization_id = :org", org=org
    )
    assert [r.ended_at for r in rows] == [None] and rows[0].job_id != ended_job
