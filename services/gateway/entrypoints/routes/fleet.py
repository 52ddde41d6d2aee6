"""/v1/gpus, /v1/nodes and /v1/gpu-types: fleet's inventory merged with the scheduler's allocations.

The scheduler alone owns allocation: fleet answers what exists and how healthy it is, the scheduler's
``JobService/ListAllocations`` which of those GPUs a job holds (with the job's id only when the job is
the caller's organization's own). Both calls carry the caller's key (scope fleet:read for each).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from gpufleet.v1 import common_pb2, fleet_pb2, scheduler_pb2

from services.gateway.adapters.downstream import Downstream
from services.gateway.entrypoints import translate
from services.gateway.entrypoints.auth import Caller, CallerDep, DownstreamDep
from services.gateway.entrypoints.responses import GpuListOut, GpuOut, GpuTypeListOut
from services.gateway.entrypoints.responses_fleet import (
    GpuHealth,
    NodeGpuOut,
    NodeGpuStatus,
    NodeListOut,
    NodeOut,
)
from services.gateway.entrypoints.routes import Cursor, PageSize, problem_responses
from shared.contracts import limits
from shared.contracts.fleet import GpuStatus
from shared.errors import InvalidArgument
from shared.wire import parse_ts

router = APIRouter(prefix="/v1", tags=["fleet"])

# What one ListAllocations request may name; past it the gateway asks for every held GPU instead.
MAX_ALLOCATION_IDS = 10_000

Holders = dict[str, scheduler_pb2.GpuAllocation]


async def holders(down: Downstream, caller: Caller, gpu_ids: Iterable[str]) -> Holders:
    """The GPUs among ``gpu_ids`` a live job holds, by GPU id (the scheduler's answer)."""
    wanted = sorted(set(gpu_ids))
    if not wanted:
        return {}
    request = scheduler_pb2.ListAllocationsRequest(
        gpu_ids=wanted if len(wanted) <= MAX_ALLOCATION_IDS else []
    )
    reply = await down.jobs.ListAllocations(request, **caller.call)
    keep = set(wanted)
    return {a.gpu_id: a for a in reply.allocations if a.gpu_id in keep}


def merged_gpu(gpu: fleet_pb2.Gpu, held: scheduler_pb2.GpuAllocation | None) -> GpuOut:
    """Fleet's GPU with the scheduler's hold: ``allocated`` when a job holds a healthy GPU (a held GPU
    that went unhealthy or offline keeps that status, as before), ``in_use`` whenever one holds it."""
    out = translate.gpu(gpu)
    if held is None:
        return out.model_copy(update={"in_use": False, "job_id": None})
    status = "allocated" if gpu.status == "available" else out.status
    return out.model_copy(
        update={"status": status, "in_use": True, "job_id": (held.job_id or None) if held.mine else None}
    )


_HEALTH: dict[str, GpuHealth] = {
    "available": "healthy",
    "unhealthy": "unhealthy",
    "draining": "draining",
    "offline": "offline",
}


def node_gpu(gpu: fleet_pb2.Gpu, held: scheduler_pb2.GpuAllocation | None) -> NodeGpuOut:
    health = _HEALTH.get(gpu.status)
    if health is None:
        raise translate.UpstreamContractError(f"fleet sent an unknown GPU status {gpu.status!r}")
    status: NodeGpuStatus = "allocated" if held else "free" if health == "healthy" else "offline"
    return NodeGpuOut(
        id=gpu.id,
        uuid=gpu.uuid,
        index=gpu.index,
        gpu_type=gpu.gpu_type,
        memory_mb=gpu.memory_total_mb,
        health=health,
        status=status,
        job_id=(held.job_id or None) if held is not None and held.mine else None,
    )


def _at(value: str) -> datetime | None:
    try:
        return parse_ts(value)
    except InvalidArgument as exc:
        raise translate.UpstreamContractError(f"not an RFC 3339 timestamp: {value!r}") from exc


def node_out(node: fleet_pb2.Node, held: Holders) -> NodeOut:
    return NodeOut(
        id=node.id,
        hostname=node.hostname,
        provider=node.provider,
        spot=node.is_spot,
        status=node.status,
        last_heartbeat_at=_at(node.last_heartbeat),
        cpu_cores=node.cpu_cores,
        ram_mb=node.ram_mb,
        labels=dict(node.labels),
        gpus=[node_gpu(g, held.get(g.id)) for g in node.gpus],
    )


def _fleet_filter(status: GpuStatus | None) -> str:
    # Fleet knows health, not allocation: "allocated" and "available" are both healthy GPUs to fleet.
    return "available" if status == "allocated" else status or ""


@router.get(
    "/gpus",
    response_model=GpuListOut,
    responses=problem_responses(422),
    summary="GPUs the caller's organization can use",
)
async def list_gpus(
    caller: CallerDep,
    down: DownstreamDep,
    status: Annotated[GpuStatus | None, Query(description="Only GPUs in this state.")] = None,
    gpu_type: Annotated[
        str | None, Query(max_length=limits.MAX_GPU_TYPE, description="Only this catalog type.")
    ] = None,
) -> GpuListOut:
    reply = await down.fleet.ListGpus(
        fleet_pb2.ListGpusRequest(status=_fleet_filter(status), gpu_type=gpu_type or ""), **caller.call
    )
    held = await holders(down, caller, (g.id for g in reply.gpus))
    gpus = [merged_gpu(g, held.get(g.id)) for g in reply.gpus]
    return GpuListOut(gpus=[g for g in gpus if status is None or g.status == status])


@router.get(
    "/nodes",
    response_model=NodeListOut,
    responses=problem_responses(422),
    summary="Nodes the caller's organization can use (the shared pool and its own), with their GPUs",
)
async def list_nodes(
    caller: CallerDep, down: DownstreamDep, limit: PageSize = None, cursor: Cursor = None
) -> NodeListOut:
    reply = await down.fleet.ListNodes(
        fleet_pb2.ListNodesRequest(limit=limit or 0, cursor=cursor or ""), **caller.call
    )
    held = await holders(down, caller, (g.id for n in reply.nodes for g in n.gpus))
    return NodeListOut(items=[node_out(n, held) for n in reply.nodes], next_cursor=reply.next_cursor or None)


@router.get(
    "/gpu-types", response_model=GpuTypeListOut, responses=problem_responses(), summary="The GPU type catalog"
)
async def list_gpu_types(caller: CallerDep, down: DownstreamDep) -> GpuTypeListOut:
    reply = await down.fleet.ListGpuTypes(common_pb2.Empty(), **caller.call)
    return GpuTypeListOut(gpu_types=[translate.gpu_type(t) for t in reply.gpu_types])
