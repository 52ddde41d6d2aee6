"""Handlers over in-memory fakes: the use cases end to end, without I/O."""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal

import pytest

from services.scheduler.domain.inventory import InventoryGpu
from services.scheduler.domain.model import JobStatus
from services.scheduler.domain.spec import IdempotencyKeyReused
from services.scheduler.service_layer import commands, handlers
from shared.contracts.fleet import CONTAINER_RUNTIME_LABEL
from shared.errors import ErrorCode, FailedPrecondition, InvalidArgument, NotFound

from .fakes import FakeUnitOfWork, fake_dependencies, schedule_round

NODE = uuid.uuid4()


def inventory_gpu(
    index: int,
    node: uuid.UUID = NODE,
    memory: int = 81920,
    revision: int = 1,
    status: str = "available",
    price: str = "2.9900",
    labels: dict[str, str] | None = None,
) -> InventoryGpu:
    return InventoryGpu(
        gpu_id=uuid.uuid5(node, str(index)),
        node_id=node,
        node_name="node-1",
        device_index=index,
        gpu_type="h100-80gb",
        memory_total_mb=memory,
        cost_per_hour=Decimal(price),
        organization_id=None,
        status=status,
        revision=revision,
        node_labels=labels or {},
    )


def submit(org: uuid.UUID, **kw) -> commands.SubmitJob:
    base = {"organization_id": org, "user_id": None, "command": "python train.py", "gpu_count": 1}
    base.update(kw)
    return commands.SubmitJob(**base)


async def add_gpus(deps, *gpus: InventoryGpu) -> None:
    for g in gpus:
        await handlers.apply_gpu_change(commands.ApplyGpuChange(event_id=uuid.uuid4(), gpu=g), deps)


async def test_submit_queues_records_the_event_and_wakes_the_loop():
    deps, uow, _ = fake_dependencies()
    org = uuid.uuid4()
    job = await handlers.submit_job(submit(org, priority=70, name="train"), deps)
    assert job.status is JobStatus.QUEUED and job.priority == 70
    assert [e.kind for e in uow.store.outbox] == ["submitted"]
    assert [h.status for h in uow.store.history[job.id]] == ["queued"]
    assert await deps.wakeup.wait(0)


async def test_submit_checks_the_type_with_the_callers_credentials():
    deps, uow, catalog = fake_dependencies({"h100-80gb"})
    org = uuid.uuid4()
    await handlers.submit_job(submit(org, gpu_type="h100-80gb", authorization="Bearer k1"), deps)
    assert catalog.calls == ["Bearer k1"]
    with pytest.raises(InvalidArgument) as err:
        await handlers.submit_job(submit(org, gpu_type="quantum-9000", authorization="Bearer k1"), deps)
    assert err.value.field == "gpu_type"
    await handlers.submit_job(submit(org), deps)  # no type: the catalog is not asked
    assert len(catalog.calls) == 2 and len(uow.store.jobs) == 2


async def test_invalid_submission_writes_nothing():
    deps, uow, _ = fake_dependencies()
    with pytest.raises(InvalidArgument):
        await handlers.submit_job(submit(uuid.uuid4(), gpu_memory_mb=-5), deps)
    assert uow.store.jobs == {} and uow.store.outbox == []


async def test_same_idempotency_key_same_request_same_job_per_organization():
    deps, uow, _ = fake_dependencies()
    org, other = uuid.uuid4(), uuid.uuid4()
    first = await handlers.submit_job(submit(org, idempotency_key="k-1", gpu_type="h100-80gb"), deps)
    # The same request after normalization (padding, the default priority spelled out) is a retry.
    again = await handlers.submit_job(
        submit(org, idempotency_key="k-1", gpu_type=" h100-80gb ", priority=50), deps
    )
    assert again.id == first.id and [h.status for h in again.history] == ["queued"]
    elsewhere = await handlers.submit_job(submit(other, idempotency_key="k-1"), deps)
    assert elsewhere.id != first.id
    assert len(uow.store.jobs) == 2 and [e.kind for e in uow.store.outbox] == ["submitted", "submitted"]


