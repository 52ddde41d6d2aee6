"""gRPC clients of fleet (NodeRegistryService) and the scheduler (NodeAgentService).

They translate domain values to proto messages and gRPC failures to the two outcomes the control loop
cares about: :class:`Unreachable` (try again later) and :class:`ReportRejected` (never going to work).
Every call carries the agent token as ``authorization: Bearer`` metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc

from shared.grpc import channel, with_key
from shared.wire import ts

from ..domain.model import Assignment, GpuDevice, JobFinished, JobStarted, RegisteredGpu, Registration, Report
from ..service_layer.ports import ReportRejected, Unreachable

CALL_TIMEOUT = 10.0
# Answers that mean a report can never apply: unknown job, job already final, malformed report.
# Retrying them would block every later report forever.
PERMANENT = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}


def _failure(service: str, exc: grpc.aio.AioRpcError) -> Unreachable:
    hint = ""
    if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        # Kept retrying (the token may be rotated on the server first) but said plainly in every log line.
        hint = " (check GPUFLEET_AGENT_TOKEN)"
    return Unreachable(f"{service}: {exc.code().name}: {exc.details()}{hint}")


class FleetClient:
    def __init__(self, target: str, agent_token: str) -> None:
        self._channel = channel(target)
        self._stub = fleet_pb2_grpc.NodeRegistryServiceStub(self._channel)
        self._metadata = with_key(agent_token)

    async def register(
        self,
        hostname: str,
        provider: str,
        gpu_backend: str,
        driver_version: str,
        gpus: Sequence[GpuDevice],
        organization_id: str | None,
        is_spot: bool,
        agent_version: str,
    ) -> Registration:
        request = fleet_pb2.RegisterNodeRequest(
            hostname=hostname,
            provider=provider,
            gpu_backend=gpu_backend,
            driver_version=driver_version,
            gpus=[
                fleet_pb2.GpuInfo(
                    index=g.index, uuid=g.uuid, model=g.model, memory_total_mb=g.memory_total_mb
                )
                for g in gpus
            ],
            organization_id=organization_id or "",
            is_spot=is_spot,
            agent_version=agent_version,
        )
        try:
            answer = await self._stub.RegisterNode(request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise _failure("fleet", exc) from exc
        return Registration(
            node_id=answer.node_id,
            gpus=tuple(
                RegisteredGpu(index=g.index, gpu_id=g.gpu_id, gpu_type=g.gpu_type, name=g.name)
                for g in answer.gpus
            ),
            heartbeat_interval_seconds=float(answer.heartbeat_interval_seconds),
        )

    async def heartbeat(self, node_id: str, unhealthy_gpu_ids: Sequence[str]) -> bool:
        request = fleet_pb2.HeartbeatRequest(node_id=node_id, unhealthy_gpu_ids=list(unhealthy_gpu_ids))
        try:
            answer = await self._stub.Heartbeat(request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False  # a fleet that answers "no such node" wants the same thing: register again
            raise _failure("fleet", exc) from exc
        return answer.known

    async def close(self) -> None:
        await self._channel.close()


class SchedulerClient:
    def __init__(self, target: str, agent_token: str) -> None:
        self._channel = channel(target)
        self._stub = scheduler_pb2_grpc.NodeAgentServiceStub(self._channel)
        self._metadata = with_key(agent_token)

    async def get_assignments(self, node_id: str) -> list[Assignment]:
        try:
            answer = await self._stub.GetAssignments(
                scheduler_pb2.GetAssignmentsRequest(node_id=node_id),
                metadata=self._metadata,
                timeout=CALL_TIMEOUT,
            )
        except grpc.aio.AioRpcError as exc:
            raise _failure("scheduler", exc) from exc
        return [
            Assignment(
                job_id=a.job_id,
                command=a.command,
                gpu_indices=tuple(a.gpu_indices),
                gpu_ids=tuple(a.gpu_ids),
                organization_id=a.organization_id or None,
                status=a.status,
                cancel_requested=a.cancel_requested,
            )
            for a in answer.assignments
        ]

    async def send(self, node_id: str, report: Report) -> None:
        try:
            if isinstance(report, JobStarted):
                await self._stub.ReportJobStarted(
                    scheduler_pb2.ReportJobStartedRequest(
                        node_id=node_id, job_id=report.job_id, started_at=ts(report.started_at)
                    ),
                    metadata=self._metadata,
                    timeout=CALL_TIMEOUT,
                )
            else:
                await self._stub.ReportJobFinished(
                    _finished(node_id, report), metadata=self._metadata, timeout=CALL_TIMEOUT
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in PERMANENT:
                raise ReportRejected(f"{exc.code().name}: {exc.details()}") from exc
            raise _failure("scheduler", exc) from exc

    async def close(self) -> None:
        await self._channel.close()


def _finished(node_id: str, r: JobFinished) -> scheduler_pb2.ReportJobFinishedRequest:
    return scheduler_pb2.ReportJobFinishedRequest(
        node_id=node_id,
        job_id=r.job_id,
        has_exit_code=r.exit_code is not None,
        exit_code=r.exit_code or 0,
        output_tail=r.output_tail,
        finished_at=ts(r.finished_at),
        cancelled=r.cancelled,
        error_message=r.error_message,
    )
