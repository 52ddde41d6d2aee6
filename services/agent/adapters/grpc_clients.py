"""gRPC clients of fleet (NodeRegistryService) and the scheduler (NodeAgentService).

They translate domain values to proto messages and gRPC failures to what the control loop cares about:
:class:`Unreachable` (try again later). Every call carries the node's credential (or, for the first
registration only, its join token: ``adapters/credentials.py``) as ``authorization: Bearer`` metadata. Against a scheduler that predates ``WatchAssignments`` and ``ReportJobs`` (UNIMPLEMENTED) the
client falls back to polling ``GetAssignments`` and to one report per call, so an agent can be upgraded
before its scheduler.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence

import grpc
from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc

from shared.grpc import ERROR_FIELD_KEY, channel
from shared.wire import ts

from ..domain.model import (
    Assignment,
    AssignmentsUpdate,
    Distributed,
    GpuDevice,
    JobFinished,
    JobStarted,
    RegisteredGpu,
    Registration,
    Report,
)
from ..service_layer.ports import Unreachable
from .credentials import AgentCredentials

CALL_TIMEOUT = 10.0
LEGACY_POLL_SECONDS = 0.5  # how often a scheduler without WatchAssignments is asked
# Answers that mean a report can never apply: unknown job, job already final, malformed report.
# Retrying them would block every later report forever.
PERMANENT = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}


def _refused_report(exc: grpc.aio.AioRpcError) -> bool:
    """The scheduler refused a report as being about a job not placed on this node (a report from
    before a requeue moved the job): permanent, unlike a refusal of the caller itself."""
    if exc.code() != grpc.StatusCode.PERMISSION_DENIED:
        return False
    field = dict(exc.trailing_metadata() or ()).get(ERROR_FIELD_KEY)
    return field in ("job_id", "reports")


def _failure(service: str, exc: grpc.aio.AioRpcError) -> Unreachable:
    hint = ""
    if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        # Kept retrying, but said plainly in every log line.
        hint = (
            " (the node credential in the state folder was refused, or GPUFLEET_AGENT_JOIN_TOKEN is "
            "used, expired or revoked: docs/agent-identity.md)"
        )
    return Unreachable(f"{service}: {exc.code().name}: {exc.details()}{hint}")


class FleetClient:
    def __init__(self, target: str, credentials: AgentCredentials, record_public_key: bytes = b"") -> None:
        self._channel = channel(target)
        self._stub = fleet_pb2_grpc.NodeRegistryServiceStub(self._channel)
        self._credentials = credentials
        self._record_public_key = record_public_key  # sent with each registration (shared.record_signing)

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
        *,
        cpu_cores: int = 0,
        ram_mb: int = 0,
        labels: Mapping[str, str] | None = None,
    ) -> Registration:
        request = fleet_pb2.RegisterNodeRequest(
            hostname=hostname,
            gpu_backend=gpu_backend,
            driver_version=driver_version,
            gpus=[
                fleet_pb2.GpuInfo(
                    index=g.index, uuid=g.uuid, model=g.model, memory_total_mb=g.memory_total_mb
                )
                for g in gpus
            ],
            agent_version=agent_version,
            cpu_cores=cpu_cores,
            ram_mb=ram_mb,
            labels=dict(labels or {}),
            record_public_key=self._record_public_key,
        )
        # organization_id, provider and is_spot are not sent: what the node is comes from its join token.
        del provider, organization_id, is_spot
        try:
            answer = await self._stub.RegisterNode(
                request, metadata=self._credentials.metadata(), timeout=CALL_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            raise _failure("fleet", exc) from exc
        if answer.HasField("node_credential") and answer.node_credential.credential:
            self._credentials.issued(answer.node_id, answer.node_credential.credential)
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
            answer = await self._stub.Heartbeat(
                request, metadata=self._credentials.metadata(), timeout=CALL_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False  # a fleet that answers "no such node" wants the same thing: register again
            raise _failure("fleet", exc) from exc
        return answer.known

    async def rotate_credential(self) -> str:
        """A new credential for this node, stored before it is used; returns when the old one ends."""
        try:
            answer = await self._stub.RotateNodeCredential(
                fleet_pb2.RotateNodeCredentialRequest(),
                metadata=self._credentials.metadata(),
                timeout=CALL_TIMEOUT,
            )
        except grpc.aio.AioRpcError as exc:
            raise _failure("fleet", exc) from exc
        self._credentials.issued(answer.node_id, answer.credential)
        return answer.previous_valid_until

    async def close(self) -> None:
        await self._channel.close()


class SchedulerClient:
    def __init__(
        self, target: str, credentials: AgentCredentials, legacy_poll_seconds: float = LEGACY_POLL_SECONDS
    ) -> None:
        self._channel = channel(target)
        self._stub = scheduler_pb2_grpc.NodeAgentServiceStub(self._channel)
        self._credentials = credentials
        self._legacy_poll = legacy_poll_seconds

    async def watch_assignments(self, node_id: str, known_revision: int) -> AsyncGenerator[AssignmentsUpdate]:
        call = self._stub.WatchAssignments(
            scheduler_pb2.WatchAssignmentsRequest(node_id=node_id, known_revision=known_revision),
            metadata=self._credentials.metadata(),
        )
        try:
            async for update in call:
                yield AssignmentsUpdate(
                    revision=update.revision, assignments=tuple(_assignment(a) for a in update.assignments)
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise _failure("scheduler", exc) from exc
        else:
            return
        finally:
            call.cancel()
        async for update in self._poll(node_id):
            yield update

    async def _poll(self, node_id: str) -> AsyncGenerator[AssignmentsUpdate]:
        """An older scheduler: ask, and pass each answer on as an update (revision 0: none known)."""
        while True:
            yield AssignmentsUpdate(revision=0, assignments=tuple(await self.get_assignments(node_id)))
            await asyncio.sleep(self._legacy_poll)

    async def get_assignments(self, node_id: str) -> list[Assignment]:
        try:
            answer = await self._stub.GetAssignments(
                scheduler_pb2.GetAssignmentsRequest(node_id=node_id),
                metadata=self._credentials.metadata(),
                timeout=CALL_TIMEOUT,
            )
        except grpc.aio.AioRpcError as exc:
            raise _failure("scheduler", exc) from exc
        return [_assignment(a) for a in answer.assignments]

    async def send_batch(self, node_id: str, reports: Sequence[Report]) -> set[str]:
        request = scheduler_pb2.ReportJobsRequest(
            node_id=node_id, reports=[_report(node_id, r) for r in reports]
        )
        try:
            answer = await self._stub.ReportJobs(
                request, metadata=self._credentials.metadata(), timeout=CALL_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            # PERMISSION_DENIED for a report about a job no longer on this node: one by one, the
            # refused ones are dropped and the others applied.
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED and not _refused_report(exc):
                raise _failure("scheduler", exc) from exc
            return await self._send_one_by_one(node_id, reports)
        return set(answer.acknowledged)

    async def _send_one_by_one(self, node_id: str, reports: Sequence[Report]) -> set[str]:
        """One call per report, in order, stopping at the first that cannot go now (an older scheduler,
        or a batch refused for a report about a job no longer on this node)."""
        done: list[str] = []
        for n, report in enumerate(reports):
            try:
                if isinstance(report, JobStarted):
                    await self._stub.ReportJobStarted(
                        _started(node_id, report), metadata=self._credentials.metadata(), timeout=CALL_TIMEOUT
                    )
                else:
                    await self._stub.ReportJobFinished(
                        _finished(node_id, report),
                        metadata=self._credentials.metadata(),
                        timeout=CALL_TIMEOUT,
                    )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in PERMANENT and not _refused_report(exc):
                    if not done:
                        raise _failure("scheduler", exc) from exc
                    later = {r.job_id for r in reports[n:]}
                    return {j for j in done if j not in later}
            done.append(report.job_id)
        return set(done)

    async def close(self) -> None:
        await self._channel.close()


def _assignment(a: scheduler_pb2.Assignment) -> Assignment:
    return Assignment(
        job_id=a.job_id,
        command=a.command,
        gpu_indices=tuple(a.gpu_indices),
        gpu_ids=tuple(a.gpu_ids),
        organization_id=a.organization_id or None,
        status=a.status,
        cancel_requested=a.cancel_requested,
        attempt=a.attempt,
        time_limit_seconds=int(a.time_limit_seconds),
        cpu_cores=a.cpu_cores,
        ram_mb=int(a.ram_mb),
        distributed=Distributed(
            rank=a.rank,
            world_size=a.world_size or 1,
            master_addr=a.master_addr,
            master_port=a.master_port,
            node_names=tuple(a.node_names),
        ),
        image=a.image,
    )


def _report(node_id: str, r: Report) -> scheduler_pb2.JobReport:
    if isinstance(r, JobStarted):
        return scheduler_pb2.JobReport(job_id=r.job_id, started=_started(node_id, r))
    return scheduler_pb2.JobReport(job_id=r.job_id, finished=_finished(node_id, r))


def _started(node_id: str, r: JobStarted) -> scheduler_pb2.ReportJobStartedRequest:
    return scheduler_pb2.ReportJobStartedRequest(
        node_id=node_id, job_id=r.job_id, started_at=ts(r.started_at), attempt=r.attempt
    )


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
        timed_out=r.timed_out,
        attempt=r.attempt,
    )