@pytest.mark.parametrize(
    "changed",
    [{"command": "something else"}, {"gpu_count": 2}, {"priority": 0}, {"name": "other"}],
)
async def test_a_reused_idempotency_key_with_another_request_is_a_conflict(changed):
    deps, uow, _ = fake_dependencies()
    org = uuid.uuid4()
    first = await handlers.submit_job(submit(org, idempotency_key="k-1"), deps)
    with pytest.raises(IdempotencyKeyReused) as err:
        await handlers.submit_job(submit(org, idempotency_key="k-1", **changed), deps)
    assert err.value.code is ErrorCode.CONFLICT and err.value.field == "idempotency_key"
    assert list(uow.store.jobs) == [first.id] and len(uow.store.outbox) == 1


async def test_a_job_stored_without_a_fingerprint_is_compared_by_its_own_fields():
    deps, uow, _ = fake_dependencies()
    org = uuid.uuid4()
    first = await handlers.submit_job(submit(org, idempotency_key="old", name="train"), deps)
    uow.store.fingerprints[first.id] = None  # as rows written before migration 002
    again = await handlers.submit_job(submit(org, idempotency_key="old", name="train"), deps)
    assert again.id == first.id
    with pytest.raises(IdempotencyKeyReused):
        await handlers.submit_job(submit(org, idempotency_key="old", name="eval"), deps)


async def test_losing_a_race_on_the_key_answers_with_the_winner_or_a_conflict(monkeypatch):
    deps, uow, _ = fake_dependencies()
    org = uuid.uuid4()
    winner = await handlers.submit_job(submit(org, idempotency_key="race"), deps)
    lookup = FakeUnitOfWork.job_by_idempotency_key
    misses = {"left": 0}

    async def first_lookup_misses(self, organization_id, key):
        # The concurrent submit is not visible yet to the first lookup; add_job then finds its row.
        if misses["left"]:
            misses["left"] -= 1
            return None
        return await lookup(self, organization_id, key)

    monkeypatch.setattr(FakeUnitOfWork, "job_by_idempotency_key", first_lookup_misses)
    misses["left"] = 1
    assert (await handlers.submit_job(submit(org, idempotency_key="race"), deps)).id == winner.id
    misses["left"] = 1
    with pytest.raises(IdempotencyKeyReused):
        await handlers.submit_job(submit(org, idempotency_key="race", command="other"), deps)
    assert list(uow.store.jobs) == [winner.id]


def test_every_command_has_exactly_one_registered_handler():
    declared = {
        obj
        for obj in vars(commands).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == commands.__name__
    }
    parts = {commands.JobRequest}  # one job of a SubmitJobs: part of a command, not one
    assert set(handlers.HANDLERS) == declared - parts


async def test_handle_dispatches_on_the_command_type():
    deps, _, _ = fake_dependencies()
    org = uuid.uuid4()
    job = await handlers.handle(submit(org), deps)
    got = await handlers.handle(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert got.id == job.id
    with pytest.raises(TypeError):
        await handlers.handle(object(), deps)


async def test_get_job_hides_other_organizations_and_malformed_ids():
    deps, _, _ = fake_dependencies()
    org = uuid.uuid4()
    job = await handlers.submit_job(submit(org), deps)
    got = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert got.id == job.id and [h.status for h in got.history] == ["queued"]
    for org_id, job_id in ((uuid.uuid4(), str(job.id)), (org, "not-a-uuid"), (org, str(uuid.uuid4()))):
        with pytest.raises(NotFound):
            await handlers.get_job(commands.GetJob(organization_id=org_id, job_id=job_id), deps)


async def test_list_jobs_pages_newest_first_with_status_filter():
    deps, _, _ = fake_dependencies()
    org = uuid.uuid4()
    ids = [(await handlers.submit_job(submit(org), deps)).id for _ in range(5)]
    await handlers.submit_job(submit(uuid.uuid4()), deps)  # someone else's
    first = await handlers.list_jobs(commands.ListJobs(organization_id=org, limit=2), deps)
    assert [j.id for j in first.jobs] == ids[::-1][:2] and first.next_cursor
    second = await handlers.list_jobs(
        commands.ListJobs(organization_id=org, limit=2, cursor=first.next_cursor), deps
    )
    third = await handlers.list_jobs(
        commands.ListJobs(organization_id=org, limit=2, cursor=second.next_cursor), deps
    )
    assert [j.id for j in second.jobs + third.jobs] == ids[::-1][2:] and third.next_cursor is None
    await handlers.cancel_job(commands.CancelJob(organization_id=org, job_id=str(ids[0])), deps)
    cancelled = await handlers.list_jobs(commands.ListJobs(organization_id=org, status="cancelled"), deps)
    assert [j.id for j in cancelled.jobs] == [ids[0]]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": -1}, "limit"),
        ({"status": "done"}, "status"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": "WyJ4IiwieSJd"}, "cursor"),
    ],
)
async def test_list_jobs_rejects_bad_arguments(kw, field):
    deps, _, _ = fake_dependencies()
    with pytest.raises(InvalidArgument) as err:
        await handlers.list_jobs(commands.ListJobs(organization_id=uuid.uuid4(), **kw), deps)
    assert err.value.field == field


