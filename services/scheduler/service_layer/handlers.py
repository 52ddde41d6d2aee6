"""Use cases. Each handler validates through the domain, works in one unit of work, and wakes the
scheduling loop after a commit that may let a job be placed."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from shared.contracts.limits import DEFAULT_PAGE, MAX_PAGE, MAX_PRIORITY, MIN_PRIORITY
from shared.cursors import decode_cursor, encode_cursor
from shared.errors import Conflict, DomainError, InvalidArgument, NotFound
from shared.handlers import dispatch

from ..domain.access import UNRESTRICTED, Access
from ..domain.access import project_id as parse_project_id
from ..domain.engine.preemption import PREEMPTED_REASON
from ..domain.model import Job, JobStatus, Outcome
from ..domain.spec import JobSpec, check_cancel_reason, check_given_key, check_gpu_type, request_fingerprint
from . import audit, commands
from .assignments import AssignmentFeed, JobFeed
from .batch_submit import submit_jobs
from .limits import Admission, SubmitLimiter
from .options import SchedulingOptions
from .projects import ProjectDirectory, admit_project
from .submit_checks import never_fits, request_spec, same_job, shape_of_spec
from .submits import SubmitWriter
from .unit_of_work import AdmissionCheck, GpuTypeCatalog, UnitOfWorkFactory
from .wakeup import Wakeup

FLEET_CONSUMER = "scheduler.fleet-inventory"


@dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    catalog: GpuTypeCatalog
    wakeup: Wakeup
    options: SchedulingOptions = field(default_factory=SchedulingOptions)
    capacity: AdmissionCheck | None = None  # None: no admission check (only tests leave it out)
    # Told after every commit that changes what a node should run (the agents' streams push it).
    assignments: AssignmentFeed = field(default_factory=AssignmentFeed)
    # Told after every commit that saved jobs (by the SQL unit of work): WatchJob's streams.
    jobs: JobFeed = field(default_factory=JobFeed)
    # Group commit of submits without an idempotency key (None: each submit its own transaction).
    submits: SubmitWriter | None = None
    # Abuse limits at submit: submit rate and queued-jobs cap per organization (None: no limits).
    limits: SubmitLimiter | None = None
    # identity's word on the projects submits name (None: a submit naming a project is UNAVAILABLE).
    projects: ProjectDirectory | None = None


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


async def submit_job(cmd: commands.SubmitJob, deps: Dependencies) -> Job:
    """A new job, once the organization's limits let it through (service_layer/limits.py: refused
    with RESOURCE_EXHAUSTED before anything else is asked or written)."""
    if cmd.idempotency_key:
        check_given_key(cmd.idempotency_key)
    spec = request_spec(cmd, deps.options.limits, cmd.idempotency_key)
    # The project, as identity vouches for it and the caller's role there allows (service_layer/projects.py).
    project = await admit_project(cmd.access, parse_project_id(cmd.project_id), cmd.api_key, deps.projects)
    spec = dataclasses.replace(spec, project_id=project)
    admission = await deps.limits.admit(cmd.organization_id) if deps.limits is not None else Admission(None)
    try:
        job, created = await _submit_admitted(cmd, spec, deps)
    except BaseException:
        admission.released()
        raise
    if created:
        admission.committed()
    else:
        admission.released()  # an idempotent replay: the job was there already
    return job


async def _submit_admitted(cmd: commands.SubmitJob, spec: JobSpec, deps: Dependencies) -> tuple[Job, bool]:
    """The job, and whether this call created it."""
    if spec.gpu_type is not None:
        check_gpu_type(spec, await deps.catalog.names(cmd.authorization))
    if deps.capacity is not None:
        why = await deps.capacity.never_fits(shape_of_spec(spec), cmd.organization_id)
        if why is not None:
            raise never_fits(why)
    if deps.submits is not None and spec.idempotency_key is None:
        job = await deps.submits.submit(spec, cmd.organization_id, cmd.user_id)
        deps.wakeup.set()
        return job, True
    async with deps.uow(org_id=cmd.organization_id) as uow:
        if spec.idempotency_key is not None:
            found = await uow.job_by_idempotency_key(cmd.organization_id, spec.idempotency_key)
            if found is not None:
                return same_job(spec, found), False
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
            return same_job(spec, found), False
        await uow.record_audit(audit.job_change("job.submit", job, None))
    deps.wakeup.set()
    return job, True


def _visible(job: Job | None, organization_id: UUID, access: Access) -> bool:
    """Another organization's job, or (for a project-bound key) another project's, is not there."""
    return job is not None and job.organization_id == organization_id and access.sees(job.project_id)


async def get_job(cmd: commands.GetJob, deps: Dependencies) -> Job:
    job_id = _job_id(cmd.job_id)
    async with deps.uow(org_id=cmd.organization_id) as uow:
        job = await uow.get_job(job_id, with_history=True)
        if job is None or not _visible(job, cmd.organization_id, cmd.access):
            raise NotFound("job not found")
        await uow.queue_positions([job])
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
    try:
        project = parse_project_id(cmd.project_id)
    except NotFound:
        return JobPage([], None)  # an id that is no project's: no jobs
    bound = cmd.access.bound_project
    if bound is not None and project not in (None, bound):
        return JobPage([], None)  # a bound key's filter naming another project: none of its jobs
    project = project or bound
    async with deps.uow(org_id=cmd.organization_id) as uow:
        rows = await uow.list_jobs(status, before, limit + 1, project)
        jobs = [j for j in rows if _visible(j, cmd.organization_id, cmd.access)]
        page, more = jobs[:limit], len(jobs) > limit
        await uow.queue_positions(page)
    return JobPage(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)


async def cancel_job(cmd: commands.CancelJob, deps: Dependencies) -> Job:
    job_id = _job_id(cmd.job_id)
    reason = check_cancel_reason(cmd.reason)
    async with deps.uow(org_id=cmd.organization_id) as uow:
        job = await uow.get_job(job_id, for_update=True, with_history=True)
        if job is None or not _visible(job, cmd.organization_id, cmd.access):
            raise NotFound("job not found")
        cmd.access.require_write(job.project_id)
        before = audit.job_state(job)
        job.cancel(await uow.now(), reason)
        await uow.save_job(job)
        await uow.record_audit(audit.job_change("job.cancel", job, before))
    deps.assignments.changed(job.node_ids)  # a placed job's agents must see cancel_requested now
    return job


async def _change_queued(
    organization_id: UUID,
    raw_id: str,
    deps: Dependencies,
    change: Callable[[Job, Any], bool],
    access: Access = UNRESTRICTED,
) -> Job:
    job_id = _job_id(raw_id)
    async with deps.uow(org_id=organization_id) as uow:
        job = await uow.get_job(job_id, for_update=True, with_history=True)
        if job is None or not _visible(job, organization_id, access):
            raise NotFound("job not found")
        access.require_write(job.project_id)
        before = audit.job_state(job)
        if change(job, await uow.now()):
            await uow.save_job(job)
            await uow.record_audit(audit.job_change(audit.queued_change(before, job), job, before))
        await uow.queue_positions([job])
    deps.wakeup.set()
    return job


async def hold_job(cmd: commands.HoldJob, deps: Dependencies) -> Job:
    return await _change_queued(
        cmd.organization_id, cmd.job_id, deps, lambda job, at: job.hold(at), cmd.access
    )


async def release_job(cmd: commands.ReleaseJob, deps: Dependencies) -> Job:
    return await _change_queued(
        cmd.organization_id, cmd.job_id, deps, lambda job, at: job.release(at), cmd.access
    )


async def update_job_priority(cmd: commands.UpdateJobPriority, deps: Dependencies) -> Job:
    if not MIN_PRIORITY <= cmd.priority <= MAX_PRIORITY:
        raise InvalidArgument(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}", field="priority")
    return await _change_queued(
        cmd.organization_id, cmd.job_id, deps, lambda job, at: job.set_priority(cmd.priority, at), cmd.access
    )


async def get_assignments(cmd: commands.GetAssignments, deps: Dependencies) -> list[Job]:
    node_id = _agent_id(cmd.node_id, "node_id")
    async with deps.uow(system=True) as uow:
        return await uow.live_jobs_on_node(node_id)


def _other_attempt(job: Job, attempt: int) -> bool:
    """A report about an attempt that is not the job's current one (0: the agent did not say)."""
    return attempt != 0 and attempt != job.attempt


