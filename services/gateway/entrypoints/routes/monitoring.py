"""/v1/utilization (monitoring)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from gpufleet.v1 import monitoring_pb2

from services.gateway.entrypoints import translate
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep
from services.gateway.entrypoints.responses import UtilizationOut
from services.gateway.entrypoints.routes import problem_responses
from shared.contracts import limits

router = APIRouter(prefix="/v1", tags=["monitoring"])


@router.get(
    "/utilization",
    response_model=UtilizationOut,
    responses=problem_responses(422),
    summary="Per-GPU utilization while the GPUs ran the organization's jobs",
)
async def utilization(
    caller: CallerDep,
    down: DownstreamDep,
    hours: Annotated[
        int, Query(ge=1, le=limits.MAX_UTILIZATION_HOURS, description="Look-back window, in hours.")
    ] = limits.DEFAULT_UTILIZATION_HOURS,
) -> UtilizationOut:
    reply = await down.monitoring.GetUtilization(
        monitoring_pb2.GetUtilizationRequest(hours=hours), **caller.call
    )
    return translate.utilization(reply)
