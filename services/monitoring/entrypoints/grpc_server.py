"""MonitoringService over gRPC: requests -> commands, results -> protos. Nothing else."""

from __future__ import annotations

import grpc
from gpufleet.v1 import monitoring_pb2, monitoring_pb2_grpc

from shared.grpc import Authenticator, grpc_service, tenant_of
from shared.wire import parse_ts, ts, uuid_arg

from ..domain.series import UtilizationSeries
from ..domain.utilization import GpuUtilization, Utilization
from ..service_layer import commands
from ..service_layer.handlers import Dependencies, handle
from .access import bound_project

SERVICE_NAME = monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].full_name
SERVICE_NAMES = [SERVICE_NAME]


def to_proto(g: GpuUtilization) -> monitoring_pb2.GpuUtilization:
    return monitoring_pb2.GpuUtilization(
        gpu_id=str(g.gpu_id),
        gpu_name=g.gpu_name,
        gpu_type=g.gpu_type,
        avg_utilization=round(g.avg_utilization, 2),
        max_utilization=round(g.max_utilization, 2),
        avg_memory_used_mb=round(g.avg_memory_used_mb, 1),
        samples=g.samples,
        first_sample_at=ts(g.first_sample_at),
        last_sample_at=ts(g.last_sample_at),
    )


def series_to_proto(answer: UtilizationSeries) -> monitoring_pb2.UtilizationSeries:
    return monitoring_pb2.UtilizationSeries(
        from_time=ts(answer.window.start),
        to_time=ts(answer.window.end),
        step_seconds=answer.window.step_seconds,
        series=[
            monitoring_pb2.GpuUtilizationSeries(
                gpu_id=str(s.gpu_id),
                gpu_name=s.gpu_name,
                gpu_type=s.gpu_type,
                points=[
                    monitoring_pb2.UtilizationPoint(
                        t=ts(p.t),
                        utilization=p.utilization,
                        memory_used_mb=p.memory_used_mb,
                        samples=p.samples,
                    )
                    for p in s.points
                ],
            )
            for s in answer.series
        ],
        aggregate=[
            monitoring_pb2.AggregateUtilizationPoint(t=ts(p.t), utilization=p.utilization, gpus=p.gpus)
            for p in answer.aggregate
        ],
    )


@grpc_service
class MonitoringServicer(monitoring_pb2_grpc.MonitoringServiceServicer):
    def __init__(self, deps: Dependencies, auth: Authenticator) -> None:
        self.deps = deps
        self.auth = auth

    async def GetUtilization(
        self, request: monitoring_pb2.GetUtilizationRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetUtilizationResponse:
        principal = await self.auth.principal(context)
        answer: Utilization = await handle(
            commands.GetUtilization(
                organization_id=tenant_of(principal),
                hours=request.hours,
                project_id=bound_project(principal),
            ),
            self.deps,
        )
        return monitoring_pb2.GetUtilizationResponse(
            hours=answer.hours, gpus=[to_proto(g) for g in answer.gpus]
        )

    async def GetUtilizationSeries(
        self, request: monitoring_pb2.GetUtilizationSeriesRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.UtilizationSeries:
        principal = await self.auth.principal(context)
        answer: UtilizationSeries = await handle(
            commands.GetUtilizationSeries(
                organization_id=tenant_of(principal),
                start=parse_ts(request.from_time, "from"),
                end=parse_ts(request.to_time, "to"),
                step_seconds=request.step_seconds,
                gpu_id=uuid_arg(request.gpu_id, "gpu_id") if request.gpu_id else None,
                project_id=bound_project(principal),
            ),
            self.deps,
        )
        return series_to_proto(answer)
