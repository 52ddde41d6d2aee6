"""/v1/gpus and /v1/gpu-types (fleet)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from gpufleet.v1 import common_pb2, fleet_pb2

from services.gateway.entrypoints import translate
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep
from services.gateway.entrypoints.responses import GpuListOut, GpuTypeListOut
from services.gateway.entrypoints.routes import problem_responses
from shared.contracts import limits
from shared.contracts.fleet import GpuStatus

router = APIRouter(prefix="/v1", tags=["fleet"])


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
        fleet_pb2.ListGpusRequest(status=status or "", gpu_type=gpu_type or ""), **caller.call
    )
    return GpuListOut(gpus=[translate.gpu(g) for g in reply.gpus])


@router.get(
    "/gpu-types", response_model=GpuTypeListOut, responses=problem_responses(), summary="The GPU type catalog"
)
async def list_gpu_types(caller: CallerDep, down: DownstreamDep) -> GpuTypeListOut:
    reply = await down.fleet.ListGpuTypes(common_pb2.Empty(), **caller.call)
    return GpuTypeListOut(gpu_types=[translate.gpu_type(t) for t in reply.gpu_types])
