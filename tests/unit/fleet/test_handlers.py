"""Use cases over the in-memory unit of work, through the one ``handle`` entry."""

from __future__ import annotations

import typing
from dataclasses import replace
from decimal import Decimal
from uuid import uuid4

import pytest

from services.fleet.domain.catalog import GpuType
from services.fleet.domain.events import GpuRegistered, GpuStatusChanged
from services.fleet.domain.model import NodeRegistration, ReportedGpu
from services.fleet.service_layer import commands, handlers
from services.fleet.service_layer.handlers import Dependencies, handle
from shared import node_identity
from shared.errors import InvalidArgument, Unauthenticated

from .fakes import FakeMetrics, FakeStore, fake_dependencies

L4 = GpuType("l4", "NVIDIA", "NVIDIA L4", 24576, ("NVIDIA L4",), Decimal("0.7000"), Decimal("0.3500"))
SWEEP = commands.SweepOfflineNodes()


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


def beat(deps: Dependencies, node_id, *unhealthy) -> commands.RecordHeartbeat:
    """A heartbeat from ``node_id``'s agent (its credential; an unknown node: a credential fleet never issued)."""
    credential = deps.uow.node_credentials.get(node_id) or node_identity.new_credential()  # type: ignore[attr-defined]
    return commands.RecordHeartbeat(node_id, frozenset(unhealthy), credential)


async def register(deps: Dependencies, cmd: commands.RegisterNode) -> handlers.RegisteredNode:
    """What an agent does: its credential when it has one, else a join token the operator made with the
    profile the registration names."""
    store = deps.uow
    reg = cmd.registration
    secret = store.host_credentials.get(reg.hostname)  # type: ignore[attr-defined]
    if secret is None:
        made = await handle(commands.CreateJoinToken(reg.organization_id, reg.provider, reg.is_spot), deps)
        secret = made.secret
    done = await handle(replace(cmd, secret=secret), deps)
    if done.credential is not None:
        store.host_credentials[reg.hostname] = done.credential.secret  # type: ignore[attr-defined]
        store.node_credentials[done.node_id] = done.credential.secret  # type: ignore[attr-defined]
    return replace(done, credential=None)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore([L4])


@pytest.fixture
def metrics() -> FakeMetrics:
    return FakeMetrics()


@pytest.fixture
def deps(store: FakeStore, metrics: FakeMetrics) -> Dependencies:
    return fake_dependencies(store, metrics)


def test_every_command_has_exactly_one_handler() -> None:
    assert set(handlers.HANDLERS) == set(typing.get_args(commands.Command))


async def test_register_prices_known_and_unknown_models_and_announces_each_gpu(deps, store) -> None:
    done = await register(deps, register_cmd())
    assert [(g.index, g.gpu_type, g.cost_per_hour) for g in done.gpus] == [
        (0, "l4", Decimal("0.7000")),
        (1, "unknown", Decimal("0.2500")),
    ]
    assert done.heartbeat_interval_seconds == 5
    assert [type(e) for e in store.published] == [GpuRegistered, GpuRegistered]
    assert {e.gpu.gpu_id for e in store.published} == {g.gpu_id for g in done.gpus}


async def test_reregistration_is_idempotent(deps, store) -> None:
    first = await register(deps, register_cmd())
    again = await register(deps, register_cmd())
    assert again == first and len(store.published) == 2 and len(store.nodes) == 1


async def test_card_missing_from_a_reregistration_goes_offline(deps, store) -> None:
    first = await register(deps, register_cmd())
    await register(deps, register_cmd(models=("NVIDIA L4",)))
    gone = store.gpus[first.gpus[1].gpu_id]
    assert gone.status == "offline" and not gone.reported
    assert isinstance(store.published[-1], GpuStatusChanged) and store.published[-1].gpu.status == "offline"
    assert await handle(beat(deps, first.node_id), deps)
    assert store.gpus[gone.id].status == "offline"


