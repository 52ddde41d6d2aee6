"""Attribution (issue 9): a sample is the organization's whose job held its GPU, on its node, when it was
taken, as the job topic told; what the agent claims decides nothing. Domain rules, the job-event
converter and the handlers over the in-memory fakes. No I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.monitoring.domain.allocations import Span, changed_span, coalesce, holder, merge
from services.monitoring.entrypoints.output_consumers import holds_of, to_attempt
from services.monitoring.service_layer import commands
from services.monitoring.service_layer import output_commands as oc
from services.monitoring.service_layer.handlers import handle
from services.monitoring.service_layer.output_handlers import handle as handle_output
from shared.contracts import jobs
from shared.events import Envelope

from .fakes import Store, fake_dependencies
from .helpers import NODE, hold, metric, sample
from .test_output_handlers import FakeOutputStore, deps

ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()
T0 = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
DISPUTED = "gpufleet_monitoring_samples_claim_disputed_total"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job_event(
    kind: str, job: UUID, gpu: UUID, *, attempt: int = 1, ended: datetime | None = None, node: UUID = NODE
) -> Envelope:
    """What the scheduler publishes (adapters/events.py shape): a placed attempt from T0."""
    placed = kind != jobs.JOB_REQUEUED
    snapshot = jobs.JobSnapshotV1.model_validate(
        {
            "job_id": job,
            "organization_id": ORG_A,
            "status": {jobs.JOB_SUCCEEDED: "succeeded", jobs.JOB_REQUEUED: "queued"}.get(kind, "running"),
            "command": "x",
            "gpu_count": 1,
            "gpu_memory_mb": 1,
            "priority": 50,
            "created_at": T0,
            "attempt": attempt + (0 if placed else 1),
            "node_id": node if placed else None,
            "scheduled_at": T0 if placed else None,
            "finished_at": ended if kind == jobs.JOB_SUCCEEDED else None,
            "placements": [{"node_id": node, "rank": 0, "gpu_ids": [gpu]}] if placed else [],
        }
    )
    lost = None
    if not placed:
        lost = jobs.EndedAttemptV1(
            attempt=attempt,
            allocation=[jobs.GpuAllocationV1(gpu_id=gpu, gpu_index=0, gpu_type="a100", cost_per_hour=1)],
            scheduled_at=T0,
            released_at=ended,
        )
    return Envelope(type=kind, source="test", data=jobs.JobEventV1(job=snapshot, ended_attempt=lost))


async def record_events(store: Store, *envelopes: Envelope) -> None:
    """What the job-topic consumer does with one batch, over the fakes sharing ``store``'s history."""
    events = tuple(cmd for e in envelopes if (cmd := to_attempt(e)) is not None)
    await handle_output(oc.RecordJobAttempts(events), deps(FakeOutputStore(store.allocations)))


def owners(store: Store, gpu: UUID) -> dict[datetime, UUID | None]:
    return {s.timestamp: s.claimed_organization_id for s in store.samples.values() if s.gpu_id == gpu}


def test_a_sample_belongs_to_the_hold_covering_its_time_on_its_node() -> None:
    gpu, job_a, job_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    holds = [
        hold(gpu, ORG_A, at(0), at(60), job=job_a),
        hold(gpu, ORG_B, at(60), None, job=job_b),
        hold(uuid.uuid4(), ORG_B, at(0)),  # another GPU
    ]
    assert holder(holds, gpu, NODE, at(0)).job_id == job_a  # type: ignore[union-attr]
    assert holder(holds, gpu, NODE, at(59.9)).job_id == job_a  # type: ignore[union-attr]
    assert holder(holds, gpu, NODE, at(60)).job_id == job_b  # type: ignore[union-attr]  # [start, end)
    assert holder(holds, gpu, NODE, at(-1)) is None  # before any hold: idle
    assert holder(holds, gpu, uuid.uuid4(), at(10)) is None  # another node reporting on this GPU


def test_holds_merge_the_same_whatever_order_the_events_come_in() -> None:
    gpu, job = uuid.uuid4(), uuid.uuid4()
    opened = hold(gpu, ORG_A, at(0), job=job)
    closed = hold(gpu, ORG_A, at(0), at(30), job=job)
    requeued = hold(gpu, ORG_A, at(0), at(30), job=job, node=None)
    for events in ((opened, closed), (closed, opened), (requeued, opened), (opened, requeued, opened)):
        known = None
        for e in events:
            known = merge(known, e)
        assert known == closed
    assert changed_span(opened, closed) == Span(gpu, at(30), None)  # only samples from the end on
    assert changed_span(closed, merge(closed, opened)) is None  # a redelivery changes nothing
    assert coalesce([Span(gpu, at(30), None), Span(gpu, at(0), at(40))]) == [Span(gpu, at(0), None)]


