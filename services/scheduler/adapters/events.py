"""Domain changes -> public job events (``gpufleet.jobs.v1``): every event carries the full snapshot."""

from __future__ import annotations

from shared.contracts import jobs as contract
from shared.events import Envelope

from ..domain.model import EndedAttempt, GpuAllocation, Job, JobChanged, JobStatus

SOURCE = "gpufleet/scheduler"

EVENT_TYPE = {
    "submitted": contract.JOB_SUBMITTED,
    "scheduled": contract.JOB_SCHEDULED,
    "started": contract.JOB_STARTED,
    "succeeded": contract.JOB_SUCCEEDED,
    "failed": contract.JOB_FAILED,
    "cancelled": contract.JOB_CANCELLED,
    "timed_out": contract.JOB_TIMED_OUT,
    "requeued": contract.JOB_REQUEUED,
    "pending": contract.JOB_PENDING,
    "time_limit_warning": contract.JOB_TIME_LIMIT_WARNING,
}


def snapshot(job: Job) -> contract.JobSnapshotV1:
    return contract.JobSnapshotV1(
        job_id=job.id,
        organization_id=job.organization_id,
        user_id=job.user_id,
        name=job.name,
        status=job.status.value,
        command=job.command,
        gpu_count=job.gpu_count,
        gpu_memory_mb=job.gpu_memory_mb,
        gpu_type=job.gpu_type,
        priority=job.priority,
        webhook_url=job.webhook_url,
        node_id=job.node_id,
        allocation=_allocation(job.allocation),
        exit_code=job.exit_code,
        output_tail=job.output_tail,
        error_message=job.error_message,
        created_at=job.created_at,
        scheduled_at=job.scheduled_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        nodes=job.nodes,
        cpu_cores=job.cpu_cores,
        ram_mb=job.ram_mb,
        time_limit_seconds=job.time_limit_seconds,
        held=job.held,
        no_requeue=job.no_requeue,
        attempt=job.attempt,
        pending_reason=(
            contract.PendingReasonV1(code=job.pending.code, message=job.pending.message)
            if job.pending is not None and job.status is JobStatus.QUEUED
            else None
        ),
        placements=[
            contract.JobPlacementV1(node_id=p.node_id, rank=p.rank, gpu_ids=list(p.gpu_ids))
            for p in job.placements
        ],
        project_id=job.project_id,
        image=job.image,
    )


def _allocation(allocation: tuple[GpuAllocation, ...]) -> list[contract.GpuAllocationV1]:
    return [
        contract.GpuAllocationV1(
            gpu_id=a.gpu_id, gpu_index=a.gpu_index, gpu_type=a.gpu_type, cost_per_hour=a.cost_per_hour
        )
        for a in allocation
    ]


def ended_attempt(ended: EndedAttempt | None) -> contract.EndedAttemptV1 | None:
    if ended is None:
        return None
    return contract.EndedAttemptV1(
        attempt=ended.attempt,
        allocation=_allocation(ended.allocation),
        scheduled_at=ended.scheduled_at,
        released_at=ended.released_at,
    )


def envelope(change: JobChanged) -> Envelope[contract.JobEventV1]:
    job = change.job
    return Envelope(
        type=EVENT_TYPE[change.kind],
        source=SOURCE,
        subject=str(job.id),
        organization_id=str(job.organization_id),
        data=contract.JobEventV1(
            job=snapshot(job),
            previous_status=change.previous_status.value if change.previous_status else None,
            reason=change.reason,
            ended_attempt=ended_attempt(change.ended_attempt),
            stops_at=change.stops_at,
        ),
    )