async def test_heartbeat_with_a_credential_fleet_never_issued_is_refused_but_counted(deps, metrics) -> None:
    with pytest.raises(Unauthenticated):
        await handle(beat(deps, uuid4()), deps)
    assert metrics.heartbeats == 1


async def test_heartbeat_rejects_gpus_of_other_nodes(deps, store) -> None:
    a = await register(deps, register_cmd("node-a"))
    b = await register(deps, register_cmd("node-b"))
    before = len(store.published)
    with pytest.raises(InvalidArgument):
        await handle(beat(deps, a.node_id, b.gpus[0].gpu_id), deps)
    assert len(store.published) == before


async def test_silent_node_goes_offline_and_comes_back_with_its_gpus(deps, store) -> None:
    done = await register(deps, register_cmd())
    store.advance(10)
    assert await handle(SWEEP, deps) == 0
    store.advance(31)
    assert await handle(SWEEP, deps) == 1
    assert store.nodes[done.node_id].status == "offline"
    assert {g.status for g in store.gpus.values()} == {"offline"}
    unhealthy = done.gpus[1].gpu_id
    assert await handle(beat(deps, done.node_id, unhealthy), deps)
    assert store.nodes[done.node_id].status == "online"
    assert (
        store.gpus[done.gpus[0].gpu_id].status == "available" and store.gpus[unhealthy].status == "unhealthy"
    )
    # Offline events first (the sweep), then the recovery; GPU order inside each step is not specified.
    statuses = [e.gpu.status for e in store.published[2:]]
    assert statuses[:2] == ["offline", "offline"] and sorted(statuses[2:]) == ["available", "unhealthy"]
    assert all(isinstance(e, GpuStatusChanged) for e in store.published[2:])


async def test_one_sweep_round_takes_every_silent_node_batch_by_batch(deps, store) -> None:
    for i in range(5):
        await register(deps, register_cmd(f"node-{i}", models=("NVIDIA L4",)))
    store.advance(31)
    units = len(store.units)
    assert await handle(commands.SweepOfflineNodes(batch=2), deps) == 5
    # Batches of 2, 2 and 1 (short: the round ends), then the census.
    assert len(store.units) - units == 4
    assert {n.status for n in store.nodes.values()} == {"offline"}
    assert await handle(commands.SweepOfflineNodes(batch=2), deps) == 0


async def test_a_sweep_round_shows_every_status_with_its_count(deps, store, metrics) -> None:
    await register(deps, register_cmd("node-a"))
    await register(deps, register_cmd("node-b", models=("NVIDIA L4",)))
    await handle(SWEEP, deps)
    census = metrics.censuses[-1]
    assert dict(census.nodes) == {"online": 2, "offline": 0}
    assert dict(census.gpus) == {"available": 3, "draining": 0, "unhealthy": 0, "offline": 0}
    store.advance(31)
    await handle(SWEEP, deps)
    assert dict(metrics.censuses[-1].nodes) == {"online": 0, "offline": 2}
    assert metrics.censuses[-1].gpus["offline"] == 3 and metrics.censuses[-1].gpus["available"] == 0


async def test_list_gpus_runs_in_the_callers_tenant_scope(deps, store) -> None:
    org_a, org_b = uuid4(), uuid4()
    await register(deps, register_cmd("shared"))
    await register(deps, register_cmd("dedicated", org=org_a))
    seen_by_b = await handle(commands.ListGpus(org_b), deps)
    assert {g.node_name for g in seen_by_b} == {"shared"}
    assert store.units[-1] == {"org_id": org_b, "system": False}
    assert {g.node_name for g in await handle(commands.ListGpus(org_a), deps)} == {"shared", "dedicated"}
    with pytest.raises(InvalidArgument):
        await handle(commands.ListGpus(org_a, status="busy"), deps)


