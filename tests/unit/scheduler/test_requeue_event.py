"""A requeue tells billing what the lost attempt held: its number, its GPUs at their prices, and when
it held them, although the job itself already describes the next attempt (nothing allocated)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.scheduler.adapters import events
from services.scheduler.domain.model import GpuAllocation, Job, JobStatus, Outcome
from services.scheduler.domain.spec import job_spec
from shared.contracts import jobs as contract

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
NODE = uuid.uuid4()
PRICES = (Decimal("2.99"), Decimal("1.25"))


def running_job(no_requeue: bool = False) -> tuple[Job, tuple[GpuAllocation, ...]]:
    job = Job.submit(
        job_spec(command="python train.py", gpu_count=2, gpu_memory_mb=1024, no_requeue=no_requeue),
        job_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        user_id=None,
        at=T0,
    )
    held = tuple(GpuAllocation(uuid.uuid4(), i, "h100-80gb", p) for i, p in enumerate(PRICES))
    job.schedule(NODE, held, T0 + timedelta(seconds=1))
    job.start(T0 + timedelta(seconds=2), now=T0 + timedelta(seconds=2))
    return job, held


def wire(job: Job, kind: str) -> tuple[str, contract.JobEventV1]:
    [change] = [e for e in job.events if e.kind == kind]
    env = events.envelope(change)
    # What billing decodes: the bytes on the topic, not the Python object.
    return env.type, contract.JobEventV1.model_validate_json(env.value())


def test_requeued_event_carries_the_ended_attempt():
    job, held = running_job()
    lost_at = T0 + timedelta(seconds=60)
    assert job.requeue("lost: node went silent", lost_at, max_attempts=3)

    event_type, data = wire(job, "requeued")
    assert event_type == contract.JOB_REQUEUED
    ended = data.ended_attempt
    assert ended is not None
    assert ended.attempt == 1
    assert [(a.gpu_id, a.gpu_index, a.gpu_type, a.cost_per_hour) for a in ended.allocation] == [
        (a.gpu_id, a.gpu_index, a.gpu_type, a.cost_per_hour) for a in held
    ]
    assert ended.scheduled_at == T0 + timedelta(seconds=1)
    assert ended.released_at == lost_at
    # The snapshot is the next attempt: queued, nothing held.
    snap = data.job
    assert (snap.status, snap.attempt, snap.allocation, snap.scheduled_at) == ("queued", 2, [], None)
    assert data.previous_status == "running"


def test_second_requeue_reports_the_second_attempt():
    job, _ = running_job()
    job.requeue("lost: agent restarted", T0 + timedelta(seconds=10), max_attempts=3)
    again = tuple(GpuAllocation(uuid.uuid4(), i, "a100-80gb", Decimal("1.10")) for i in range(2))
    job.schedule(NODE, again, T0 + timedelta(seconds=20))
    job.requeue("lost: agent restarted", T0 + timedelta(seconds=30), max_attempts=3)

    ended = [events.envelope(e).data.ended_attempt for e in job.events if e.kind == "requeued"]
    assert [(e.attempt, e.scheduled_at, e.released_at) for e in ended if e is not None] == [
        (1, T0 + timedelta(seconds=1), T0 + timedelta(seconds=10)),
        (2, T0 + timedelta(seconds=20), T0 + timedelta(seconds=30)),
    ]
    assert [a.gpu_type for a in ended[1].allocation] == ["a100-80gb", "a100-80gb"]  # type: ignore[union-attr]
    assert job.attempt == 3


def test_release_time_never_precedes_the_allocation():
    # A database clock that stepped back must not give billing a negative span.
    job, _ = running_job()
    job.requeue("lost: node went silent", T0, max_attempts=3)
    ended = wire(job, "requeued")[1].ended_attempt
    assert ended is not None and ended.released_at == ended.scheduled_at == T0 + timedelta(seconds=1)


def test_only_requeued_events_carry_an_ended_attempt():
    job, _ = running_job()
    job.finish(Outcome(exit_code=0), None, T0 + timedelta(seconds=5))
    assert all(events.envelope(e).data.ended_attempt is None for e in job.events)


def test_a_job_that_ends_instead_of_requeueing_has_no_ended_attempt():
    # Opted out: the attempt ended as failed, billed as any failure (finished_at), not credited.
    job, _ = running_job(no_requeue=True)
    assert not job.requeue("lost: node went silent", T0 + timedelta(seconds=9), max_attempts=3)
    assert job.status is JobStatus.FAILED
    assert "requeued" not in [e.kind for e in job.events]
    assert all(events.envelope(e).data.ended_attempt is None for e in job.events)
