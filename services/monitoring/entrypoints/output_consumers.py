"""Kafka consumers of job output: the agents' chunks (``gpufleet.output.v1``, in batches) and the job
topic's events, which say which attempts exist and when one ended (so an attempt whose agent died is
still completed). Pure converters plus the handlers as sinks; both are safe to run twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared.consumers import RecordVerifier, subscribe_batch
from shared.contracts import jobs, output, topics
from shared.events import Envelope

from ..domain.allocations import Hold
from ..service_layer import output_commands as commands
from ..service_layer.output_handlers import OutputDependencies, handle

CHUNKS_CONSUMER = "monitoring.output"
JOBS_CONSUMER = "monitoring.output-jobs"


def to_store(envelopes: list[Envelope]) -> commands.StoreOutputChunks | None:
    """No I/O. The batch's chunks in order; None when it holds none."""
    chunks = tuple(
        commands.OutputChunk(
            node_id=e.data.node_id,  # the chunk's organization_id is the agent's word: not used
            job_id=e.data.job_id,
            attempt=e.data.attempt,
            offset=e.data.offset,
            data=e.data.data,
            eof=e.data.eof,
        )
        for e in envelopes
        if isinstance(e.data, output.JobOutputChunkV1)
    )
    return commands.StoreOutputChunks(chunks) if chunks else None


def to_attempt(envelope: Envelope) -> commands.RecordJobAttempt | None:
    """No I/O. Every job event names the job's current attempt; a terminal one ends it, a requeue
    ends the previous one (``ended_attempt``)."""
    if not isinstance(envelope.data, jobs.JobEventV1):
        return None
    job = envelope.data.job
    ended: int | None = None
    if envelope.type in jobs.TERMINAL_EVENTS:
        ended = job.attempt
    elif envelope.type == jobs.JOB_REQUEUED:
        lost = envelope.data.ended_attempt
        ended = lost.attempt if lost is not None else max(job.attempt - 1, 0)
    holds = holds_of(envelope.type, envelope.data)
    return commands.RecordJobAttempt(
        job.organization_id, job.job_id, job.attempt, ended, holds, project_id=job.project_id
    )


def holds_of(event_type: str, event: jobs.JobEventV1) -> tuple[Hold, ...]:
    """No I/O. The GPUs a job event says its attempt holds (or held): every event of a placed attempt
    names them and their nodes (``placements``; an older event only ``node_id`` and ``allocation``)
    from ``scheduled_at``; a terminal one also their release (``finished_at``). A requeue's snapshot is
    the next attempt, unplaced: the ended attempt's GPUs and release come in ``ended_attempt``."""
    job = event.job
    if event_type == jobs.JOB_REQUEUED:
        lost = event.ended_attempt
        if lost is None or lost.scheduled_at is None:
            return ()
        released = lost.released_at or lost.scheduled_at
        return tuple(
            Hold(
                job.job_id,
                lost.attempt,
                a.gpu_id,
                None,
                job.organization_id,
                job.project_id,
                lost.scheduled_at,
                released,
            )
            for a in lost.allocation
        )
    if job.scheduled_at is None:
        return ()
    placed = [(p.node_id, g) for p in job.placements for g in p.gpu_ids]
    if not placed and job.node_id is not None:
        placed = [(job.node_id, a.gpu_id) for a in job.allocation]
    ended = (job.finished_at or job.scheduled_at) if event_type in jobs.TERMINAL_EVENTS else None
    return tuple(
        Hold(job.job_id, job.attempt, gpu, node, job.organization_id, job.project_id, job.scheduled_at, ended)
        for node, gpu in placed
    )


def chunks_handler(deps: OutputDependencies) -> Callable[[list[Envelope]], Awaitable[None]]:
    async def sink(envelopes: list[Envelope]) -> None:
        cmd = to_store(envelopes)
        if cmd is not None:
            await handle(cmd, deps)

    return sink


def jobs_handler(deps: OutputDependencies) -> Callable[[list[Envelope]], Awaitable[None]]:
    async def sink(envelopes: list[Envelope]) -> None:
        events = tuple(cmd for e in envelopes if (cmd := to_attempt(e)) is not None)
        if events:
            await handle(commands.RecordJobAttempts(events), deps)

    return sink


def register(
    broker: KafkaBroker,
    deps: OutputDependencies,
    *,
    output_topic: str = topics.OUTPUT,
    jobs_topic: str = topics.JOBS,
    group_prefix: str = "",
    verify: RecordVerifier | None = None,
) -> None:
    """Topics and group ids are overridable so that tests read without joining the service's groups.
    The job topic is subscribed first: a chunk is only applied once it told where its attempt runs."""
    subscribe_batch(
        broker,
        jobs_topic,
        group_id=group_prefix + JOBS_CONSUMER,
        models=jobs.EVENT_TYPES,
        handle=jobs_handler(deps),
    )
    subscribe_batch(
        broker,
        output_topic,
        group_id=group_prefix + CHUNKS_CONSUMER,
        models=output.EVENT_TYPES,
        handle=chunks_handler(deps),
        verify=verify,
        max_records=64,  # up to 64 chunks of 64 KiB: one transaction of a few MiB at most
    )
