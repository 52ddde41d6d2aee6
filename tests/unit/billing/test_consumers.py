"""The job-event converter, table-tested: which events become a RecordJobCost, and with what. No I/O."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from services.billing.domain.costs import FinishedJob, HeldGpu
from services.billing.entrypoints.consumers import to_command
from services.billing.service_layer import commands
from shared.contracts import jobs
from shared.events import Envelope

from .helpers import T0, allocation, job_event


@pytest.mark.parametrize(
    ("event_type", "billed"),
    [
        (jobs.JOB_SUBMITTED, False),
        (jobs.JOB_SCHEDULED, False),
        (jobs.JOB_STARTED, False),
        (jobs.JOB_SUCCEEDED, True),
        (jobs.JOB_FAILED, True),
        (jobs.JOB_CANCELLED, True),
    ],
)
def test_only_terminal_events_become_a_command(event_type: str, billed: bool) -> None:
    event = job_event(event_type, allocation("2.0000"))
    cmd = to_command(event)
    assert (cmd is not None) is billed
    if cmd is not None:
        assert isinstance(cmd, commands.RecordJobCost) and cmd.event_id == event.id


def test_the_command_carries_what_the_bill_needs_from_the_snapshot() -> None:
    alloc = [
        jobs.GpuAllocationV1(gpu_id=uuid.uuid4(), gpu_index=0, gpu_type="t4", cost_per_hour=Decimal("1.1")),
        jobs.GpuAllocationV1(gpu_id=uuid.uuid4(), gpu_index=1, gpu_type="h100", cost_per_hour=Decimal("4")),
    ]
    event = job_event(jobs.JOB_SUCCEEDED, alloc, held=timedelta(seconds=42))
    job = event.data.job
    assert to_command(event) == commands.RecordJobCost(
        event_id=event.id,
        job=FinishedJob(
            job_id=job.job_id,
            organization_id=job.organization_id,
            user_id=job.user_id,
            allocation=(
                HeldGpu(alloc[0].gpu_id, "t4", Decimal("1.1")),
                HeldGpu(alloc[1].gpu_id, "h100", Decimal("4")),
            ),
            scheduled_at=T0,
            finished_at=T0 + timedelta(seconds=42),
        ),
    )


def test_a_job_cancelled_while_queued_still_becomes_a_command_with_no_gpus() -> None:
    cmd = to_command(job_event(jobs.JOB_CANCELLED, []))
    assert cmd is not None and cmd.job.allocation == () and cmd.job.scheduled_at is None


def test_a_terminal_event_with_another_payload_is_a_bug_not_a_silent_skip() -> None:
    odd = Envelope(type=jobs.JOB_SUCCEEDED, source="test", data=jobs.JobSnapshotV1.model_construct())
    with pytest.raises(TypeError, match="JobEventV1"):
        to_command(odd)