def test_job_events_open_and_close_holds() -> None:
    gpu, job = uuid.uuid4(), uuid.uuid4()
    (opened,) = holds_of(jobs.JOB_SCHEDULED, job_event(jobs.JOB_SCHEDULED, job, gpu).data)
    assert (opened.node_id, opened.organization_id, opened.started_at, opened.ended_at) == (
        NODE,
        ORG_A,
        T0,
        None,
    )
    (done,) = holds_of(jobs.JOB_SUCCEEDED, job_event(jobs.JOB_SUCCEEDED, job, gpu, ended=at(9)).data)
    assert done.ended_at == at(9)
    (lost,) = holds_of(jobs.JOB_REQUEUED, job_event(jobs.JOB_REQUEUED, job, gpu, ended=at(5)).data)
    assert (lost.attempt, lost.node_id, lost.ended_at) == (1, None, at(5))
    assert holds_of(jobs.JOB_SUBMITTED, job_event(jobs.JOB_REQUEUED, job, gpu).data) == ()  # unplaced


def test_a_time_limit_warning_ends_no_attempt_and_changes_no_hold() -> None:
    gpu, job = uuid.uuid4(), uuid.uuid4()
    warning = job_event(jobs.JOB_TIME_LIMIT_WARNING, job, gpu)
    cmd = to_attempt(warning)
    assert cmd is not None and cmd.ended_attempt is None
    (started,) = holds_of(jobs.JOB_STARTED, job_event(jobs.JOB_STARTED, job, gpu).data)
    (warned,) = holds_of(jobs.JOB_TIME_LIMIT_WARNING, warning.data)
    assert warned == started and changed_span(started, merge(started, warned)) is None
    (done,) = holds_of(jobs.JOB_SUCCEEDED, job_event(jobs.JOB_SUCCEEDED, job, gpu, ended=at(9)).data)
    assert changed_span(done, merge(done, warned)) is None  # redelivered after the end: nothing reopens


async def test_samples_come_before_the_allocation_and_are_attributed_when_it_arrives() -> None:
    d, store = fake_dependencies()
    gpu, job = uuid.uuid4(), uuid.uuid4()
    await handle(commands.IngestSamples((sample(gpu, at(10), org=ORG_A), sample(gpu, at(-5)))), d)
    assert owners(store, gpu) == {at(10): None, at(-5): None}  # the agent's word alone: unattributed
    await record_events(store, job_event(jobs.JOB_SCHEDULED, job, gpu))
    assert owners(store, gpu) == {at(10): ORG_A, at(-5): None}  # before the hold: still idle
    await handle(commands.IngestSamples((sample(gpu, at(20)),)), d)  # claims nothing; held all the same
    assert owners(store, gpu)[at(20)] == ORG_A
    usage = await handle(commands.GetUtilization(organization_id=ORG_A, hours=24), d)
    assert [(g.gpu_id, g.samples) for g in usage.gpus] == [(gpu, 2)]


async def test_a_requeue_ends_the_hold() -> None:
    d, store = fake_dependencies()
    gpu, job = uuid.uuid4(), uuid.uuid4()
    await record_events(store, job_event(jobs.JOB_SCHEDULED, job, gpu))
    await handle(commands.IngestSamples((sample(gpu, at(10)), sample(gpu, at(40)))), d)
    assert owners(store, gpu) == {at(10): ORG_A, at(40): ORG_A}  # the hold was open
    await record_events(store, job_event(jobs.JOB_REQUEUED, job, gpu, ended=at(30)))
    await handle(commands.IngestSamples((sample(gpu, at(50)),)), d)
    assert owners(store, gpu) == {at(10): ORG_A, at(40): None, at(50): None}
    await record_events(store, job_event(jobs.JOB_STARTED, job, gpu))  # a late redelivery reopens nothing
    assert owners(store, gpu) == {at(10): ORG_A, at(40): None, at(50): None}


async def test_a_claim_of_another_organization_is_stored_as_the_allocation_says_and_counted() -> None:
    d, store = fake_dependencies()
    gpu, job = uuid.uuid4(), uuid.uuid4()
    await record_events(store, job_event(jobs.JOB_SCHEDULED, job, gpu))
    before = metric(DISPUTED)
    claims = (sample(gpu, at(10), org=ORG_B), sample(gpu, at(11), org=ORG_A), sample(gpu, at(12)))
    await handle(commands.IngestSamples(claims), d)
    assert owners(store, gpu) == {at(10): ORG_A, at(11): ORG_A, at(12): ORG_A}
    assert metric(DISPUTED) - before == 1  # an idle claim inside the hold (the agent lags it) is none
    assert (await handle(commands.GetUtilization(organization_id=ORG_B, hours=24), d)).gpus == []
