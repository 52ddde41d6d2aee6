"""Use cases of the fleet service: async handlers (command, unit of work) -> result."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from shared.errors import InvalidArgument

from ..domain.catalog import GpuType, price_gpu
from ..domain.model import GPU_STATUSES, Gpu, Node
from .commands import Heartbeat, JobCommand, ListGpus, NoOp, OccupyGpus, RegisterNode, ReleaseGpus
from .unit_of_work import UnitOfWorkFactory

log = logging.getLogger("gpufleet.fleet")

JOB_CONSUMER = "fleet.gpu-allocation"


@dataclass(frozen=True)
class RegistrationPolicy:
    unknown_gpu_price_per_hour: Decimal
    heartbeat_interval_seconds: int


@dataclass(frozen=True)
class RegisteredGpu:
    index: int
    gpu_id: UUID
    gpu_type: str
    cost_per_hour: Decimal
    name: str = ""


@dataclass(frozen=True)
class RegisteredNode:
    node_id: UUID
    gpus: list[RegisteredGpu]
    heartbeat_interval_seconds: int


async def register_node(
    cmd: RegisterNode, uow: UnitOfWorkFactory, policy: RegistrationPolicy
) -> RegisteredNode:
    """Upsert the node by hostname and its GPUs by vendor uuid, so ids survive agent restarts."""
    reg = cmd.registration.validated()
    async with uow(system=True) as tx:
        now = await tx.now()
        catalog = await tx.catalog()
        node = Node.register(reg, now, await tx.node_by_hostname(reg.hostname))
        await tx.save_node(node)
        known = await tx.gpus_of_node_or_uuid(node.id, [g.uuid for g in reg.gpus])
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
    return RegisteredNode(node.id, result, policy.heartbeat_interval_seconds)


async def heartbeat(cmd: Heartbeat, uow: UnitOfWorkFactory) -> bool:
    """Record that the node is alive and apply its GPU health report; False for an unknown node."""
    async with uow(system=True) as tx:
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


async def sweep_offline_nodes(uow: UnitOfWorkFactory, timeout: timedelta, batch: int = 100) -> int:
    """Mark nodes not heard from within ``timeout`` offline, with their GPUs; returns how many nodes."""
    async with uow(system=True) as tx:
        now = await tx.now()
        stale = await tx.stale_nodes(now - timeout, batch)
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


async def apply_job_command(cmd: JobCommand, uow: UnitOfWorkFactory) -> bool:
    """Mirror a job's hold on GPUs; False when the event was processed before (nothing applied)."""
    if isinstance(cmd, NoOp):
        return True  # no effect, so nothing to deduplicate: spare the ledger a row
    async with uow(system=True) as tx:
        if not await tx.claim(JOB_CONSUMER, cmd.event_id):
            return False
        now = await tx.now()
        if isinstance(cmd, OccupyGpus):
            gpus = await tx.gpus_by_id(cmd.gpu_ids)
            missing = set(cmd.gpu_ids) - {g.id for g in gpus}
            if missing:
                # The scheduler only places on GPUs fleet announced; a miss means data loss here.
                log.warning(
                    "job scheduled on GPUs fleet does not know",
                    extra={"job_id": str(cmd.job_id), "gpu_ids": sorted(map(str, missing))},
                )
            for gpu in gpus:
                if gpu.occupy(cmd.job_id, cmd.memory_mb, now):
                    await tx.save_gpu(gpu)
        elif isinstance(cmd, ReleaseGpus):
            for gpu in await tx.gpus_of_job(cmd.job_id):
                if gpu.release(cmd.job_id, now):
                    await tx.save_gpu(gpu)
    return True


async def list_gpus(q: ListGpus, uow: UnitOfWorkFactory) -> list[Gpu]:
    if q.status and q.status not in GPU_STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(GPU_STATUSES)}", field="status")
    async with uow(org_id=q.organization_id) as tx:
        return await tx.visible_gpus(q.status, q.gpu_type)


async def list_gpu_types(uow: UnitOfWorkFactory, organization_id: UUID) -> list[GpuType]:
    async with uow(org_id=organization_id) as tx:
        return await tx.catalog(active_only=True)
