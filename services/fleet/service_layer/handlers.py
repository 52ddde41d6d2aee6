"""Use cases of the fleet service: async handlers (command, dependencies) -> result.

Entrypoints (and the sweeper) call :func:`handle`; every handler is listed in :data:`HANDLERS`. Every
unit takes its time from the unit of work (the database's clock), so replicas and the sweeper agree on
what "30 seconds ago" means. Fleet keeps inventory and health only: who holds a GPU is the scheduler's
answer, never fleet's."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from shared import record_signing
from shared.contracts.limits import DEFAULT_PAGE, MAX_PAGE
from shared.cursors import decode_cursor, encode_cursor
from shared.errors import InvalidArgument
from shared.handlers import dispatch

from ..domain.catalog import GpuType, price_gpu
from ..domain.identity import ClaimedGpu, check_gpu_claims, require_own_node
from ..domain.model import GPU_STATUSES, NODE_STATUSES, Gpu, Node
from . import audit, commands, identity
from .identity import IssuedCredential
from .unit_of_work import Census, NodeInventory, UnitOfWorkFactory

log = logging.getLogger("gpufleet.fleet")


@dataclass(frozen=True)
class RegistrationPolicy:
    unknown_gpu_price_per_hour: Decimal
    heartbeat_interval_seconds: int


class FleetMetrics(Protocol):
    def count_heartbeat(self) -> None: ...

    def show_census(self, census: Census) -> None:
        """Every known status of nodes and GPUs with its count (zero included)."""


@dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    policy: RegistrationPolicy
    # A node silent for longer than this is offline, and so are its GPUs.
    node_timeout: timedelta
    metrics: FleetMetrics
    # How long a node credential superseded by a rotation keeps working.
    credential_overlap: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class RegisteredGpu:
    index: int
    gpu_id: UUID
    gpu_type: str
    cost_per_hour: Decimal
    name: str = ""


@dataclass(frozen=True)
class NodePage:
    nodes: list[NodeInventory]
    next_cursor: str | None


@dataclass(frozen=True)
class RegisteredNode:
    node_id: UUID
    gpus: list[RegisteredGpu]
    heartbeat_interval_seconds: int
    # Issued when the registration spent a join token: the node's credential, told once.
    credential: IssuedCredential | None = None


async def register_node(cmd: commands.RegisterNode, deps: Dependencies) -> RegisteredNode:
    """Register the node the presented secret stands for (a join token: the node it admits, found by
    hostname or new; a node credential: its own node), with what it is taken from its token, and its
    GPUs by vendor uuid, so ids survive agent restarts. Nothing is written when it is refused."""
    reg = cmd.registration.validated()
    if cmd.record_public_key and not record_signing.valid_public_key(cmd.record_public_key):
        raise InvalidArgument(
            "record_public_key is not an Ed25519 public key (32 bytes)", field="record_public_key"
        )
    policy = deps.policy
    async with deps.uow(system=True) as tx:
        now = await tx.now()
        catalog = await tx.catalog()
        admitted = await identity.admit(tx, cmd.secret, reg.hostname, now)
        reg = identity.as_profiled(reg, admitted.profile)
        before = audit.node_state(admitted.node) if admitted.node is not None else None
        node = Node.register(reg, now, admitted.node)
        node.fixed_labels, node.decommissioned_at = dict(admitted.profile.labels), None
        known = await tx.gpus_of_node_or_uuid(node.id, [g.uuid for g in reg.gpus])
        others = {g.node_id for g in known if g.node_id != node.id}
        released = await tx.decommissioned(sorted(others))
        check_gpu_claims(node.id, [ClaimedGpu(g.uuid, g.node_id, g.node_id in released) for g in known])
        await tx.save_node(node)
        if cmd.record_public_key:
            await tx.save_record_key(node.id, cmd.record_public_key, now)
        issued = await identity.complete(tx, admitted, node.id, now)
        if issued is not None:  # admitted with a join token (a credential's re-registration is routine)
            await tx.record_audit(
                audit.node_change("node.register", node, before, call=audit.by_node(node.id))
            )
        by_uuid = {g.uuid: g for g in known}
        result = []
        for reported in sorted(reg.gpus, key=lambda g: g.index):
            match = price_gpu(
                reported.model, catalog, spot=node.is_spot, unknown_price=policy.unknown_gpu_price_per_hour
            )
            if not match.known:
                log.warning(
                    "GPU model is not in the catalog; registering it as unknown",
                    extra={
                        "hostname": node.hostname,
                        "model": reported.model,
                        "index": reported.index,
                        "cost_per_hour": str(match.cost_per_hour),
                    },
                )
            gpu = Gpu.register(
                node, reported, match.gpu_type, match.cost_per_hour, now, by_uuid.get(reported.uuid)
            )
            await tx.save_gpu(gpu)
            result.append(RegisteredGpu(gpu.index, gpu.id, gpu.gpu_type, gpu.cost_per_hour, gpu.name))
        # A card the node no longer reports (removed, replaced, failed to enumerate) cannot run work.
        reported_uuids = {g.uuid for g in reg.gpus}
        for gone in known:
            if gone.node_id == node.id and gone.uuid not in reported_uuids and gone.detach(now):
                await tx.save_gpu(gone)
    return RegisteredNode(node.id, result, policy.heartbeat_interval_seconds, issued)


async def record_heartbeat(cmd: commands.RecordHeartbeat, deps: Dependencies) -> bool:
    """Record that the caller's node is alive and apply its GPU health report (another node's id:
    PERMISSION_DENIED; a credential no longer valid: UNAUTHENTICATED)."""
    deps.metrics.count_heartbeat()
    async with deps.uow(system=True) as tx:
        caller = await identity.caller(tx, cmd.credential, await tx.now())
        require_own_node(caller.node_id, cmd.node_id)
        node = await tx.node(cmd.node_id)
        if node is None:
            return False
        now = await tx.now()
        gpus = await tx.gpus_of_node(node.id)
        unknown = cmd.unhealthy_gpu_ids - {g.id for g in gpus}
        if unknown:
            raise InvalidArgument(
                f"unhealthy_gpu_ids: {sorted(map(str, unknown))[0]} is not a GPU of this node",
                field="unhealthy_gpu_ids",
            )
        if node.status == "offline":
            log.info("node back online", extra={"node_id": str(node.id), "hostname": node.hostname})
        node.status, node.last_heartbeat = "online", now
        await tx.save_node(node)
        for gpu in gpus:
            if gpu.apply_health_report(gpu.id in cmd.unhealthy_gpu_ids, now):
                await tx.save_gpu(gpu)
    return True


async def _sweep_batch(deps: Dependencies, batch: int) -> int:
    async with deps.uow(system=True) as tx:
        now = await tx.now()
        stale = await tx.stale_nodes(now - deps.node_timeout, batch)
        for node in stale:
            node.status = "offline"
            await tx.save_node(node)
            for gpu in await tx.gpus_of_node(node.id):
                if gpu.mark_offline(now, f"node {node.hostname} missed heartbeats"):
                    await tx.save_gpu(gpu)
            log.warning(
                "node went offline",
                extra={
                    "node_id": str(node.id),
                    "hostname": node.hostname,
                    "last_heartbeat": node.last_heartbeat.isoformat(),
                },
            )
    return len(stale)


async def sweep_offline_nodes(cmd: commands.SweepOfflineNodes, deps: Dependencies) -> int:
    """Mark nodes not heard from within the node timeout offline, with their GPUs, then refresh the
    fleet gauges; returns how many nodes went offline.

    One transaction per batch keeps locks short; a batch that comes back short means no more are due
    (rows another replica's sweep holds are skipped, and that replica marks them)."""
    if cmd.batch < 1:
        raise ValueError("batch must be positive")
    swept = 0
    while True:
        n = await _sweep_batch(deps, cmd.batch)
        swept += n
        if n < cmd.batch:
            break
    async with deps.uow(system=True) as tx:
        census = await tx.census()
    deps.metrics.show_census(
        Census(
            nodes={s: census.nodes.get(s, 0) for s in (*NODE_STATUSES, *census.nodes)},
            gpus={s: census.gpus.get(s, 0) for s in (*GPU_STATUSES, *census.gpus)},
        )
    )
    return swept


def _visible_to(organization_id: UUID, owner: UUID | None) -> bool:
    # Row-level security already hides other organizations' dedicated capacity; this is the second lock.
    return owner is None or owner == organization_id


async def list_gpus(cmd: commands.ListGpus, deps: Dependencies) -> list[Gpu]:
    if cmd.status == "allocated":
        raise InvalidArgument(
            "fleet keeps no allocations: which GPUs are allocated is the scheduler's answer "
            "(JobService/ListAllocations)",
            field="status",
        )
    if cmd.status and cmd.status not in GPU_STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(GPU_STATUSES)}", field="status")
    async with deps.uow(org_id=cmd.organization_id) as tx:
        gpus = await tx.visible_gpus(cmd.status, cmd.gpu_type)
    return [g for g in gpus if _visible_to(cmd.organization_id, g.organization_id)]


