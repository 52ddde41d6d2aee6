"""MonitoringService over gRPC: requests -> commands, results -> protos. Nothing else."""

from __future__ import annotations

import grpc
from gpufleet.v1 import monitoring_pb2, monitoring_pb2_grpc

from shared.grpc import Authenticator, grpc_service, tenant_of
from shared.wire import ts

from ..domain.utilization import GpuUtilization, Utilization
from ..service_layer import commands
from ..service_layer.handlers import Dependencies, handle

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


@grpc_service
class MonitoringServicer(monitoring_pb2_grpc.MonitoringServiceServicer):
    def __init__(self, deps: Dependencies, auth: Authenticator) -> None:
        self.deps = deps
        self.auth = auth

    async def GetUtilization(
        self, request: monitoring_pb2.GetUtilizationRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetUtilizationResponse:
        org = tenant_of(await self.auth.principal(context))
        answer: Utilization = await handle(
            commands.GetUtilization(organization_id=org, hours=request.hours), self.deps
        )
        return monitoring_pb2.GetUtilizationResponse(
            hours=answer.hours, gpus=[to_proto(g) for g in answer.gpus]
        )