async def test_round_places_jobs_and_records_prices():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0, price="2.9900"), inventory_gpu(1, price="3.1000"))
    org = uuid.uuid4()
    job = await handlers.submit_job(submit(org, gpu_count=2, gpu_memory_mb=40000), deps)
    [placed] = await schedule_round(deps)
    assert placed.id == job.id and placed.status is JobStatus.SCHEDULED and placed.node_id == NODE
    event = uow.store.outbox[-1]
    assert event.kind == "scheduled" and event.previous_status is JobStatus.QUEUED
    assert sorted(a.cost_per_hour for a in event.job.allocation) == [Decimal("2.99"), Decimal("3.1")]
    assert set(uow.store.allocations) == set(placed.gpu_ids)
    assert await schedule_round(deps) == []  # nothing left to place, nothing placed twice


async def test_round_respects_priority_when_capacity_is_short():
    deps, _, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    org = uuid.uuid4()
    low = await handlers.submit_job(submit(org, priority=10), deps)
    high = await handlers.submit_job(submit(org, priority=90), deps)
    [placed] = await schedule_round(deps)
    assert placed.id == high.id
    still = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(low.id)), deps)
    assert still.status is JobStatus.QUEUED


async def test_unavailable_gpus_are_not_used():
    deps, _, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0, status="draining"), inventory_gpu(1, status="unhealthy"))
    await handlers.submit_job(submit(uuid.uuid4()), deps)
    assert await schedule_round(deps) == []


async def _scheduled(deps, org, **kw):
    job = await handlers.submit_job(submit(org, **kw), deps)
    [placed] = await schedule_round(deps)
    assert placed.id == job.id
    return placed


async def test_agent_reports_run_the_job_to_the_end_and_release_the_gpus():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    org = uuid.uuid4()
    job = await _scheduled(deps, org)
    [assignment] = await handlers.get_assignments(commands.GetAssignments(node_id=str(NODE)), deps)
    assert assignment.id == job.id and [a.gpu_index for a in assignment.allocation] == [0]
    started = commands.ReportJobStarted(node_id=str(NODE), job_id=str(job.id))
    await handlers.report_job_started(started, deps)
    await handlers.report_job_started(started, deps)  # duplicate: no second event
    deps.wakeup.clear()
    finished = commands.ReportJobFinished(
        node_id=str(NODE), job_id=str(job.id), exit_code=0, output_tail="ok"
    )
    await handlers.report_job_finished(finished, deps)
    await handlers.report_job_finished(
        commands.ReportJobFinished(node_id=str(NODE), job_id=str(job.id), exit_code=1), deps
    )
    assert [e.kind for e in uow.store.outbox if e.job.id == job.id] == [
        "submitted",
        "scheduled",
        "started",
        "succeeded",
    ]
    assert uow.store.allocations == {}
    assert await deps.wakeup.wait(0)
    final = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert final.status is JobStatus.SUCCEEDED and final.output_tail == "ok"
    assert final.finished_at >= final.scheduled_at
    assert await handlers.get_assignments(commands.GetAssignments(node_id=str(NODE)), deps) == []


