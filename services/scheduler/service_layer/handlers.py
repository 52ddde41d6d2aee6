"""Use cases. Each handler validates through the domain, works in one unit of work, and wakes the
scheduling loop after a commit that may let a job be placed."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.contracts.limits import DEFAULT_PAGE, MAX_PAGE
from shared.cursors import decode_cursor, encode_cursor
from shared.errors import Conflict, InvalidArgument, NotFound
from shared.handlers import dispatch

from ..domain.model import Job, JobStatus, Outcome
from ..domain.spec import (
    JobSpec,
    check_cancel_reason,
    check_gpu_type,
    check_same_request,
    job_spec,
    request_fingerprint,
)
from . import commands
from .unit_of_work import GpuTypeCatalog, UnitOfWorkFactory
from .wakeup import Wakeup

FLEET_CONSUMER = "scheduler.fleet-inventory"


@dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    catalog: GpuTypeCatalog
    wakeup: Wakeup


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


def _job_id(raw: str) -> UUID:
    """Tenants: a malformed id is simply not found (ids are never explained to the caller)."""
    try:
        return UUID(raw)
    except (ValueError, AttributeError, TypeError) as exc:
        raise NotFound("job not found") from exc


def _agent_id(raw: str, field: str) -> UUID:
    try:
        return UUID(raw)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidArgument(f"{field} is not a valid UUID", field=field) from exc


def _spec_of(job: Job) -> JobSpec:
    """The normalized request a stored job was created from (its request fields never change)."""
    return JobSpec(
        command=job.command,
        gpu_count=job.gpu_count,
        gpu_memory_mb=job.gpu_memory_mb,
        gpu_type=job.gpu_type,
        priority=job.priority,
        webhook_url=job.webhook_url,
        name=job.name,
        idempotency_key=job.idempotency_key,
    )


def _same_job(spec: JobSpec, found: tuple[Job, str | None]) -> Job:
    """The job an idempotency key names, if this request is the one that created it."""
    job, fingerprint = found
    # Jobs stored before fingerprints were kept: their own request fields say what was asked.
    check_same_request(spec, fingerprint or request_fingerprint(_spec_of(job)))
    return job


async def submit_job(cmd: commands.SubmitJob, deps: Dependencies) -> Job:
    spec = job_spec(
        command=cmd.command,
        gpu_count=cmd.gpu_count,
        gpu_memory_mb=cmd.gpu_memory_mb,
        gpu_type=cmd.gpu_type,
        priority=cmd.priority,
        webhook_url=cmd.webhook_url,
        name=cmd.name,
        idempotency_key=cmd.idempotency_key,
    )
    if spec.gpu_type is not None:
        check_gpu_type(spec, await deps.catalog.names(cmd.authorization))
    async with deps.uow(org_id=cmd.organization_id) as uow:
        if spec.idempotency_key is not None:
            found = await uow.job_by_idempotency_key(cmd.organization_id, spec.idempotency_key)
            if found is not None:
                return _same_job(spec, found)
        job = Job.submit(
            spec,
            job_id=uuid.uuid4(),
            organization_id=cmd.organization_id,
            user_id=cmd.user_id,
            at=await uow.now(),
        )
        if not await uow.add_job(job, fingerprint=request_fingerprint(spec)):
            # A concurrent submit with the same key committed first: that one is the job.
            assert spec.idempotency_key is not None
            found = await uow.job_by_idempotency_key(cmd.organization_id, spec.idempotency_key)
            if found is None:
                raise Conflict("idempotency_key is in use", field="idempotency_key")
            return _same_job(spec, found)
    deps.wakeup.set()
    return job


async def get_job(cmd: commands.GetJob, deps: Dependencies) -> Job:
    job_id = _job_id(cmd.job_id)
    async with deps.uow(org_id=cmd.organization_id) as uow:
        job = await uow.get_job(job_id, with_history=True)
    if job is None or job.organization_id != cmd.organization_id:
        raise NotFound("job not found")
    return job


async def list_jobs(cmd: commands.ListJobs, deps: Dependencies) -> JobPage:
    status = None
    if cmd.status:
        try:
            status = JobStatus(cmd.status)
        except ValueError as exc:
            names = ", ".join(s.value for s in JobStatus)
            raise InvalidArgument(f"status must be one of {names}", field="status") from exc
    limit = cmd.limit or DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    before = decode_cursor(cmd.cursor) if cmd.cursor else None
    async with deps.uow(org_id=cmd.organization_id) as uow:
        rows = await uow.list_jobs(status, before, limit + 1)
    jobs = [j for j in rows if j.organization_id == cmd.organization_id]
    page, more = jobs[:limit], len(jobs) > limit
    return JobPage(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)


async def cancel_job(cmd: commands.CancelJob, deps: Dependencies) -> Job:
    job_id = _job_id(cmd.job_id)
    reason = check_cancel_reason(cmd.reason)
    async with deps.uow(org_id=cmd.organization_id) as uow:
        job = await uow.get_job(job_id, for_update=True, with_history=True)
        if job is None or job.organization_id != cmd.organization_id:
            raise NotFound("job not found")
        job.cancel(await uow.now(), reason)
        await uow.save_job(job)
    return job


async def get_assignments(cmd: commands.GetAssignments, deps: Dependencies) -> list[Job]:
    node_id = _agent_id(cmd.node_id, "node_id")
    async with deps.uow(system=True) as uow:
        return await uow.live_jobs_on_node(node_id)


async def report_job_started(cmd: commands.ReportJobStarted, deps: Dependencies) -> None:
    node_id, job_id = _agent_id(cmd.node_id, "node_id"), _agent_id(cmd.job_id, "job_id")
    async with deps.uow(system=True) as uow:
        job = await uow.job_on_node(job_id, node_id)
        if job is None:
            raise NotFound("no such job on this node")
        if job.start(cmd.started_at, await uow.now()):
            await uow.save_job(job)


async def report_job_finished(cmd: commands.ReportJobFinished, deps: Dependencies) -> None:
    node_id, job_id = _agent_id(cmd.node_id, "node_id"), _agent_id(cmd.job_id, "job_id")
    outcome = Outcome(
        exit_code=cmd.exit_code,
        cancelled=cmd.cancelled,
        error_message=cmd.error_message,
        output_tail=cmd.output_tail,
    )
    async with deps.uow(system=True) as uow:
        job = await uow.job_on_node(job_id, node_id)
        if job is None:
            raise NotFound("no such job on this node")
        if not job.finish(outcome, cmd.finished_at, await uow.now()):
            return  # already terminal: a repeated or late report
        await uow.release_gpus(job.id)
        await uow.save_job(job)
    deps.wakeup.set()


async def apply_gpu_change(cmd: commands.ApplyGpuChange, deps: Dependencies) -> None:
    """Project a fleet GPU snapshot. A GPU that went offline (its node stopped heart-beating) takes the
    jobs that held it down with it: they fail as lost and release their GPUs in the same transaction,
    instead of holding GPUs forever for an agent that may never report again."""
    async with deps.uow(system=True) as uow:
        if not await uow.claim(FLEET_CONSUMER, cmd.event_id):
            return
        changed = await uow.upsert_gpu(cmd.gpu)
        if changed and cmd.gpu.status == "offline":
            for live in await uow.live_jobs_on_node(cmd.gpu.node_id):
                if cmd.gpu.gpu_id not in {a.gpu_id for a in live.allocation}:
                    continue
                job = await uow.job_on_node(live.id, cmd.gpu.node_id)  # locked
                lost = Outcome(
                    error_message=f"lost: node {cmd.gpu.node_name} went offline while the job held its GPUs"
                )
                if job is not None and job.finish(lost, None, await uow.now()):
                    await uow.release_gpus(job.id)
                    await uow.save_job(job)
    if changed:
        deps.wakeup.set()


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.SubmitJob: submit_job,
    commands.GetJob: get_job,
    commands.ListJobs: list_jobs,
    commands.CancelJob: cancel_job,
    commands.GetAssignments: get_assignments,
    commands.ReportJobStarted: report_job_started,
    commands.ReportJobFinished: report_job_finished,
    commands.ApplyGpuChange: apply_gpu_change,
}


async def handle(cmd: object, deps: Dependencies) -> Any:
    """Run the handler registered for the command's type."""
    return await dispatch(HANDLERS, cmd, deps)
