"""Builders shared by billing's unit tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prometheus_client import REGISTRY

from shared.contracts import jobs
from shared.events import Envelope

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

STATUS = {
    jobs.JOB_SUBMITTED: "queued",
    jobs.JOB_SCHEDULED: "scheduled",
    jobs.JOB_STARTED: "running",
    jobs.JOB_SUCCEEDED: "succeeded",
    jobs.JOB_FAILED: "failed",
    jobs.JOB_CANCELLED: "cancelled",
    jobs.JOB_TIMED_OUT: "timed_out",
    jobs.JOB_PENDING: "queued",
    jobs.JOB_TIME_LIMIT_WARNING: "running",
}


def allocation(*prices: str, gpu_type: str = "a100") -> list[jobs.GpuAllocationV1]:
    return [
        jobs.GpuAllocationV1(gpu_id=uuid.uuid4(), gpu_index=i, gpu_type=gpu_type, cost_per_hour=Decimal(p))
        for i, p in enumerate(prices)
    ]


def snapshot(
    status: str,
    alloc: list[jobs.GpuAllocationV1],
    *,
    org: uuid.UUID,
    job_id: uuid.UUID | None,
    attempt: int = 1,
    start: datetime = T0,
    held: timedelta | None = None,
) -> jobs.JobSnapshotV1:
    """``held`` None: not released yet."""
    return jobs.JobSnapshotV1(
        job_id=job_id or uuid.uuid4(),
        organization_id=org,
        user_id=uuid.uuid4(),
        status=status,  # type: ignore[arg-type]
        command="python train.py",
        gpu_count=max(len(alloc), 1),
        gpu_memory_mb=1024,
        priority=0,
        allocation=alloc,
        created_at=T0 - timedelta(minutes=1),
        scheduled_at=start if alloc else None,
        finished_at=start + held if held is not None else None,
        attempt=attempt,
    )


def job_event(
    event_type: str,
    alloc: list[jobs.GpuAllocationV1],
    *,
    held: timedelta = timedelta(minutes=10),
    org: uuid.UUID | None = None,
    job_id: uuid.UUID | None = None,
    attempt: int = 1,
    start: datetime = T0,
) -> Envelope:
    """A job event as the scheduler publishes it; terminal ones carry the finished snapshot."""
    org = org or uuid.uuid4()
    terminal = event_type in jobs.TERMINAL_EVENTS
    snap = snapshot(
        STATUS[event_type],
        alloc,
        org=org,
        job_id=job_id,
        attempt=attempt,
        start=start,
        held=held if terminal else None,
    )
    return Envelope(
        type=event_type,
        source="gpufleet/scheduler",
        data=jobs.JobEventV1(job=snap),
        subject=str(snap.job_id),
        organization_id=str(org),
    )


def requeued_event(
    alloc: list[jobs.GpuAllocationV1],
    *,
    held: timedelta = timedelta(minutes=10),
    org: uuid.UUID | None = None,
    job_id: uuid.UUID | None = None,
    attempt: int = 1,
    start: datetime = T0,
) -> Envelope:
    """Attempt ``attempt`` lost its node: the snapshot is the next attempt, queued and holding nothing;
    ``ended_attempt`` says what the lost one held and for how long."""
    org = org or uuid.uuid4()
    snap = snapshot("queued", [], org=org, job_id=job_id, attempt=attempt + 1)
    lost = jobs.EndedAttemptV1(
        attempt=attempt, allocation=alloc, scheduled_at=start, released_at=start + held
    )
    return Envelope(
        type=jobs.JOB_REQUEUED,
        source="gpufleet/scheduler",
        data=jobs.JobEventV1(
            job=snap, previous_status="running", reason="lost: the node went silent", ended_attempt=lost
        ),
        subject=str(snap.job_id),
        organization_id=str(org),
    )


def metric(name: str, **labels: str) -> float:
    """A sample of the default registry (0 before the first increment)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
