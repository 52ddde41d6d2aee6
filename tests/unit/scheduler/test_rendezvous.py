"""Gangs over in-memory fakes: what each member is told (rank, world size, where to meet), and that a
gang ends, succeeds or is requeued as a whole."""

from __future__ import annotations

import uuid
from decimal import Decimal

from services.scheduler.adapters.repository import _insert_values, _to_job
from services.scheduler.domain.inventory import ADDRESS_LABEL, InventoryGpu
from services.scheduler.domain.model import JobStatus, Outcome
from services.scheduler.entrypoints.agent_api import assignment_message
from services.scheduler.service_layer import commands, handlers

from .fakes import fake_dependencies, schedule_round

NODE_A, NODE_B = uuid.uuid4(), uuid.uuid4()
NAMES = {NODE_A: "gpu-host-a", NODE_B: "gpu-host-b"}


def gpu(node: uuid.UUID, index: int, labels: dict[str, str] | None = None, **kw) -> InventoryGpu:
    values = {
        "gpu_id": uuid.uuid5(node, str(index)),
        "node_id": node,
        "node_name": NAMES[node],
        "device_index": index,
        "gpu_type": "h100-80gb",
        "memory_total_mb": 81920,
        "cost_per_hour": Decimal("2.5"),
        "organization_id": None,
        "status": "available",
        "revision": 1,
        "node_labels": labels or {},
    } | kw
    return InventoryGpu(**values)


async def add(deps, *gpus: InventoryGpu) -> None:
    for g in gpus:
        await handlers.apply_gpu_change(commands.ApplyGpuChange(event_id=uuid.uuid4(), gpu=g), deps)


async def placed_gang(deps, org, *, gpu_count=1):
    job = await handlers.submit_job(
        commands.SubmitJob(organization_id=org, user_id=None, command="train", gpu_count=gpu_count, nodes=2),
        deps,
    )
    [placed] = await schedule_round(deps)
    assert placed.id == job.id
    return placed


async def on(deps, node: uuid.UUID):
    return await handlers.get_assignments(commands.GetAssignments(node_id=str(node)), deps)


def finished(node, job, **kw) -> commands.ReportJobFinished:
    return commands.ReportJobFinished(node_id=str(node), job_id=str(job.id), attempt=job.attempt, **kw)


async def test_every_member_learns_its_rank_and_meets_at_rank_0s_host_name():
    deps, _, _ = fake_dependencies()
    await add(deps, gpu(NODE_A, 0), gpu(NODE_A, 1), gpu(NODE_B, 0), gpu(NODE_B, 1))
    job = await placed_gang(deps, uuid.uuid4())
    ranked = sorted(job.placements, key=lambda p: p.rank)
    hosts = [NAMES[p.node_id] for p in ranked]
    assert [p.address for p in ranked] == hosts
    messages = {}
    for p in ranked:
        [stored] = await on(deps, p.node_id)
        messages[p.rank] = assignment_message(stored, p.node_id)
    for rank, msg in messages.items():
        assert msg.rank == rank and msg.world_size == 2
        assert msg.master_addr == hosts[0] and list(msg.node_names) == hosts
        assert msg.master_port == messages[0].master_port > 0
        # Each member is given only the GPUs it holds on its own node.
        assert set(msg.gpu_ids) == {str(g) for g in ranked[rank].gpu_ids} and len(msg.gpu_ids) == 1


async def test_an_address_label_is_where_the_members_meet():
    deps, _, _ = fake_dependencies()
    fabric = {ADDRESS_LABEL: "10.0.0.7"}
    await add(deps, gpu(NODE_A, 0, fabric), gpu(NODE_B, 0, {"rack": "r1"}))
    job = await placed_gang(deps, uuid.uuid4())
    by_node = {p.node_id: p.address for p in job.placements}
    assert by_node == {NODE_A: "10.0.0.7", NODE_B: "gpu-host-b"}
    msg = assignment_message(job, NODE_B)
    assert msg.master_addr == next(p.address for p in job.placements if p.rank == 0)


def test_a_placement_recorded_without_an_address_names_its_node_by_id():
    single = gpu(NODE_A, 0)
    assert single.rendezvous_address == "gpu-host-a"
    assert gpu(NODE_A, 0, {ADDRESS_LABEL: ""}).rendezvous_address == "gpu-host-a"  # blank: the name


async def test_placement_addresses_survive_the_table_and_old_rows_fall_back_to_node_ids():
    deps, _, _ = fake_dependencies()
    await add(deps, gpu(NODE_A, 0), gpu(NODE_B, 0))
    job = await placed_gang(deps, uuid.uuid4())
    row = _insert_values(job, None) | {"updated_at": None}
    assert _to_job(row).placements == job.placements
    # A row written before addresses were recorded: no "address" key in its placements.
    row["placements"] = [
        {k: v for k, v in p.items() if k in ("node_id", "rank", "gpu_ids")} for p in row["placements"]
    ]
    old = _to_job(row)
    assert all(p.address == "" and not p.exited for p in old.placements)
    ranked = sorted(old.placements, key=lambda p: p.rank)
    assert list(assignment_message(old, NODE_A).node_names) == [str(p.node_id) for p in ranked]


