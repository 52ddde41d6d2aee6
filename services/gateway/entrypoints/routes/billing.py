"""/v1/jobs/{id}/cost and /v1/costs (billing)."""

from __future__ import annotations

from fastapi import APIRouter
from gpufleet.v1 import billing_pb2

from services.gateway.entrypoints import translate
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep, resource_id
from services.gateway.entrypoints.responses import JobCostListOut, JobCostOut
from services.gateway.entrypoints.routes import Cursor, PageSize, problem_responses

router = APIRouter(prefix="/v1", tags=["billing"])


@router.get(
    "/jobs/{job_id}/cost",
    response_model=JobCostOut,
    responses=problem_responses(404),
    summary="What a finished job cost (404 until it is recorded)",
)
async def get_job_cost(job_id: str, caller: CallerDep, down: DownstreamDep) -> JobCostOut:
    cost = await down.billing.GetJobCost(
        billing_pb2.GetJobCostRequest(job_id=resource_id(job_id)), **caller.call
    )
    return translate.job_cost(cost)


@router.get(
    "/costs",
    response_model=JobCostListOut,
    responses=problem_responses(422),
    summary="Recorded job costs, newest first",
)
async def list_costs(
    caller: CallerDep,
    down: DownstreamDep,
    limit: PageSize = None,
    cursor: Cursor = None,
) -> JobCostListOut:
    reply = await down.billing.ListJobCosts(
        billing_pb2.ListJobCostsRequest(limit=limit or 0, cursor=cursor or ""), **caller.call
    )
    return translate.job_cost_list(reply)
