"""/v1/jobs/{id}/cost, /v1/costs and /v1/costs/summary (billing)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from gpufleet.v1 import billing_pb2
from pydantic import AwareDatetime

from services.gateway.entrypoints import translate, translate_reads
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep, resource_id
from services.gateway.entrypoints.responses import JobCostListOut, JobCostOut
from services.gateway.entrypoints.responses_reads import CostSummaryOut
from services.gateway.entrypoints.routes import Cursor, PageSize, problem_responses
from shared.wire import ts

router = APIRouter(prefix="/v1", tags=["billing"])

CostGroupBy = Literal["day", "gpu_type", "project"]  # = limits.COST_GROUP_BY (a unit test holds them equal)

ProjectFilter = Annotated[
    UUID | None,
    Query(
        description="Only this project's jobs (a project id). A project-bound API key always gets its own "
        "project's only (naming another finds nothing, as an unknown project does).",
    ),
]


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
    summary="Recorded job costs, newest first (of one project with project_id)",
)
async def list_costs(
    caller: CallerDep,
    down: DownstreamDep,
    limit: PageSize = None,
    cursor: Cursor = None,
    project_id: ProjectFilter = None,
) -> JobCostListOut:
    reply = await down.billing.ListJobCosts(
        billing_pb2.ListJobCostsRequest(
            limit=limit or 0, cursor=cursor or "", project_id=str(project_id) if project_id else ""
        ),
        **caller.call,
    )
    return translate.job_cost_list(reply)


@router.get(
    "/costs/summary",
    response_model=CostSummaryOut,
    responses=problem_responses(422),
    summary="Costs grouped by UTC day, GPU type or project, with running jobs' cost so far",
)
async def summarize_costs(
    caller: CallerDep,
    down: DownstreamDep,
    group_by: Annotated[
        CostGroupBy, Query(description="What each group is: a UTC day, a GPU type, a project.")
    ],
    from_: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="RFC 3339, inclusive; default: 30 days before `to`."),
    ] = None,
    to: Annotated[AwareDatetime | None, Query(description="RFC 3339, exclusive; default: now.")] = None,
    include_running: Annotated[
        bool, Query(description="Include the cost so far of attempts still running.")
    ] = True,
    project_id: ProjectFilter = None,
) -> CostSummaryOut:
    reply = await down.billing.SummarizeCosts(
        billing_pb2.SummarizeCostsRequest(
            group_by=group_by,
            from_time=ts(from_) if from_ else "",
            to_time=ts(to) if to else "",
            include_running=include_running,
            project_id=str(project_id) if project_id else "",
        ),
        **caller.call,
    )
    return translate_reads.cost_summary(reply)
