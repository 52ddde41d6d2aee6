"""Kafka consumers of job output: the agents' chunks (``gpufleet.output.v1``, in batches) and the job
topic's events, which say which attempts exist and when one ended (so an attempt whose agent died is
still completed). Pure converters plus the handlers as sinks; both are safe to run twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe_batch
from shared.contracts import jobs, output, topics
from shared.events import Envelope

from ..service_layer import output_commands as commands
from ..service_layer.output_handlers import OutputDependencies, handle

CHUNKS_CONSUMER = "monitoring.output"
JOBS_CONSUMER = "monitoring.output-jobs"


def to_store(envelopes: list[Envelope]) -> commands.StoreOutputChunks | None:
    """No I/O. The batch's chunks in order; None when it holds none."""
    chunks = tuple(
        commands.OutputChunk(
            organization_id=e.data.organization_id,
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
    return commands.RecordJobAttempt(job.organization_id, job.job_id, job.attempt, ended)


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
) -> None:
    """Topics and group ids are overridable so that tests read without joining the service's groups."""
    subscribe_batch(
        broker,
        output_topic,
        group_id=group_prefix + CHUNKS_CONSUMER,
        models=output.EVENT_TYPES,
        handle=chunks_handler(deps),
        max_records=64,  # up to 64 chunks of 64 KiB: one transaction of a few MiB at most
    )
    subscribe_batch(
        broker,
        jobs_topic,
        group_id=group_prefix + JOBS_CONSUMER,
        models=jobs.EVENT_TYPES,
        handle=jobs_handler(deps),
    )
