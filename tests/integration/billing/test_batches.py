"""The consumer's set-based batches against real PostgreSQL: a batch applied at once leaves exactly
what the same events leave applied one by one (lines, credits, running rows and their tombstones, one
cost event per billed attempt), however the batch mixes jobs, attempts, duplicates and replays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.billing.entrypoints.consumers import job_event_handler
from services.billing.service_layer.handlers import Dependencies
from shared.contracts import jobs
from shared.events import Envelope

from .conftest import Billing, gpu, job_event, requeued_event

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def scenario(org: uuid.UUID) -> tuple[list[uuid.UUID], list[Envelope]]:
    """Jobs (in this order) and the events of a busy topic, interleaved:

    0  scheduled, started, succeeded, the succeeded record again (redelivered), then the same
       attempt re-emitted as failed under another event id, then a replayed scheduled event;
    1  two GPUs: started, lost (requeued), attempt 2 scheduled and started, then timed out;
    2  cancelled while queued (never held a GPU);
    3  scheduled and started only: still running at the end;
    4  a requeue that does not say what the lost attempt held, then attempt 2 succeeded.
    """
    ids = [uuid.uuid4() for _ in range(5)]
    a, b, c = [gpu("2.0000", "a100")], [gpu("1.0000", "t4"), gpu("3.0000", "h100")], [gpu("1.5000")]
    held = timedelta(minutes=20)

    def ev(i: int, event_type: str, alloc: list, attempt: int = 1, start: datetime = T0) -> Envelope:
        return job_event(
            org, alloc, event_type=event_type, job_id=ids[i], attempt=attempt, scheduled=start, held=held
        )

    done0 = ev(0, jobs.JOB_SUCCEEDED, a)
    lost1 = requeued_event(org, b, held=timedelta(minutes=7), scheduled=T0, job_id=ids[1])
    lost4 = requeued_event(org, [], held=timedelta(0), scheduled=T0, job_id=ids[4])
    lost4 = Envelope(
        type=lost4.type,
        source=lost4.source,
        data=jobs.JobEventV1(job=lost4.data.job, previous_status="running", reason="lost"),
        subject=lost4.subject,
        organization_id=lost4.organization_id,
    )
    later = T0 + timedelta(minutes=30)
    events = [
        ev(0, jobs.JOB_SCHEDULED, a),
        ev(1, jobs.JOB_STARTED, b),
        ev(3, jobs.JOB_SCHEDULED, c),
        ev(0, jobs.JOB_STARTED, a),
        ev(2, jobs.JOB_CANCELLED, []),
        done0,
        lost1,
        ev(1, jobs.JOB_SCHEDULED, b, attempt=2, start=later),
        ev(3, jobs.JOB_STARTED, c),
        done0,
        ev(1, jobs.JOB_STARTED, b, attempt=2, start=later),
        ev(0, jobs.JOB_FAILED, a),
        lost4,
        ev(0, jobs.JOB_SCHEDULED, a),
        ev(4, jobs.JOB_SUCCEEDED, c, attempt=2, start=later),
        ev(1, jobs.JOB_TIMED_OUT, b, attempt=2, start=later),
    ]
    return ids, events


async def state(billing: Billing, ids: list[uuid.UUID]) -> dict[str, Any]:
    """What billing keeps of those jobs, by their place in the scenario (ids and times relative)."""
    index = {job: i for i, job in enumerate(ids)}
    lines = await billing.rows(
        "SELECT job_id, attempt, outcome, gpu_type, seconds, total_cost, credit, start_time, end_time "
        "FROM cost_tracking WHERE job_id = ANY(:ids) ORDER BY job_id, attempt, gpu_type",
        ids=ids,
    )
    running = await billing.rows(
        "SELECT job_id, attempt, gpu_type, start_time, ended_at FROM running_attempts "
        "WHERE job_id = ANY(:ids) ORDER BY job_id, attempt, gpu_type",
        ids=ids,
    )
    announced = await billing.rows(
        "SELECT key, count(*) AS n FROM outbox WHERE key = ANY(:keys) GROUP BY key",
        keys=[str(i) for i in ids],
    )
    return {
        "lines": sorted(
            (
                index[r.job_id],
                r.attempt,
                r.outcome,
                r.gpu_type,
                r.seconds,
                r.total_cost,
                r.credit,
                r.start_time - T0,
                r.end_time - T0,
            )
            for r in lines
        ),
        "running": sorted(
            (
                index[r.job_id],
                r.attempt,
                r.gpu_type,
                r.start_time - T0,
                None if r.ended_at is None else r.ended_at - T0,
            )
            for r in running
        ),
        "announced": sorted((index[uuid.UUID(r.key)], r.n) for r in announced),
    }


async def test_a_batch_leaves_what_the_same_events_leave_one_by_one(billing: Billing) -> None:
    deps = Dependencies(uow=billing.app.deps.uow, clock=lambda: NOW)
    sink = job_event_handler(deps)
    one_ids, one_by_one = scenario(uuid.uuid4())
    for envelope in one_by_one:
        await sink([envelope])
    batch_ids, batch = scenario(uuid.uuid4())
    await sink(batch)

    expected = await state(billing, one_ids)
    assert await state(billing, batch_ids) == expected
    # The scenario says what that is: job 0 billed once (attempt 1, succeeded), job 1's lost attempt
    # credited and its second charged, nothing for jobs 2 and 4's lost attempt, job 3 still running.
    assert [line[:3] for line in expected["lines"]] == [
        (0, 1, "succeeded"),
        (1, 1, "requeued"),
        (1, 1, "requeued"),
        (1, 2, "timed_out"),
        (1, 2, "timed_out"),
        (4, 2, "succeeded"),
    ]
    assert expected["announced"] == [(0, 1), (1, 2), (4, 1)]
    assert [(r[0], r[1], r[4] is None) for r in expected["running"]] == [
        (0, 1, False),
        (1, 1, False),
        (1, 1, False),
        (1, 2, False),
        (1, 2, False),
        (3, 1, True),
    ]

    # The whole batch again (a redelivery after a crash past the commit) changes nothing.
    await sink(batch)
    assert await state(billing, batch_ids) == expected
