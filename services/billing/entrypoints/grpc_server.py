"""BillingService over gRPC: translate requests to handler calls and results to protos."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import grpc
from gpufleet.v1 import billing_pb2, billing_pb2_grpc, common_pb2

from shared.db import Database
from shared.errors import NotFound, Unauthenticated
from shared.grpc import Authenticator, grpc_service
from shared.wire import dec, ts

from ..domain.costs import JobCost
from ..service_layer import handlers

SERVICE_NAMES = [billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name]


def _tenant(principal: common_pb2.Principal) -> UUID:
    try:
        return UUID(principal.organization_id)
    except ValueError as exc:  # identity answered without an organization: treat as no credentials
        raise Unauthenticated("the API key has no organization") from exc


def to_proto(cost: JobCost, recorded_at: datetime) -> billing_pb2.JobCost:
    return billing_pb2.JobCost(
        job_id=str(cost.job_id),
        organization_id=str(cost.organization_id),
        currency=cost.currency,
        total_cost=dec(cost.total),
        gpu_count=len(cost.lines),
        held_seconds=dec(cost.held_seconds),
        recorded_at=ts(recorded_at),
        lines=[
            billing_pb2.CostLine(
                gpu_id=str(line.gpu_id),
                gpu_type=line.gpu_type,
                cost_per_hour=dec(line.cost_per_hour),
                start_time=ts(line.start_time),
                end_time=ts(line.end_time),
                seconds=dec(line.seconds),
                cost=dec(line.cost),
            )
            for line in cost.lines
        ],
    )


@grpc_service
class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, db: Database, auth: Authenticator) -> None:
        self.db = db
        self.auth = auth

    async def GetJobCost(
        self, request: billing_pb2.GetJobCostRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.JobCost:
        org = _tenant(await self.auth.principal(context))
        try:
            job_id = UUID(request.job_id)
        except ValueError:
            raise NotFound("no cost recorded for this job") from None  # garbage and foreign ids look alike
        cost, recorded_at = await handlers.get_job_cost(self.db, org, job_id)
        return to_proto(cost, recorded_at)

    async def ListJobCosts(
        self, request: billing_pb2.ListJobCostsRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.ListJobCostsResponse:
        org = _tenant(await self.auth.principal(context))
        page = await handlers.list_job_costs(self.db, org, request.limit, request.cursor or None)
        return billing_pb2.ListJobCostsResponse(
            costs=[to_proto(cost, at) for cost, at in page.costs],
            next_cursor=page.next_cursor or "",
            total_cost=dec(page.total),
        )