async def list_nodes(cmd: commands.ListNodes, deps: Dependencies) -> NodePage:
    """A page of the shared pool's nodes and those dedicated to the caller, oldest registration first."""
    limit = cmd.limit or DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    after = decode_cursor(cmd.cursor) if cmd.cursor else None
    async with deps.uow(org_id=cmd.organization_id) as tx:
        rows = await tx.visible_nodes(after, limit + 1)
    more = len(rows) > limit
    page = rows[:limit]
    last = page[-1].node if page else None
    nodes = [n for n in page if _visible_to(cmd.organization_id, n.node.organization_id)]
    cursor = encode_cursor(last.registered_at, last.id) if more and last and last.registered_at else None
    return NodePage(nodes, cursor)


async def list_all_nodes(cmd: commands.ListAllNodes, deps: Dependencies) -> NodePage:
    """A page of every node of the fleet (the operator's view; the entrypoint requires the operator)."""
    limit = cmd.limit or DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    after = decode_cursor(cmd.cursor) if cmd.cursor else None
    async with deps.uow(system=True) as tx:
        rows = await tx.visible_nodes(after, limit + 1)
    page = rows[:limit]
    last = page[-1].node if page else None
    more = len(rows) > limit
    cursor = encode_cursor(last.registered_at, last.id) if more and last and last.registered_at else None
    return NodePage(page, cursor)