class _Clock:
    """The transaction's time, asked of the database once (``now()`` is the transaction's start)."""

    def __init__(self, uow: Any) -> None:
        self._uow = uow
        self._at: Any = None

    async def __call__(self) -> Any:
        if self._at is None:
            self._at = await self._uow.now()
        return self._at


@dataclass
class _Released:
    """What a batch of reports changed, told to the assignment feed and the loop after the commit."""

    nodes: set[UUID] = field(default_factory=set)
    # A job with a time limit started: the leader learns its warning's moment at its next step, now
    # rather than a tick later (a short limit would otherwise end before its warning is sent).
    limited_start: bool = False

    def tell(self, deps: Dependencies) -> None:
        if self.nodes:
            deps.assignments.changed(tuple(self.nodes))
        if self.nodes or self.limited_start:
            deps.wakeup.set()


async def _started(uow: Any, cmd: commands.ReportJobStarted, now: _Clock, released: _Released) -> None:
    node_id, job_id = _agent_id(cmd.node_id, "node_id"), _agent_id(cmd.job_id, "job_id")
    job = await uow.job_on_node(job_id, node_id)
    if job is None:
        raise NotFound("no such job on this node")
    if _other_attempt(job, cmd.attempt):
        return
    if job.start(cmd.started_at, await now()):
        await uow.save_job(job)
        released.limited_start |= bool(job.time_limit_seconds)


