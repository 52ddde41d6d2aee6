"""Kafka consumer of the public job topic: a pure converter (event -> command) plus the handler as sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe_batch
from shared.contracts import jobs, topics
from shared.events import Envelope

from ..domain.costs import EndedAttempt, HeldGpu, Outcome
from ..domain.running import RunningAttempt
from ..service_layer import commands
from ..service_layer.handlers import CONSUMER, Dependencies, handle

OUTCOMES: dict[str, Outcome] = {
    jobs.JOB_SUCCEEDED: "succeeded",
    jobs.JOB_FAILED: "failed",
    jobs.JOB_CANCELLED: "cancelled",
    jobs.JOB_TIMED_OUT: "timed_out",
    jobs.JOB_REQUEUED: "requeued",
}


def held(allocation: list[jobs.GpuAllocationV1]) -> tuple[HeldGpu, ...]:
    return tuple(HeldGpu(g.gpu_id, g.gpu_type, g.cost_per_hour) for g in allocation)


def ended_attempt(event_type: str, event: jobs.JobEventV1) -> EndedAttempt:
    """A terminal event ends the attempt its snapshot describes. A requeued event's snapshot is already
    the next attempt (queued, nothing held): the lost one is ``event.ended_attempt``; without it (a
    scheduler that did not say) there is nothing billing could put a number on, so no GPU is held.
    The project is the snapshot's (an event without one: no project)."""
    job = event.job
    outcome = OUTCOMES[event_type]
    if event_type != jobs.JOB_REQUEUED:
        return EndedAttempt(
            job_id=job.job_id,
            organization_id=job.organization_id,
            user_id=job.user_id,
            attempt=job.attempt,
            outcome=outcome,
            allocation=held(job.allocation),
            scheduled_at=job.scheduled_at,
            released_at=job.finished_at,
            project_id=job.project_id,
        )
    lost = event.ended_attempt
    return EndedAttempt(
        job_id=job.job_id,
        organization_id=job.organization_id,
        user_id=job.user_id,
        attempt=lost.attempt if lost is not None else max(job.attempt - 1, 1),
        outcome=outcome,
        allocation=held(lost.allocation) if lost is not None else (),
        scheduled_at=lost.scheduled_at if lost is not None else None,
        released_at=lost.released_at if lost is not None else None,
        project_id=job.project_id,
    )


def to_command(envelope: Envelope) -> commands.RecordAttemptCost | None:
    """No I/O. Only the end of an attempt (a terminal event, or a requeue after the attempt's node or
    agent was lost) ends the time it held its GPUs; the other events are not billing's business (and are
    not claimed either)."""
    if envelope.type not in OUTCOMES:
        return None
    event = envelope.data
    if not isinstance(event, jobs.JobEventV1):  # decoded with jobs.EVENT_TYPES: anything else is a bug
        raise TypeError(f"expected JobEventV1, got {type(event).__name__}")
    return commands.RecordAttemptCost(event_id=envelope.id, attempt=ended_attempt(envelope.type, event))


# Events of an attempt that holds its GPUs (from scheduled_at, as billing counts them).
HOLDING = (jobs.JOB_SCHEDULED, jobs.JOB_STARTED)


def to_running_command(envelope: Envelope) -> commands.TrackRunningAttempt | None:
    """No I/O. A scheduled or started event whose snapshot holds GPUs: the attempt runs, at the prices
    its allocation fixed, since ``scheduled_at``; anything else is not a running attempt."""
    if envelope.type not in HOLDING:
        return None
    event = envelope.data
    if not isinstance(event, jobs.JobEventV1):
        raise TypeError(f"expected JobEventV1, got {type(event).__name__}")
    job = event.job
    if not job.allocation or job.scheduled_at is None:
        return None
    return commands.TrackRunningAttempt(
        RunningAttempt(
            job_id=job.job_id,
            organization_id=job.organization_id,
            user_id=job.user_id,
            attempt=job.attempt,
            allocation=held(job.allocation),
            scheduled_at=job.scheduled_at,
            project_id=job.project_id,
        )
    )


def job_event_handler(deps: Dependencies) -> Callable[[list[Envelope]], Awaitable[None]]:
    """The sink of a batch: the events that matter to billing, in order, in one transaction."""

    async def sink(envelopes: list[Envelope]) -> None:
        cmds = tuple(
            cmd for env in envelopes if (cmd := to_command(env) or to_running_command(env)) is not None
        )
        if cmds:
            await handle(commands.ApplyJobEvents(cmds), deps)

    return sink


def register(
    broker: KafkaBroker, deps: Dependencies, *, topic: str = topics.JOBS, group_id: str = CONSUMER
) -> None:
    """``topic`` and ``group_id`` are overridable so that tests read without rebalancing the service's
    group (the processed-event ledger keeps the consumer name either way). Records are taken in batches
    (one transaction and one offset commit per batch, not per event)."""
    subscribe_batch(broker, topic, group_id=group_id, models=jobs.EVENT_TYPES, handle=job_event_handler(deps))
