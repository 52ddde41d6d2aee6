"""Use cases over the in-memory unit of work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from services.fleet.domain.catalog import GpuType
from services.fleet.domain.events import GpuRegistered, GpuStatusChanged
from services.fleet.domain.model import NodeRegistration, ReportedGpu
from services.fleet.entrypoints.consumers import to_command
from services.fleet.service_layer import commands, handlers
from shared.contracts import jobs
from shared.errors import InvalidArgument
from shared.events import Envelope

from .fakes import FakeStore

L4 = GpuType("l4", "NVIDIA", "NVIDIA L4", 24576, ("NVIDIA L4",), Decimal("0.7000"), Decimal("0.3500"))
POLICY = handlers.RegistrationPolicy(
    unknown_gpu_price_per_hour=Decimal("0.2500"), heartbeat_interval_seconds=5
)
TIMEOUT = timedelta(seconds=30)


def register_cmd(
    hostname: str = "node-a",
    models: tuple[str, ...] = ("NVIDIA L4", "Mystery GPU"),
    uuids: tuple[str, ...] | None = None,
    org=None,
) -> commands.RegisterNode:
    uuids = uuids or tuple(f"GPU-{hostname}-{i}" for i in range(len(models)))
    return commands.RegisterNode(
        NodeRegistration(
            hostname=hostname,
            provider="aws",
            gpu_backend="nvml",
            driver_version="550",
            agent_version="1",
            organization_id=org,
            is_spot=False,
            gpus=tuple(
                ReportedGpu(i, u, m, 24576) for i, (u, m) in enumerate(zip(uuids, models, strict=True))
            ),
        )
    )


@pytest.fixture
def store() -> FakeStore:
    return FakeStore([L4])


async def test_register_prices_known_and_unknown_models_and_announces_each_gpu(store: FakeStore) -> None:
    done = await handlers.register_node(register_cmd(), store, POLICY)
    assert [(g.index, g.gpu_type, g.cost_per_hour) for g in done.gpus] == [
        (0, "l4", Decimal("0.7000")),
        (1, "unknown", Decimal("0.2500")),
    ]
    assert done.heartbeat_interval_seconds == 5
    assert [type(e) for e in store.published] == [GpuRegistered, GpuRegistered]
    assert {e.gpu.gpu_id for e in store.published} == {g.gpu_id for g in done.gpus}


async def test_reregistration_is_idempotent(store: FakeStore) -> None:
    first = await handlers.register_node(register_cmd(), store, POLICY)
    again = await handlers.register_node(register_cmd(), store, POLICY)
    assert again == first and len(store.published) == 2 and len(store.nodes) == 1


async def test_card_missing_from_a_reregistration_goes_offline(store: FakeStore) -> None:
    first = await handlers.register_node(register_cmd(), store, POLICY)
    await handlers.register_node(register_cmd(models=("NVIDIA L4",)), store, POLICY)
    gone = store.gpus[first.gpus[1].gpu_id]
    assert gone.status == "offline" and not gone.reported
    assert isinstance(store.published[-1], GpuStatusChanged) and store.published[-1].gpu.status == "offline"
    assert await handlers.heartbeat(commands.Heartbeat(first.node_id, frozenset()), store)
    assert store.gpus[gone.id].status == "offline"


async def test_heartbeat_of_an_unknown_node_is_not_known(store: FakeStore) -> None:
    assert not await handlers.heartbeat(commands.Heartbeat(uuid4(), frozenset()), store)


async def test_heartbeat_rejects_gpus_of_other_nodes(store: FakeStore) -> None:
    a = await handlers.register_node(register_cmd("node-a"), store, POLICY)
    b = await handlers.register_node(register_cmd("node-b"), store, POLICY)
    with pytest.raises(InvalidArgument):
        await handlers.heartbeat(commands.Heartbeat(a.node_id, frozenset({b.gpus[0].gpu_id})), store)


async def test_silent_node_goes_offline_and_comes_back_with_its_gpus(store: FakeStore) -> None:
    done = await handlers.register_node(register_cmd(), store, POLICY)
    store.advance(10)
    assert await handlers.sweep_offline_nodes(store, TIMEOUT) == 0
    store.advance(31)
    assert await handlers.sweep_offline_nodes(store, TIMEOUT) == 1
    assert store.nodes[done.node_id].status == "offline"
    assert {g.status for g in store.gpus.values()} == {"offline"}
    unhealthy = done.gpus[1].gpu_id
    assert await handlers.heartbeat(commands.Heartbeat(done.node_id, frozenset({unhealthy})), store)
    assert store.nodes[done.node_id].status == "online"
    assert (
        store.gpus[done.gpus[0].gpu_id].status == "available" and store.gpus[unhealthy].status == "unhealthy"
    )
    # Offline events first (the sweep), then the recovery; GPU order inside each step is not specified.
    statuses = [e.gpu.status for e in store.published[2:]]
    assert statuses[:2] == ["offline", "offline"] and sorted(statuses[2:]) == ["available", "unhealthy"]
    assert all(isinstance(e, GpuStatusChanged) for e in store.published[2:])


def job_event(event_type: str, job_id, gpu_ids, memory_mb: int = 8000) -> Envelope:
    now = datetime.now(UTC)
    snapshot = jobs.JobSnapshotV1(
        job_id=job_id,
        organization_id=uuid4(),
        status="scheduled",
        command="true",
        gpu_count=len(gpu_ids),
        gpu_memory_mb=memory_mb,
        priority=0,
        created_at=now,
        allocation=[
            jobs.GpuAllocationV1(gpu_id=g, gpu_index=i, gpu_type="l4", cost_per_hour=Decimal("0.7"))
            for i, g in enumerate(gpu_ids)
        ],
    )
    return Envelope(type=event_type, source="test", data=jobs.JobEventV1(job=snapshot))


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        (jobs.JOB_SUBMITTED, commands.NoOp),
        (jobs.JOB_SCHEDULED, commands.OccupyGpus),
        (jobs.JOB_STARTED, commands.NoOp),
        (jobs.JOB_SUCCEEDED, commands.ReleaseGpus),
        (jobs.JOB_FAILED, commands.ReleaseGpus),
        (jobs.JOB_CANCELLED, commands.ReleaseGpus),
    ],
)
def test_job_events_translate_to_commands(event_type: str, kind: type) -> None:
    gpu_id = uuid4()
    cmd = to_command(job_event(event_type, uuid4(), [gpu_id]))
    assert isinstance(cmd, kind)
    if isinstance(cmd, commands.OccupyGpus):
        assert cmd.gpu_ids == (gpu_id,) and cmd.memory_mb == 8000


async def test_job_events_occupy_and_free_gpus_once(store: FakeStore) -> None:
    done = await handlers.register_node(register_cmd(), store, POLICY)
    gpu_id, job_id = done.gpus[0].gpu_id, uuid4()
    scheduled = job_event(jobs.JOB_SCHEDULED, job_id, [gpu_id])
    assert await handlers.apply_job_command(to_command(scheduled), store)
    assert not await handlers.apply_job_command(to_command(scheduled), store)  # redelivered
    gpu = store.gpus[gpu_id]
    assert (gpu.in_use, gpu.status, gpu.current_job_id, gpu.memory_allocated_mb) == (
        True,
        "allocated",
        job_id,
        8000,
    )
    assert await handlers.apply_job_command(to_command(job_event(jobs.JOB_FAILED, job_id, [gpu_id])), store)
    gpu = store.gpus[gpu_id]
    assert (gpu.in_use, gpu.status, gpu.current_job_id, gpu.memory_allocated_mb) == (
        False,
        "available",
        None,
        0,
    )
    assert len(store.published) == 2  # allocation is never re-published


async def test_list_gpus_runs_in_the_callers_tenant_scope(store: FakeStore) -> None:
    org_a, org_b = uuid4(), uuid4()
    await handlers.register_node(register_cmd("shared"), store, POLICY)
    await handlers.register_node(register_cmd("dedicated", org=org_a), store, POLICY)
    seen_by_b = await handlers.list_gpus(commands.ListGpus(org_b), store)
    assert {g.node_name for g in seen_by_b} == {"shared"}
    assert store.units[-1] == {"org_id": org_b, "system": False}
    with pytest.raises(InvalidArgument):
        await handlers.list_gpus(commands.ListGpus(org_a, status="busy"), store)
