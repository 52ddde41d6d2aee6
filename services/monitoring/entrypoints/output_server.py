"""JobOutputService over gRPC: requests -> commands, pages -> protos.

``ReadOutput`` goes through :func:`shared.grpc.grpc_service` like every unary method. ``FollowOutput``
streams, which that wrapper does not handle, so it does the same three things itself: it names its
method for the scope check (``shared.scopes``, jobs:read), renders a domain error as its status code,
and answers UNAVAILABLE when the database cannot be reached."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from uuid import UUID

import grpc
from gpufleet.v1 import output_pb2, output_pb2_grpc

from shared import scopes
from shared.errors import NotFound
from shared.grpc import Authenticator, bearer, grpc_service, streaming_call, tenant_of

from ..service_layer import output_commands as commands
from ..service_layer.output_handlers import OutputDependencies, OutputPage, follow_output, handle
from .access import bound_project

log = logging.getLogger("gpufleet.monitoring.output")

SERVICE_NAME = output_pb2.DESCRIPTOR.services_by_name["JobOutputService"].full_name
FOLLOW_METHOD = "JobOutputService/FollowOutput"


def to_proto(page: OutputPage) -> output_pb2.OutputPage:
    return output_pb2.OutputPage(
        job_id=page.job_id,
        attempt=page.attempt,
        offset=page.offset,
        data=page.data,
        size=page.size,
        complete=page.complete,
        truncated=page.truncated,
        cut_bytes=page.cut_bytes,
        total_bytes=page.total_bytes,
    )


def job_id_of(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("no such job output", field="job_id") from None  # as an unknown job: reveals nothing


@grpc_service
class JobOutputServicer(output_pb2_grpc.JobOutputServiceServicer):
    def __init__(self, deps: OutputDependencies, auth: Authenticator) -> None:
        self.deps = deps
        self.auth = auth

    async def ReadOutput(
        self, request: output_pb2.ReadOutputRequest, context: grpc.aio.ServicerContext
    ) -> output_pb2.OutputPage:
        principal = await self.auth.principal(context)
        page: OutputPage = await handle(
            commands.ReadOutput(
                organization_id=tenant_of(principal),
                job_id=job_id_of(request.job_id),
                attempt=request.attempt if request.HasField("attempt") else None,
                offset=request.offset,
                limit=request.limit,
                project_id=bound_project(principal),
            ),
            self.deps,
        )
        return to_proto(page)

    async def FollowOutput(  # type: ignore[override]
        self, request: output_pb2.FollowOutputRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[output_pb2.OutputPage]:
        async with streaming_call(context, "JobOutputServicer", "FollowOutput"):
            principal = await self.auth.authenticate(bearer(context))
            scopes.require(principal.scopes, FOLLOW_METHOD)
            cmd = commands.FollowOutput(
                organization_id=tenant_of(principal),
                job_id=job_id_of(request.job_id),
                attempt=request.attempt if request.HasField("attempt") else None,
                offset=request.offset,
                project_id=bound_project(principal),
            )
            async for page in follow_output(cmd, self.deps):
                yield to_proto(page)