async def list_gpu_types(cmd: commands.ListGpuTypes, deps: Dependencies) -> list[GpuType]:
    async with deps.uow(org_id=cmd.organization_id) as tx:
        return await tx.catalog(active_only=True)


async def get_record_keys(cmd: commands.GetRecordKeys, deps: Dependencies) -> dict[UUID, bytes]:
    if not 1 <= len(cmd.node_ids) <= MAX_RECORD_KEYS:
        raise InvalidArgument(f"between 1 and {MAX_RECORD_KEYS} node ids per call", field="node_ids")
    async with deps.uow(system=True) as tx:
        return await tx.record_keys(sorted(set(cmd.node_ids)))


MAX_RECORD_KEYS = 1000

Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.RegisterNode: register_node,
    commands.RecordHeartbeat: record_heartbeat,
    commands.SweepOfflineNodes: sweep_offline_nodes,
    commands.ListGpus: list_gpus,
    commands.ListGpuTypes: list_gpu_types,
    commands.ListNodes: list_nodes,
    commands.ListAllNodes: list_all_nodes,
    commands.AuthenticateNode: identity.authenticate_node,
    commands.AuthenticateNodes: identity.authenticate_nodes,
    commands.GetRecordKeys: get_record_keys,
    commands.RotateNodeCredential: identity.rotate_credential,
    commands.CreateJoinToken: identity.create_join_token,
    commands.ListJoinTokens: identity.list_join_tokens,
    commands.RevokeJoinToken: identity.revoke_join_token,
    commands.DecommissionNode: identity.decommission_node,
}


async def handle(cmd: commands.Command, deps: Dependencies) -> Any:
    """Run the handler registered for ``cmd``'s type."""
    return await dispatch(HANDLERS, cmd, deps)