async def test_reports_for_a_job_not_on_that_node_are_not_found():
    deps, _, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    job = await _scheduled(deps, uuid.uuid4())
    for node, job_id in ((uuid.uuid4(), job.id), (NODE, uuid.uuid4())):
        with pytest.raises(NotFound):
            await handlers.report_job_started(
                commands.ReportJobStarted(node_id=str(node), job_id=str(job_id)), deps
            )
        with pytest.raises(NotFound):
            await handlers.report_job_finished(
                commands.ReportJobFinished(node_id=str(node), job_id=str(job_id), exit_code=0), deps
            )
    with pytest.raises(InvalidArgument):
        await handlers.get_assignments(commands.GetAssignments(node_id="node-1"), deps)


async def test_cancel_queued_at_once_and_terminal_refused():
    deps, uow, _ = fake_dependencies()
    org = uuid.uuid4()
    job = await handlers.submit_job(submit(org), deps)
    cancelled = await handlers.cancel_job(
        commands.CancelJob(organization_id=org, job_id=str(job.id), reason="oops"), deps
    )
    assert cancelled.status is JobStatus.CANCELLED
    assert [h.status for h in cancelled.history] == ["queued", "cancelled"]
    assert uow.store.outbox[-1].kind == "cancelled"
    with pytest.raises(FailedPrecondition) as err:
        await handlers.cancel_job(commands.CancelJob(organization_id=org, job_id=str(job.id)), deps)
    assert err.value.code == ErrorCode.FAILED_PRECONDITION
    with pytest.raises(NotFound):
        await handlers.cancel_job(commands.CancelJob(organization_id=uuid.uuid4(), job_id=str(job.id)), deps)


async def test_cancel_running_waits_for_the_agent():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    org = uuid.uuid4()
    job = await _scheduled(deps, org)
    await handlers.report_job_started(commands.ReportJobStarted(node_id=str(NODE), job_id=str(job.id)), deps)
    requested = await handlers.cancel_job(commands.CancelJob(organization_id=org, job_id=str(job.id)), deps)
    assert requested.status is JobStatus.RUNNING and requested.cancel_requested
    assert uow.store.outbox[-1].kind == "started"  # nothing announced yet
    [assignment] = await handlers.get_assignments(commands.GetAssignments(node_id=str(NODE)), deps)
    assert assignment.cancel_requested
    await handlers.report_job_finished(
        commands.ReportJobFinished(node_id=str(NODE), job_id=str(job.id), exit_code=143, cancelled=True), deps
    )
    assert uow.store.outbox[-1].kind == "cancelled" and uow.store.allocations == {}


async def test_inventory_events_apply_once_and_in_revision_order():
    deps, uow, _ = fake_dependencies()
    gpu = inventory_gpu(0, revision=5)
    event_id = uuid.uuid4()
    await handlers.apply_gpu_change(commands.ApplyGpuChange(event_id=event_id, gpu=gpu), deps)
    assert await deps.wakeup.wait(0)
    deps.wakeup.clear()
    stale = inventory_gpu(0, revision=4, status="offline")
    await handlers.apply_gpu_change(commands.ApplyGpuChange(event_id=uuid.uuid4(), gpu=stale), deps)
    assert uow.store.inventory[gpu.gpu_id].status == "available"
    assert not await deps.wakeup.wait(0)  # nothing changed, nothing to reconsider
    newer = inventory_gpu(0, revision=6, status="draining")
    await handlers.apply_gpu_change(
        commands.ApplyGpuChange(event_id=event_id, gpu=newer), deps
    )  # replayed id
    assert uow.store.inventory[gpu.gpu_id].revision == 5
    await handlers.apply_gpu_change(commands.ApplyGpuChange(event_id=uuid.uuid4(), gpu=newer), deps)
    assert uow.store.inventory[gpu.gpu_id].status == "draining"


