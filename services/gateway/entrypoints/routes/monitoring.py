"""/v1/utilization and /v1/utilization/series (monitoring)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from gpufleet.v1 import monitoring_pb2
from pydantic import AwareDatetime

from services.gateway.entrypoints import translate, translate_reads
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep
from services.gateway.entrypoints.responses import UtilizationOut
from services.gateway.entrypoints.responses_reads import UtilizationSeriesOut
from services.gateway.entrypoints.routes import problem_responses
from shared.contracts import limits
from shared.wire import ts

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


@router.get(
    "/utilization/series",
    response_model=UtilizationSeriesOut,
    responses=problem_responses(422),
    summary="Utilization over time per GPU the organization's jobs used, and aggregated",
)
async def utilization_series(
    caller: CallerDep,
    down: DownstreamDep,
    from_: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="RFC 3339, inclusive; default: an hour before `to`."),
    ] = None,
    to: Annotated[AwareDatetime | None, Query(description="RFC 3339, exclusive; default: now.")] = None,
    step: Annotated[
        int | None,
        Query(
            ge=limits.MIN_SERIES_STEP_SECONDS,
            description=f"Bucket width in seconds; default: the smallest round step giving at most "
            f"{limits.MAX_SERIES_POINTS} points. One giving more is refused (422).",
        ),
    ] = None,
    gpu_id: Annotated[uuid.UUID | None, Query(description="Only this GPU.")] = None,
) -> UtilizationSeriesOut:
    reply = await down.monitoring.GetUtilizationSeries(
        monitoring_pb2.GetUtilizationSeriesRequest(
            from_time=ts(from_) if from_ else "",
            to_time=ts(to) if to else "",
            step_seconds=step or 0,
            gpu_id=str(gpu_id) if gpu_id else "",
        ),
        **caller.call,
    )
    return translate_reads.utilization_series(reply)