async def _finished(
    uow: Any, cmd: commands.ReportJobFinished, now: _Clock, deps: Dependencies, released: _Released
) -> None:
    node_id, job_id = _agent_id(cmd.node_id, "node_id"), _agent_id(cmd.job_id, "job_id")
    outcome = Outcome(
        exit_code=cmd.exit_code,
        cancelled=cmd.cancelled,
        error_message=cmd.error_message,
        output_tail=cmd.output_tail,
        timed_out=cmd.timed_out,
    )
    job = await uow.job_on_node(job_id, node_id)
    if job is None:
        # A requeued job's next attempt no longer lists this node: a report for the past, taken.
        earlier = await uow.get_job(job_id)
        if earlier is not None and earlier.attempt > 1 and _other_attempt(earlier, cmd.attempt or 1):
            return
        raise NotFound("no such job on this node")
    if _other_attempt(job, cmd.attempt):
        return
    if _stopped_for_reclaim(job, outcome):
        members = job.node_ids
        job.requeue_preempted(PREEMPTED_REASON, await now())
        await uow.release_gpus(job.id)
        await uow.save_job(job)
        released.nodes.update(members or (node_id,))  # a gang's other members stop now
        return
    if outcome.lost and job.status in (JobStatus.SCHEDULED, JobStatus.RUNNING):
        job.requeue(outcome.error_message or "lost", await now(), deps.options.max_attempts)
    elif job.member_exited(node_id, outcome):  # a gang member done, another still runs: no end yet
        await uow.save_job(job)
        return
    elif not job.finish(outcome, cmd.finished_at, await now()):
        return  # already terminal: a repeated or late report
    await uow.release_gpus(job.id)
    await uow.save_job(job)
    released.nodes.update(job.node_ids or (node_id,))


def _stopped_for_reclaim(job: Job, outcome: Outcome) -> bool:
    """A preempted job its agent stopped (or lost while stopping) is requeued, not ended; one that
    ended by itself first (succeeded, failed, timed out) or that its owner cancelled meanwhile ends
    as it would have."""
    return (
        job.preempted_at is not None
        and not job.cancel_requested
        and job.status in (JobStatus.SCHEDULED, JobStatus.RUNNING)
        and (outcome.cancelled or outcome.lost)
    )


async def report_job_started(cmd: commands.ReportJobStarted, deps: Dependencies) -> None:
    released = _Released()
    async with deps.uow(system=True) as uow:
        await _started(uow, cmd, _Clock(uow), released)
    released.tell(deps)


async def report_job_finished(cmd: commands.ReportJobFinished, deps: Dependencies) -> None:
    """The job's process is gone. An infrastructure loss the agent reports ("lost: ...", no exit
    code) requeues the job as a new attempt (bounded, unless it opted out); anything else ends it.
    A report about an older attempt is ignored: that attempt's GPUs were released when it was
    requeued, and the current attempt may be running elsewhere."""
    released = _Released()
    async with deps.uow(system=True) as uow:
        await _finished(uow, cmd, _Clock(uow), deps, released)
    released.tell(deps)