async def test_a_gpu_going_offline_requeues_the_job_holding_it_and_frees_its_gpus():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0), inventory_gpu(1))
    org = uuid.uuid4()
    job = await _scheduled(deps, org, gpu_count=2)
    await handlers.report_job_started(commands.ReportJobStarted(node_id=str(NODE), job_id=str(job.id)), deps)
    await add_gpus(deps, inventory_gpu(0, revision=2, status="offline"))  # the node stopped heart-beating
    lost = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert lost.status is JobStatus.QUEUED and lost.attempt == 2 and uow.store.allocations == {}
    assert "lost: node node-1 went offline" in (lost.history[-1].reason or "")
    assert [e.kind for e in uow.store.outbox if e.job.id == job.id][-1] == "requeued"
    await add_gpus(deps, inventory_gpu(1, revision=2, status="offline"))  # its other GPU: nothing more to do
    assert [e.kind for e in uow.store.outbox if e.job.id == job.id].count("requeued") == 1


async def test_requeue_is_bounded_and_an_opt_out_fails_at_once():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    org = uuid.uuid4()
    job = await handlers.submit_job(submit(org), deps)
    lost = "lost: the agent restarted while the job ran"
    for attempt in (1, 2, 3):
        [placed] = await schedule_round(deps)
        assert placed.id == job.id and placed.attempt == attempt
        await handlers.report_job_finished(
            commands.ReportJobFinished(
                node_id=str(NODE), job_id=str(job.id), error_message=lost, attempt=attempt
            ),
            deps,
        )
    final = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert final.status is JobStatus.FAILED and "attempt 3 of 3" in (final.error_message or "")
    assert uow.store.allocations == {}

    opted = await handlers.submit_job(submit(org, no_requeue=True), deps)
    [placed] = await schedule_round(deps)
    await handlers.report_job_finished(
        commands.ReportJobFinished(node_id=str(NODE), job_id=str(opted.id), error_message=lost), deps
    )
    done = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(opted.id)), deps)
    assert done.status is JobStatus.FAILED and "opted out" in (done.error_message or "")


async def test_a_report_for_an_older_attempt_is_ignored_and_timed_out_is_terminal():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    org = uuid.uuid4()
    job = await handlers.submit_job(submit(org, time_limit_seconds=60), deps)
    await schedule_round(deps)
    lost = "lost: the agent restarted while the job ran"
    await handlers.report_job_finished(
        commands.ReportJobFinished(node_id=str(NODE), job_id=str(job.id), error_message=lost, attempt=1), deps
    )
    [again] = await schedule_round(deps)
    assert again.attempt == 2
    # attempt 1 reports again (a retried report): ignored, attempt 2 keeps running
    await handlers.report_job_finished(
        commands.ReportJobFinished(node_id=str(NODE), job_id=str(job.id), exit_code=0, attempt=1), deps
    )
    assert (
        await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    ).status is (JobStatus.SCHEDULED)
    await handlers.report_job_finished(
        commands.ReportJobFinished(node_id=str(NODE), job_id=str(job.id), timed_out=True, attempt=2), deps
    )
    ended = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert ended.status is JobStatus.TIMED_OUT and ended.is_terminal and uow.store.allocations == {}
    assert uow.store.outbox[-1].kind == "timed_out"


async def test_hold_release_and_priority_apply_to_queued_jobs_only():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    org = uuid.uuid4()
    held = await handlers.submit_job(submit(org, hold=True), deps)
    assert held.held and held.pending is not None and held.pending.code == "held"
    assert await schedule_round(deps) == []  # held: not placed
    other = await handlers.submit_job(submit(org, priority=10), deps)
    moved = await handlers.update_job_priority(
        commands.UpdateJobPriority(organization_id=org, job_id=str(other.id), priority=70), deps
    )
    assert moved.priority == 70 and moved.queue_position == 1
    assert uow.store.outbox[-1].kind == "pending"
    with pytest.raises(NotFound):
        await handlers.hold_job(commands.HoldJob(organization_id=uuid.uuid4(), job_id=str(held.id)), deps)
    with pytest.raises(InvalidArgument):
        await handlers.update_job_priority(
            commands.UpdateJobPriority(organization_id=org, job_id=str(other.id), priority=101), deps
        )
    [placed] = await schedule_round(deps)
    assert placed.id == other.id
    with pytest.raises(FailedPrecondition):
        await handlers.hold_job(commands.HoldJob(organization_id=org, job_id=str(other.id)), deps)
    released = await handlers.release_job(commands.ReleaseJob(organization_id=org, job_id=str(held.id)), deps)
    assert not released.held and released.pending is None


