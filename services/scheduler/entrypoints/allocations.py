"""``JobService/ListAllocations``: who holds which GPU, from the scheduler (which alone owns allocation).

A read with no decision in it, so it goes straight to its query (``adapters/allocations_read``)
instead of through a command handler. It lives in its own module, on a subclass of the job servicer,
so that the job API's module stays as it is; ``bootstrap`` registers this subclass as the JobService.
"""

from __future__ import annotations

import grpc
from gpufleet.v1 import scheduler_pb2

from shared.errors import InvalidArgument
from shared.grpc import grpc_service, tenant_of
from shared.wire import uuid_arg

from ..adapters.allocations_read import MAX_GPU_IDS, AllocationReader, HeldGpu
from ..service_layer.handlers import Dependencies
from .grpc_server import JobServicer, PrincipalResolver, access_of


def allocation_message(held: HeldGpu) -> scheduler_pb2.GpuAllocation:
    return scheduler_pb2.GpuAllocation(
        gpu_id=str(held.gpu_id), job_id=str(held.job_id) if held.job_id else "", mine=held.mine
    )


@grpc_service
class JobServicerWithAllocations(JobServicer):
    def __init__(self, deps: Dependencies, auth: PrincipalResolver, allocations: AllocationReader) -> None:
        super().__init__(deps, auth)
        self.allocations = allocations

    async def ListAllocations(
        self, request: scheduler_pb2.ListAllocationsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ListAllocationsResponse:
        principal = await self.auth.principal(context)
        org_id = tenant_of(principal)
        if len(request.gpu_ids) > MAX_GPU_IDS:
            raise InvalidArgument(f"at most {MAX_GPU_IDS} gpu_ids", field="gpu_ids")
        gpu_ids = [uuid_arg(g, "gpu_ids") for g in request.gpu_ids] if request.gpu_ids else None
        held = await self.allocations.held_gpus(org_id, gpu_ids, access_of(principal).bound_project)
        return scheduler_pb2.ListAllocationsResponse(allocations=[allocation_message(h) for h in held])