async def test_list_gpu_types_is_the_active_catalog_in_the_tenant_scope(store) -> None:
    retired = GpuType("k80", "NVIDIA", "Tesla K80", 12288, ("Tesla K80",), Decimal("0.1"), None, False)
    store.types = [L4, retired]
    org = uuid4()
    assert await handle(commands.ListGpuTypes(org), fake_dependencies(store)) == [L4]
    assert store.units[-1] == {"org_id": org, "system": False}


async def test_list_gpus_refuses_allocated_as_a_filter(deps) -> None:
    # Fleet keeps no allocations: asking it for allocated GPUs is a mistake to name, not an empty answer.
    with pytest.raises(InvalidArgument, match="scheduler"):
        await handle(commands.ListGpus(uuid4(), status="allocated"), deps)


async def test_list_nodes_shows_the_shared_pool_and_the_callers_own_nodes(deps, store) -> None:
    org_a, org_b = uuid4(), uuid4()
    await register(deps, register_cmd("shared", models=("NVIDIA L4", "NVIDIA L4")))
    store.advance(1)
    await register(deps, register_cmd("dedicated-a", org=org_a))
    store.advance(1)
    await register(deps, register_cmd("dedicated-b", org=org_b))
    page = await handle(commands.ListNodes(org_a), deps)
    assert [n.node.hostname for n in page.nodes] == ["shared", "dedicated-a"]
    assert store.units[-1] == {"org_id": org_a, "system": False}
    assert page.next_cursor is None
    shared = page.nodes[0]
    assert [g.index for g in shared.gpus] == [0, 1] and {g.node_id for g in shared.gpus} == {shared.node.id}
    assert [n.node.hostname for n in (await handle(commands.ListNodes(org_b), deps)).nodes] == [
        "shared",
        "dedicated-b",
    ]


async def test_list_nodes_pages_by_registration_and_a_reregistration_keeps_its_place(deps, store) -> None:
    org = uuid4()
    for name in ("n1", "n2", "n3"):
        await register(deps, register_cmd(name, models=("NVIDIA L4",)))
        store.advance(1)
    await register(deps, register_cmd("n1", models=("NVIDIA L4",)))  # the agent restarted: same node
    first = await handle(commands.ListNodes(org, limit=2), deps)
    assert [n.node.hostname for n in first.nodes] == ["n1", "n2"] and first.next_cursor
    rest = await handle(commands.ListNodes(org, limit=2, cursor=first.next_cursor), deps)
    assert [n.node.hostname for n in rest.nodes] == ["n3"] and rest.next_cursor is None


async def test_the_operator_lists_every_node_of_every_organization_in_pages(deps, store) -> None:
    org_a, org_b = uuid4(), uuid4()
    await register(deps, register_cmd("shared", models=("NVIDIA L4",)))
    store.advance(1)
    await register(deps, register_cmd("dedicated-a", org=org_a))
    store.advance(1)
    await register(deps, register_cmd("dedicated-b", org=org_b))
    first = await handle(commands.ListAllNodes(limit=2), deps)
    assert store.units[-1] == {"org_id": None, "system": True}
    assert [n.node.hostname for n in first.nodes] == ["shared", "dedicated-a"] and first.next_cursor
    rest = await handle(commands.ListAllNodes(limit=2, cursor=first.next_cursor), deps)
    assert [(n.node.hostname, n.node.organization_id) for n in rest.nodes] == [("dedicated-b", org_b)]
    assert rest.next_cursor is None and rest.nodes[0].gpus
    with pytest.raises(InvalidArgument):
        await handle(commands.ListAllNodes(limit=201), deps)


@pytest.mark.parametrize(
    "cmd", [commands.ListNodes(uuid4(), limit=201), commands.ListNodes(uuid4(), cursor="x")]
)
async def test_list_nodes_refuses_bad_paging(deps, cmd) -> None:
    with pytest.raises(InvalidArgument):
        await handle(cmd, deps)