async def test_a_waiting_job_says_why_and_only_changes_are_written():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    org = uuid.uuid4()
    await _scheduled(deps, org)
    waiting = await handlers.submit_job(submit(org), deps)
    await schedule_round(deps)
    job = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(waiting.id)), deps)
    assert job.pending is not None and job.pending.code == "no_capacity" and job.queue_position == 1
    events = [e.kind for e in uow.store.outbox if e.job.id == waiting.id]
    await schedule_round(deps)
    await schedule_round(deps)
    assert [e.kind for e in uow.store.outbox if e.job.id == waiting.id] == events  # no new event
    assert events.count("pending") == 1


async def test_admission_refuses_a_job_no_node_could_ever_hold():
    from services.scheduler.service_layer.capacity import FleetCapacity

    deps, _, _ = fake_dependencies()
    deps = dataclasses.replace(deps, capacity=FleetCapacity(deps.uow, deps.options.policy, refresh_s=0))
    await add_gpus(deps, inventory_gpu(0), inventory_gpu(1))
    org = uuid.uuid4()
    with pytest.raises(InvalidArgument) as too_many:
        await handlers.submit_job(submit(org, gpu_count=4), deps)
    assert too_many.value.field == "gpu_count" and "no node of this fleet has 4" in too_many.value.message
    with pytest.raises(InvalidArgument) as memory:
        await handlers.submit_job(submit(org, gpu_memory_mb=200_000), deps)
    assert memory.value.field == "gpu_memory_mb"
    with pytest.raises(InvalidArgument) as gang:
        await handlers.submit_job(submit(org, nodes=2), deps)
    assert gang.value.field == "nodes"
    assert (await handlers.submit_job(submit(org, gpu_count=2), deps)).status is JobStatus.QUEUED


async def test_a_job_naming_an_image_goes_only_to_a_node_whose_agent_runs_containers():
    from services.scheduler.service_layer.capacity import FleetCapacity

    deps, _, _ = fake_dependencies()
    deps = dataclasses.replace(deps, capacity=FleetCapacity(deps.uow, deps.options.policy, refresh_s=0))
    plain = uuid.uuid4()
    await add_gpus(deps, inventory_gpu(0, node=plain))
    org = uuid.uuid4()
    with pytest.raises(InvalidArgument) as refused:
        await handlers.submit_job(submit(org, image="busybox"), deps)
    assert refused.value.field == "image" and "has a container runtime" in refused.value.message
    runtime = uuid.uuid4()
    await add_gpus(deps, inventory_gpu(0, node=runtime, labels={CONTAINER_RUNTIME_LABEL: "podman"}))
    image_job = await handlers.submit_job(submit(org, image="busybox"), deps)
    [placed] = await schedule_round(deps)
    assert placed.id == image_job.id and {p.node_id for p in placed.placements} == {runtime}
    # the runtime node is busy: the next image job waits, saying why, though the plain node is idle
    waiting = await handlers.submit_job(submit(org, image="busybox"), deps)
    assert await schedule_round(deps) == []
    job = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(waiting.id)), deps)
    assert job.pending is not None
    assert job.pending.message == "no node with a container runtime has 1 free GPU"


async def test_a_deposed_leader_commits_nothing_and_a_standby_takes_over():
    from services.scheduler.service_layer.scheduling import Deposed, Scheduler

    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0), inventory_gpu(1))
    org = uuid.uuid4()
    first, standby = Scheduler(deps, "a"), Scheduler(deps, "b")
    assert (await first.step()) is not None and await standby.step() is None  # one leader
    await handlers.submit_job(submit(org), deps)
    uow.clock.tick(10)  # the leader stalls past its lease; the standby takes over
    standby.renewed_at = -1e9
    assert await standby.step() is not None and standby.token == 2
    await handlers.submit_job(submit(org), deps)
    first.renewed_at = float("inf")  # it does not know: its next cycle tries to commit with token 1
    before = dict(uow.store.allocations)
    with pytest.raises(Deposed):
        await first.step()
    assert uow.store.allocations == before
    placed = await standby.step()
    assert placed is not None and len(placed.placed) == 1