class _ReportBatch:
    """The unit of work as the reports of one batch see it: every job they name read (and locked) on
    its node in one statement up front, then changed in memory report after report (a later report
    about the same job sees what the earlier ones did, as it would in the database), and written once
    at the end: one UPDATE for all the jobs, their history and events in one INSERT each, every ended
    job's GPUs released in one DELETE. All of it in the batch's one transaction, as before."""

    def __init__(self, uow: Any) -> None:
        self._uow = uow
        self._jobs: dict[UUID, Job] = {}
        self._dirty: dict[UUID, Job] = {}
        self._released: list[UUID] = []

    async def load(self, reports: tuple[Any, ...]) -> None:
        by_node: dict[UUID, list[UUID]] = {}
        for report in reports:
            try:
                node_id, job_id = UUID(report.node_id), UUID(report.job_id)
            except (ValueError, AttributeError, TypeError):
                continue  # refused when its turn comes, as a malformed report always was
            by_node.setdefault(node_id, []).append(job_id)
        for node_id, job_ids in by_node.items():
            for job in await self._uow.jobs_on_node(list(dict.fromkeys(job_ids)), node_id):
                self._jobs.setdefault(job.id, job)

    async def job_on_node(self, job_id: UUID, node_id: UUID) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and node_id in job.node_ids else None

    async def get_job(self, job_id: UUID) -> Job | None:
        return self._jobs.get(job_id) or await self._uow.get_job(job_id)

    async def save_job(self, job: Job) -> None:
        self._dirty.setdefault(job.id, job)

    async def release_gpus(self, *job_ids: UUID) -> None:
        self._released.extend(job_ids)

    async def flush(self) -> None:
        if self._released:
            await self._uow.release_gpus(*dict.fromkeys(self._released))
        if self._dirty:
            await self._uow.save_jobs(list(self._dirty.values()))


async def report_jobs(cmd: commands.ReportJobs, deps: Dependencies) -> list[DomainError | None]:
    """An agent's reports in order, in one transaction (one commit for a whole batch instead of one
    per report, and a few statements for the batch instead of a few per report: :class:`_ReportBatch`).
    A report refused for good (an unknown job, another node's job) is answered with its error and the
    others still apply: a refusal is decided before that report changes anything. A database failure
    fails the whole batch, which the agent sends again (every report is idempotent)."""
    released = _Released()
    answers: list[DomainError | None] = []
    async with deps.uow(system=True) as uow:
        now = _Clock(uow)
        batch = _ReportBatch(uow)
        await batch.load(cmd.reports)
        for report in cmd.reports:
            try:
                if isinstance(report, commands.ReportJobStarted):
                    await _started(batch, report, now, released)
                else:
                    await _finished(batch, report, now, deps, released)
            except DomainError as exc:
                answers.append(exc)
            else:
                answers.append(None)
        await batch.flush()
    released.tell(deps)
    return answers


async def apply_gpu_change(cmd: commands.ApplyGpuChange, deps: Dependencies) -> None:
    """Project a fleet GPU snapshot. A GPU that went offline (its node stopped heart-beating) takes the
    jobs that held it off their node in the same transaction: each is requeued as a new attempt
    (bounded, unless it opted out), a gang as a whole, instead of holding GPUs forever for an agent
    that may never report again."""
    released = _Released()
    async with deps.uow(system=True) as uow:
        if not await uow.claim(FLEET_CONSUMER, cmd.event_id):
            return
        changed = await uow.upsert_gpu(cmd.gpu)
        if changed and cmd.gpu.status == "offline":
            for live in await uow.live_jobs_on_node(cmd.gpu.node_id):
                if cmd.gpu.gpu_id not in {a.gpu_id for a in live.allocation}:
                    continue
                job = await uow.job_on_node(live.id, cmd.gpu.node_id)  # locked
                reason = f"lost: node {cmd.gpu.node_name} went offline while the job held its GPUs"
                if job is not None and job.status in (JobStatus.SCHEDULED, JobStatus.RUNNING):
                    members = job.node_ids
                    job.requeue(reason, await uow.now(), deps.options.max_attempts)
                    await uow.release_gpus(job.id)
                    await uow.save_job(job)
                    released.nodes.update(members)  # a gang's other members stop now, not at a recheck
    released.tell(deps)
    if changed:
        invalidate = getattr(deps.capacity, "invalidate", None)
        if invalidate is not None:
            invalidate()
        deps.wakeup.set()


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.SubmitJob: submit_job,
    commands.SubmitJobs: submit_jobs,
    commands.GetJob: get_job,
    commands.ListJobs: list_jobs,
    commands.CancelJob: cancel_job,
    commands.HoldJob: hold_job,
    commands.ReleaseJob: release_job,
    commands.UpdateJobPriority: update_job_priority,
    commands.GetAssignments: get_assignments,
    commands.ReportJobStarted: report_job_started,
    commands.ReportJobFinished: report_job_finished,
    commands.ReportJobs: report_jobs,
    commands.ApplyGpuChange: apply_gpu_change,
}


async def handle(cmd: object, deps: Dependencies) -> Any:
    """Run the handler registered for the command's type."""
    return await dispatch(HANDLERS, cmd, deps)
