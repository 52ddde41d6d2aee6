"""BillingService over gRPC: requests -> commands, results -> protos. Nothing else."""

from __future__ import annotations

from uuid import UUID

import grpc
from gpufleet.v1 import billing_pb2, billing_pb2_grpc, common_pb2

from shared.errors import Unauthenticated
from shared.grpc import Authenticator, grpc_service, tenant_of
from shared.wire import dec, parse_ts, ts, uuid_arg

from ..domain.costs import RecordedCost
from ..domain.summary import CostGroup, CostSummary
from ..service_layer import commands
from ..service_layer.handlers import CostPage, Dependencies, handle

SERVICE_NAME = billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name
SERVICE_NAMES = [SERVICE_NAME]


def bound_project(principal: common_pb2.Principal) -> UUID | None:
    """The project the caller's key is bound to (None: unbound); a malformed one is no credentials
    (fail closed: never read as unbound)."""
    if not principal.project_id:
        return None
    try:
        return UUID(principal.project_id)
    except ValueError as exc:
        raise Unauthenticated("the API key's project is not valid") from exc


def project_arg(value: str) -> UUID | None:
    return uuid_arg(value, "project_id") if value else None


def to_proto(recorded: RecordedCost) -> billing_pb2.JobCost:
    cost = recorded.cost
    return billing_pb2.JobCost(
        job_id=str(cost.job_id),
        organization_id=str(cost.organization_id),
        currency=cost.currency,
        total_cost=dec(cost.total),
        gross_cost=dec(cost.gross),
        credit=dec(cost.credit),
        gpu_count=cost.gpu_count,
        held_seconds=dec(cost.held_seconds),
        recorded_at=ts(recorded.recorded_at),
        project_id=str(cost.project_id) if cost.project_id else "",
        lines=[
            billing_pb2.CostLine(
                gpu_id=str(line.gpu_id),
                gpu_type=line.gpu_type,
                cost_per_hour=dec(line.cost_per_hour),
                start_time=ts(line.start_time),
                end_time=ts(line.end_time),
                seconds=dec(line.seconds),
                cost=dec(line.cost),
                attempt=line.attempt,
                credit=dec(line.credit),
            )
            for line in cost.lines
        ],
        attempts=[
            billing_pb2.AttemptCost(
                attempt=a.attempt,
                outcome=a.outcome or "",
                gross_cost=dec(a.gross),
                credit=dec(a.credit),
                net_cost=dec(a.total),
                gpu_count=len(a.lines),
                held_seconds=dec(a.held_seconds),
                start_time=ts(a.start_time),
                end_time=ts(a.end_time),
            )
            for a in cost.attempts
        ],
    )


def group_to_proto(g: CostGroup) -> billing_pb2.CostGroup:
    return billing_pb2.CostGroup(
        key=g.key,
        gpu_seconds=dec(g.gpu_seconds),
        cost=dec(g.cost),
        running_cost=dec(g.running_cost),
        jobs=g.jobs,
    )


def summary_to_proto(s: CostSummary) -> billing_pb2.CostSummary:
    return billing_pb2.CostSummary(
        group_by=s.group_by,
        from_time=ts(s.window.start),
        to_time=ts(s.window.end),
        currency=s.currency,
        groups=[group_to_proto(g) for g in s.groups],
        total=group_to_proto(s.total),
        as_of=ts(s.as_of),
        include_running=s.include_running,
    )


@grpc_service
class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, deps: Dependencies, auth: Authenticator) -> None:
        self.deps = deps
        self.auth = auth

    async def GetJobCost(
        self, request: billing_pb2.GetJobCostRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.JobCost:
        principal = await self.auth.principal(context)
        recorded: RecordedCost = await handle(
            commands.GetJobCost(
                organization_id=tenant_of(principal),
                job_id=request.job_id,
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return to_proto(recorded)

    async def ListJobCosts(
        self, request: billing_pb2.ListJobCostsRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.ListJobCostsResponse:
        principal = await self.auth.principal(context)
        page: CostPage = await handle(
            commands.ListJobCosts(
                organization_id=tenant_of(principal),
                limit=request.limit,
                cursor=request.cursor or None,
                project_id=project_arg(request.project_id),
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return billing_pb2.ListJobCostsResponse(
            costs=[to_proto(c) for c in page.costs],
            next_cursor=page.next_cursor or "",
            total_cost=dec(page.total),
        )

    async def SummarizeCosts(
        self, request: billing_pb2.SummarizeCostsRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.CostSummary:
        principal = await self.auth.principal(context)
        answer: CostSummary = await handle(
            commands.SummarizeCosts(
                organization_id=tenant_of(principal),
                group_by=request.group_by,
                start=parse_ts(request.from_time, "from"),
                end=parse_ts(request.to_time, "to"),
                include_running=request.include_running if request.HasField("include_running") else True,
                project_id=project_arg(request.project_id),
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return summary_to_proto(answer)
