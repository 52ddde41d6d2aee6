"""gRPC servicer of JobService (tenants, API key); NodeAgentService lives in agent_api.py.
They only translate between proto messages and commands; the handlers decide."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, scheduler_pb2, scheduler_pb2_grpc

from shared.errors import NotFound
from shared.grpc import bearer, grpc_service, metadata_value, streaming_call
from shared.wire import ts

from ..domain.access import Access
from ..domain.model import Job, JobStatus
from ..service_layer import commands, handlers
from ..service_layer.handlers import Dependencies

# How often an open WatchJob stream checks its caller's key again, changed or not (the job itself is
# read again only when the job feed says it changed: service_layer/assignments.py JobFeed).
WATCH_RECHECK_SECONDS = 1.0

SERVICE_NAMES = (
    scheduler_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    scheduler_pb2.DESCRIPTOR.services_by_name["NodeAgentService"].full_name,
)


class PrincipalResolver(Protocol):
    """shared.grpc.Authenticator in production."""

    async def principal(
        self, context: grpc.aio.ServicerContext, *, write: bool = False
    ) -> common_pb2.Principal: ...


def job_message(job: Job, *, with_history: bool = False) -> scheduler_pb2.Job:
    return scheduler_pb2.Job(
        id=str(job.id),
        organization_id=str(job.organization_id),
        user_id=str(job.user_id) if job.user_id else "",
        name=job.name or "",
        command=job.command,
        gpu_count=job.gpu_count,
        gpu_memory_mb=job.gpu_memory_mb,
        gpu_type=job.gpu_type or "",
        priority=job.priority,
        status=job.status.value,
        node_id=str(job.node_id) if job.node_id else "",
        gpu_ids=[str(g) for g in job.gpu_ids],
        webhook_url=job.webhook_url or "",
        has_exit_code=job.exit_code is not None,
        exit_code=job.exit_code or 0,
        output_tail=job.output_tail or "",
        error_message=job.error_message or "",
        created_at=ts(job.created_at),
        scheduled_at=ts(job.scheduled_at),
        started_at=ts(job.started_at),
        finished_at=ts(job.finished_at),
        cancel_requested=job.cancel_requested,
        history=[
            scheduler_pb2.StatusChange(status=h.status.value, at=ts(h.at), reason=h.reason or "")
            for h in job.history
        ]
        if with_history
        else [],
        nodes=job.nodes,
        cpu_cores=job.cpu_cores,
        ram_mb=job.ram_mb,
        time_limit_seconds=job.time_limit_seconds or 0,
        held=job.held,
        no_requeue=job.no_requeue,
        attempt=job.attempt,
        pending_reason=(
            scheduler_pb2.PendingReason(code=job.pending.code, message=job.pending.message)
            if job.pending is not None and job.status is JobStatus.QUEUED
            else None
        ),
        queue_position=job.queue_position or 0,
        estimated_start=ts(job.estimated_start) if job.status is JobStatus.QUEUED else "",
        placements=[
            scheduler_pb2.JobPlacement(
                node_id=str(p.node_id), rank=p.rank, gpu_ids=[str(g) for g in p.gpu_ids]
            )
            for p in job.placements
        ],
        project_id=str(job.project_id) if job.project_id else "",
        image=job.image or "",
    )


def _tenant(principal: common_pb2.Principal) -> tuple[UUID, UUID | None]:
    return UUID(principal.organization_id), UUID(principal.user_id) if principal.user_id else None


def _uuid(raw: str) -> UUID | None:
    try:
        return UUID(raw) if raw else None
    except ValueError:
        return None


def access_of(principal: common_pb2.Principal) -> Access:
    """The caller's project standing as identity stated it (domain/access.py). A bound project id
    identity sent malformed binds the key to no project that exists: it then sees nothing."""
    bound = _uuid(principal.project_id) if principal.project_id else None
    if principal.project_id and bound is None:
        bound = UUID(int=0)
    roles = {}
    for r in principal.project_roles:
        pid = _uuid(r.project_id)
        if pid is not None:
            roles[pid] = r.role
    return Access(principal.role, bound, roles)


def _request_fields(request: scheduler_pb2.SubmitJobRequest) -> dict[str, Any]:
    """A submit's request fields (SubmitJob's, and each job of SubmitJobs) as the commands take them."""
    return {
        "command": request.command,
        "gpu_count": request.gpu_count,
        "gpu_memory_mb": request.gpu_memory_mb,
        "gpu_type": request.gpu_type or None,
        # optional int32: absent -> None -> the default; an explicit 0 is priority 0.
        "priority": request.priority if request.HasField("priority") else None,
        "webhook_url": request.webhook_url or None,
        "name": request.name or None,
        "idempotency_key": request.idempotency_key or None,
        "nodes": request.nodes if request.HasField("nodes") else None,
        "cpu_cores": request.cpu_cores,
        "ram_mb": request.ram_mb,
        "time_limit_seconds": request.time_limit_seconds or None,
        "hold": request.hold,
        "no_requeue": request.no_requeue,
        "project_id": request.project_id,
        "image": request.image or None,
    }


@grpc_service
class JobServicer(scheduler_pb2_grpc.JobServiceServicer):
    def __init__(self, deps: Dependencies, auth: PrincipalResolver) -> None:
        self.deps = deps
        self.auth = auth

    async def SubmitJob(
        self, request: scheduler_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        principal = await self.auth.principal(context, write=True)
        org_id, user_id = _tenant(principal)
        job: Job = await handlers.handle(
            commands.SubmitJob(
                organization_id=org_id,
                user_id=user_id,
                **_request_fields(request),
                authorization=metadata_value(context, "authorization"),
                access=access_of(principal),
                api_key=bearer(context),
            ),
            self.deps,
        )
        return job_message(job, with_history=True)

    async def SubmitJobs(
        self, request: scheduler_pb2.SubmitJobsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.SubmitJobsResponse:
        principal = await self.auth.principal(context, write=True)
        org_id, user_id = _tenant(principal)
        jobs: list[Job] = await handlers.handle(
            commands.SubmitJobs(
                organization_id=org_id,
                user_id=user_id,
                jobs=tuple(commands.JobRequest(**_request_fields(j)) for j in request.jobs),
                idempotency_key=request.idempotency_key or None,
                authorization=metadata_value(context, "authorization"),
                access=access_of(principal),
                api_key=bearer(context),
            ),
            self.deps,
        )
        return scheduler_pb2.SubmitJobsResponse(jobs=[job_message(j, with_history=True) for j in jobs])

    async def GetJob(
        self, request: scheduler_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        principal = await self.auth.principal(context)
        org_id, _ = _tenant(principal)
        job: Job = await handlers.handle(
            commands.GetJob(organization_id=org_id, job_id=request.id, access=access_of(principal)), self.deps
        )
        return job_message(job, with_history=True)

    async def WatchJob(  # type: ignore[override]
        self, request: scheduler_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scheduler_pb2.Job]:
        # An async generator (what gRPC and its tracing interceptor stream from), so grpc_service,
        # which wraps coroutines, does not see it: errors are rendered by streaming_call, the same way.
        async for message in self._watch_job(request, context):
            yield message

    async def _watch_job(
        self, request: scheduler_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scheduler_pb2.Job]:
        """GetJob's answer now and after each change, until the job ends. The job is read again when
        the feed says it changed (a commit of this process that saved it, or the feed's poll of the
        watched jobs' versions, for another replica's); every WATCH_RECHECK_SECONDS, changed or not,
        the caller's key is checked again, so a revoked key's stream ends within about a second. A
        message is sent only when it differs from the last one sent."""
        async with streaming_call(context, "JobServicer", "WatchJob", rpc="JobService/WatchJob"):
            try:
                job_id = UUID(request.id)
            except (ValueError, AttributeError, TypeError) as exc:
                raise NotFound("job not found") from exc
            sent, changed = b"", True
            with self.deps.jobs.watch(job_id) as woken:
                self.deps.jobs.keep_polling(self._job_versions)
                while True:
                    woken.clear()  # before reading: a commit during the read wakes the next round
                    principal = await self.auth.principal(context)
                    if changed:
                        org_id, _ = _tenant(principal)
                        job: Job = await handlers.handle(
                            commands.GetJob(
                                organization_id=org_id, job_id=request.id, access=access_of(principal)
                            ),
                            self.deps,
                        )
                        self.deps.jobs.saw(job_id, job.updated_at)
                        message = job_message(job, with_history=True)
                        data = message.SerializeToString(deterministic=True)
                        if data != sent:
                            yield message
                            sent = data
                        if job.is_terminal:
                            return
                    changed = False
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(WATCH_RECHECK_SECONDS):
                            await woken.wait()
                            changed = True

    async def _job_versions(self, job_ids: list[UUID]) -> dict[UUID, datetime]:
        async with self.deps.uow(system=True) as uow:
            return await uow.job_versions(job_ids)

    async def ListJobs(
        self, request: scheduler_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ListJobsResponse:
        principal = await self.auth.principal(context)
        org_id, _ = _tenant(principal)
        page: handlers.JobPage = await handlers.handle(
            commands.ListJobs(
                organization_id=org_id,
                status=request.status or None,
                limit=request.limit or None,
                cursor=request.cursor or None,
                project_id=request.project_id,
                access=access_of(principal),
            ),
            self.deps,
        )
        return scheduler_pb2.ListJobsResponse(
            jobs=[job_message(j) for j in page.jobs], next_cursor=page.next_cursor or ""
        )

    async def CancelJob(
        self, request: scheduler_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        principal = await self.auth.principal(context, write=True)
        org_id, _ = _tenant(principal)
        job: Job = await handlers.handle(
            commands.CancelJob(
                organization_id=org_id,
                job_id=request.id,
                reason=request.reason or None,
                access=access_of(principal),
            ),
            self.deps,
        )
        return job_message(job, with_history=True)

    async def HoldJob(
        self, request: scheduler_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        principal = await self.auth.principal(context, write=True)
        org_id, _ = _tenant(principal)
        job: Job = await handlers.handle(
            commands.HoldJob(organization_id=org_id, job_id=request.id, access=access_of(principal)),
            self.deps,
        )
        return job_message(job, with_history=True)

    async def ReleaseJob(
        self, request: scheduler_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        principal = await self.auth.principal(context, write=True)
        org_id, _ = _tenant(principal)
        job: Job = await handlers.handle(
            commands.ReleaseJob(organization_id=org_id, job_id=request.id, access=access_of(principal)),
            self.deps,
        )
        return job_message(job, with_history=True)

    async def UpdateJobPriority(
        self, request: scheduler_pb2.UpdateJobPriorityRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        principal = await self.auth.principal(context, write=True)
        org_id, _ = _tenant(principal)
        job: Job = await handlers.handle(
            commands.UpdateJobPriority(
                organization_id=org_id,
                job_id=request.id,
                priority=request.priority,
                access=access_of(principal),
            ),
            self.deps,
        )
        return job_message(job, with_history=True)
