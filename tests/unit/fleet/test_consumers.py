"""The job-event converter as a table (no I/O), and the sink it feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from services.fleet.entrypoints.consumers import job_event_handler, to_command
from services.fleet.service_layer import commands
from shared.contracts import jobs
from shared.events import Envelope

from .fakes import FakeStore, fake_dependencies

JOB = UUID("00000000-0000-4000-8000-00000000000a")
GPU_0 = UUID("00000000-0000-4000-8000-000000000001")
GPU_1 = UUID("00000000-0000-4000-8000-000000000002")
EVENT = UUID("00000000-0000-4000-8000-0000000000e1")


def job_event(
    event_type: str,
    job_id: UUID = JOB,
    gpu_ids: tuple[UUID, ...] = (GPU_0, GPU_1),
    memory_mb: int = 8000,
    event_id: UUID = EVENT,
) -> Envelope:
    now = datetime.now(UTC)
    snapshot = jobs.JobSnapshotV1(
        job_id=job_id,
        organization_id=uuid4(),
        status="scheduled",
        command="true",
        gpu_count=max(len(gpu_ids), 1),
        gpu_memory_mb=memory_mb,
        priority=0,
        created_at=now,
        allocation=[
            jobs.GpuAllocationV1(gpu_id=g, gpu_index=i, gpu_type="l4", cost_per_hour=Decimal("0.7"))
            for i, g in enumerate(gpu_ids)
        ],
    )
    return Envelope(type=event_type, source="test", data=jobs.JobEventV1(job=snapshot), id=event_id)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (job_event(jobs.JOB_SUBMITTED, gpu_ids=()), None),
        (job_event(jobs.JOB_SCHEDULED), commands.OccupyGpus(EVENT, JOB, (GPU_0, GPU_1), 8000)),
        (
            job_event(jobs.JOB_SCHEDULED, gpu_ids=(GPU_1,), memory_mb=1),
            commands.OccupyGpus(EVENT, JOB, (GPU_1,), 1),
        ),
        (job_event(jobs.JOB_STARTED), None),
        (job_event(jobs.JOB_SUCCEEDED), commands.ReleaseGpus(EVENT, JOB)),
        (job_event(jobs.JOB_FAILED), commands.ReleaseGpus(EVENT, JOB)),
        (job_event(jobs.JOB_CANCELLED, gpu_ids=()), commands.ReleaseGpus(EVENT, JOB)),
        (Envelope(type="gpufleet.job.archived", source="test", data=None, id=EVENT), None),
    ],
    ids=["submitted", "scheduled", "scheduled-one", "started", "succeeded", "failed", "cancelled", "other"],
)
def test_job_events_translate_to_commands(event: Envelope, expected: commands.JobCommand | None) -> None:
    assert to_command(event) == expected


async def test_the_sink_applies_each_event_once_and_ignores_the_rest() -> None:
    store = FakeStore([])
    sink = job_event_handler(fake_dependencies(store))
    await sink(job_event(jobs.JOB_SUBMITTED, event_id=uuid4()))
    await sink(job_event(jobs.JOB_STARTED, event_id=uuid4()))
    assert not store.claimed and not store.units  # nothing to apply: no unit, no ledger row
    done = job_event(jobs.JOB_SUCCEEDED, event_id=uuid4())
    await sink(done)
    await sink(done)
    assert store.claimed == {("fleet.gpu-allocation", done.id)}
