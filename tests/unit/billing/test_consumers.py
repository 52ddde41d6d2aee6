"""The job-event converter, table-tested: which events become a RecordAttemptCost, and with what. No I/O."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from services.billing.domain.costs import EndedAttempt, HeldGpu
from services.billing.entrypoints.consumers import OUTCOMES, to_command
from services.billing.service_layer import commands
from shared.contracts import jobs
from shared.events import Envelope

from .helpers import T0, allocation, job_event, requeued_event


@pytest.mark.parametrize(
    ("event_type", "outcome"),
    [
        (jobs.JOB_SUBMITTED, None),
        (jobs.JOB_SCHEDULED, None),
        (jobs.JOB_STARTED, None),
        (jobs.JOB_PENDING, None),
        (jobs.JOB_TIME_LIMIT_WARNING, None),  # not an end: nothing is billed for it
        (jobs.JOB_SUCCEEDED, "succeeded"),
        (jobs.JOB_FAILED, "failed"),
        (jobs.JOB_CANCELLED, "cancelled"),
        (jobs.JOB_TIMED_OUT, "timed_out"),
    ],
)
def test_only_the_end_of_an_attempt_becomes_a_command(event_type: str, outcome: str | None) -> None:
    event = job_event(event_type, allocation("2.0000"), attempt=2)
    cmd = to_command(event)
    assert (cmd is not None) is (outcome is not None)
    if cmd is not None:
        assert isinstance(cmd, commands.RecordAttemptCost) and cmd.event_id == event.id
        assert cmd.attempt.outcome == outcome and cmd.attempt.attempt == 2


def test_every_terminal_event_and_the_requeue_end_an_attempt() -> None:
    assert set(OUTCOMES) == {*jobs.TERMINAL_EVENTS, jobs.JOB_REQUEUED}


def test_the_command_carries_what_the_bill_needs_from_the_snapshot() -> None:
    alloc = [
        jobs.GpuAllocationV1(gpu_id=uuid.uuid4(), gpu_index=0, gpu_type="t4", cost_per_hour=Decimal("1.1")),
        jobs.GpuAllocationV1(gpu_id=uuid.uuid4(), gpu_index=1, gpu_type="h100", cost_per_hour=Decimal("4")),
    ]
    event = job_event(jobs.JOB_SUCCEEDED, alloc, held=timedelta(seconds=42), attempt=3)
    job = event.data.job
    assert to_command(event) == commands.RecordAttemptCost(
        event_id=event.id,
        attempt=EndedAttempt(
            job_id=job.job_id,
            organization_id=job.organization_id,
            user_id=job.user_id,
            attempt=3,
            outcome="succeeded",
            allocation=(
                HeldGpu(alloc[0].gpu_id, "t4", Decimal("1.1")),
                HeldGpu(alloc[1].gpu_id, "h100", Decimal("4")),
            ),
            scheduled_at=T0,
            released_at=T0 + timedelta(seconds=42),
        ),
    )


def test_a_requeue_bills_the_ended_attempt_not_the_queued_snapshot() -> None:
    alloc = allocation("2.0000", "2.0000")
    event = requeued_event(alloc, held=timedelta(minutes=7), attempt=1)
    assert event.data.job.attempt == 2 and event.data.job.allocation == []  # the snapshot: the next attempt
    cmd = to_command(event)
    assert cmd is not None and cmd.event_id == event.id
    assert cmd.attempt == EndedAttempt(
        job_id=event.data.job.job_id,
        organization_id=event.data.job.organization_id,
        user_id=event.data.job.user_id,
        attempt=1,
        outcome="requeued",
        allocation=tuple(HeldGpu(g.gpu_id, g.gpu_type, g.cost_per_hour) for g in alloc),
        scheduled_at=T0,
        released_at=T0 + timedelta(minutes=7),
    )


def test_a_requeue_that_does_not_say_what_the_attempt_held_bills_nothing() -> None:
    event = requeued_event(allocation("2.0000"), attempt=2)
    bare = Envelope(
        type=jobs.JOB_REQUEUED,
        source="gpufleet/scheduler",
        data=event.data.model_copy(update={"ended_attempt": None}),
    )
    cmd = to_command(bare)
    assert cmd is not None and cmd.attempt.allocation == () and cmd.attempt.attempt == 2


def test_a_job_cancelled_while_queued_still_becomes_a_command_with_no_gpus() -> None:
    cmd = to_command(job_event(jobs.JOB_CANCELLED, []))
    assert cmd is not None and cmd.attempt.allocation == () and cmd.attempt.scheduled_at is None


@pytest.mark.parametrize("event_type", [jobs.JOB_SUCCEEDED, jobs.JOB_REQUEUED])
def test_an_ending_event_with_another_payload_is_a_bug_not_a_silent_skip(event_type: str) -> None:
    odd = Envelope(type=event_type, source="test", data=jobs.JobSnapshotV1.model_construct())
    with pytest.raises(TypeError, match="JobEventV1"):
        to_command(odd)