async def test_a_member_that_fails_ends_the_whole_gang_once_and_frees_every_gpu():
    deps, uow, _ = fake_dependencies()
    await add(deps, gpu(NODE_A, 0), gpu(NODE_B, 0))
    org = uuid.uuid4()
    job = await placed_gang(deps, org)
    rank = {p.rank: p.node_id for p in job.placements}
    for node in rank.values():
        await handlers.report_job_started(
            commands.ReportJobStarted(node_id=str(node), job_id=str(job.id)), deps
        )
    with deps.assignments.watch(rank[0]) as woken:
        await handlers.report_job_finished(
            finished(rank[1], job, exit_code=1, output_tail="rank 1 broke"), deps
        )
        assert woken.is_set()  # rank 0's stream is told at once: it no longer lists the job, so it stops
    assert await on(deps, rank[0]) == [] and await on(deps, rank[1]) == []
    assert uow.store.allocations == {}
    # The stopped member's report comes later: the job already ended, nothing changes.
    await handlers.report_job_finished(finished(rank[0], job, exit_code=None, error_message="orphaned"), deps)
    final = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert final.status is JobStatus.FAILED and final.exit_code == 1 and final.output_tail == "rank 1 broke"
    kinds = [e.kind for e in uow.store.outbox if e.job.id == job.id]
    assert kinds == ["submitted", "scheduled", "started", "failed"]


async def test_a_gang_succeeds_when_its_last_member_exits_0_not_its_first():
    deps, uow, _ = fake_dependencies()
    await add(deps, gpu(NODE_A, 0), gpu(NODE_B, 0))
    org = uuid.uuid4()
    job = await placed_gang(deps, org)
    rank = {p.rank: p.node_id for p in job.placements}
    await handlers.report_job_finished(finished(rank[0], job, exit_code=0, output_tail="rank 0"), deps)
    await handlers.report_job_finished(
        finished(rank[0], job, exit_code=0, output_tail="rank 0"), deps
    )  # again
    running = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert running.status is JobStatus.SCHEDULED and running.finished_at is None
    assert {p.node_id: p.exited for p in running.placements} == {rank[0]: True, rank[1]: False}
    assert len(uow.store.allocations) == 2  # the gang holds its GPUs until it ends
    [still] = await on(deps, rank[1])
    assert still.id == job.id
    await handlers.report_job_finished(finished(rank[1], job, exit_code=0, output_tail="rank 1"), deps)
    final = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert final.status is JobStatus.SUCCEEDED and final.output_tail == "rank 1"
    assert uow.store.allocations == {}
    kinds = [e.kind for e in uow.store.outbox if e.job.id == job.id]
    assert kinds == ["submitted", "scheduled", "succeeded"]


async def test_a_lost_member_requeues_the_whole_gang_and_the_others_are_told_at_once():
    deps, uow, _ = fake_dependencies()
    await add(deps, gpu(NODE_A, 0), gpu(NODE_B, 0))
    org = uuid.uuid4()
    job = await placed_gang(deps, org)
    rank = {p.rank: p.node_id for p in job.placements}
    await handlers.report_job_finished(finished(rank[0], job, exit_code=0), deps)  # one member done
    lost_node = rank[1]
    with deps.assignments.watch(rank[0]) as woken:
        await add(deps, gpu(lost_node, 0, revision=2, status="offline"))
        assert woken.is_set()
    again = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert again.status is JobStatus.QUEUED and again.attempt == 2 and again.placements == ()
    assert uow.store.allocations == {}
    assert await on(deps, rank[0]) == []
    kinds = [e.kind for e in uow.store.outbox if e.job.id == job.id]
    assert kinds == ["submitted", "scheduled", "requeued"]


async def test_an_agent_reporting_its_member_lost_requeues_the_whole_gang():
    deps, uow, _ = fake_dependencies()
    await add(deps, gpu(NODE_A, 0), gpu(NODE_B, 0))
    org = uuid.uuid4()
    job = await placed_gang(deps, org)
    rank = {p.rank: p.node_id for p in job.placements}
    lost = finished(rank[0], job, exit_code=None, error_message="lost: the agent restarted while the job ran")
    await handlers.report_job_finished(lost, deps)
    again = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert again.status is JobStatus.QUEUED and again.attempt == 2
    assert uow.store.allocations == {} and await on(deps, rank[1]) == []
    # The other member's report of the attempt it was told to stop is about the past: taken, ignored.
    await handlers.report_job_finished(finished(rank[1], job, exit_code=None, error_message="orphaned"), deps)
    assert [e.kind for e in uow.store.outbox if e.job.id == job.id].count("requeued") == 1
    # The next attempt is placed as a whole again, with its addresses.
    [placed] = await schedule_round(deps)
    assert placed.id == job.id and placed.attempt == 2
    assert {p.address for p in placed.placements} == set(NAMES.values())


async def test_only_a_clean_exit_of_a_gang_member_waits_for_the_others():
    deps, _, _ = fake_dependencies()
    await add(deps, gpu(NODE_A, 0), gpu(NODE_B, 0), gpu(NODE_A, 1))
    gang = await placed_gang(deps, uuid.uuid4())
    for outcome in (
        Outcome(exit_code=1),
        Outcome(exit_code=0, cancelled=True),
        Outcome(exit_code=0, timed_out=True),
        Outcome(error_message="lost: node went offline"),
    ):
        assert not gang.member_exited(NODE_A, outcome)
    assert gang.member_exited(NODE_A, Outcome(exit_code=0))
    assert not gang.member_exited(NODE_B, Outcome(exit_code=0))  # the last one: the gang ends now
    await handlers.submit_job(
        commands.SubmitJob(organization_id=uuid.uuid4(), user_id=None, command="x", gpu_count=1), deps
    )
    [single] = await schedule_round(deps)
    assert single.nodes == 1 and not single.member_exited(single.node_id, Outcome(exit_code=0))
