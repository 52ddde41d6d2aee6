"""Many jobs in one call (JobService/SubmitJobs), all or nothing.

Every job is checked as a single submit checks it (spec, project, GPU type, admission) before anything
is written; the first refusal refuses the batch, its field naming the job (``jobs[3].gpu_count``, its
message starting ``jobs[3]: ``), with the status a single submit of that job would get. Work that does
not depend on the job is done once per batch: identity is asked once per distinct project, the GPU
type catalog once, admission (``never_fits``) once per distinct shape. The organization's abuse limits
count the batch as its number of jobs, and refuse it whole (service_layer/limits.py).

The jobs are then written in ONE transaction with their ``submitted`` events and one audit record
each, and the scheduling loop is woken once:

* without an idempotency key, through the group commit of submits (service_layer/submits.py), as one
  unit that may share its transaction with concurrent submits but is never split;
* with a key, in a transaction of its own: job ``i`` is stored under the key, U+001F and ``i`` (a
  separator no caller's key may hold, so no single submit can name a batch's job) with its own
  request's fingerprint, so a retry finds them all in one read and answers the same jobs. Any other
  set found (some of the keys, or one past the batch's last index: a batch of another size) means the
  key was used for another batch: a conflict on ``idempotency_key``. Two racing batches with one key
  serialize on the key's unique index; the loser finds the winner's jobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from uuid import UUID

from shared.contracts.limits import MAX_BATCH_IDEMPOTENCY_KEY, MAX_BATCH_SUBMIT
from shared.errors import DomainError, InvalidArgument

from ..domain.access import project_id as parse_project_id
from ..domain.engine import Shape
from ..domain.model import Job
from ..domain.spec import (
    BATCH_KEY_SEPARATOR,
    IdempotencyKeyReused,
    JobSpec,
    check_given_key,
    check_gpu_type,
    request_fingerprint,
)
from . import audit, commands
from .limits import Admission
from .projects import admit_project
from .submit_checks import never_fits, request_spec, same_job, shape_of_spec
from .submits import ordered_ids

if TYPE_CHECKING:  # handlers imports this module to register it
    from .handlers import Dependencies


def job_key(batch_key: str, index: int) -> str:
    """The idempotency key job ``index`` of a keyed batch is stored under."""
    return f"{batch_key}{BATCH_KEY_SEPARATOR}{index}"


@contextmanager
def _in_job(index: int) -> Iterator[None]:
    """A refusal raised while checking job ``index`` names it: ``jobs[i].field`` and ``jobs[i]: ...``."""
    try:
        yield
    except DomainError as exc:
        where = f"jobs[{index}]"
        exc.field = f"{where}.{exc.field}" if exc.field else where
        exc.message = f"{where}: {exc.message}"
        exc.args = (exc.message,)
        raise


def _check_batch(cmd: commands.SubmitJobs) -> None:
    if not 1 <= len(cmd.jobs) <= MAX_BATCH_SUBMIT:
        raise InvalidArgument(
            f"a batch has 1 to {MAX_BATCH_SUBMIT} jobs (this one has {len(cmd.jobs)})", field="jobs"
        )
    key = cmd.idempotency_key
    if key is not None:
        if not 1 <= len(key) <= MAX_BATCH_IDEMPOTENCY_KEY:
            raise InvalidArgument(
                f"a batch's idempotency_key is 1..{MAX_BATCH_IDEMPOTENCY_KEY} characters "
                "(each job is stored under the key, a separator and its index)",
                field="idempotency_key",
            )
        check_given_key(key)


def _specs(cmd: commands.SubmitJobs, deps: Dependencies) -> list[JobSpec]:
    specs = []
    for i, req in enumerate(cmd.jobs):
        with _in_job(i):
            if req.idempotency_key:
                raise InvalidArgument(
                    "a batch's jobs carry no idempotency_key of their own: set the batch's",
                    field="idempotency_key",
                )
            key = job_key(cmd.idempotency_key, i) if cmd.idempotency_key else None
            specs.append(request_spec(req, deps.options.limits, key))
    return specs


async def _with_projects(cmd: commands.SubmitJobs, specs: list[JobSpec], deps: Dependencies) -> list[JobSpec]:
    """Each job's project as a single submit decides it, identity asked once per project named."""
    decided: dict[UUID | None, UUID | None] = {}
    out = []
    for i, (req, spec) in enumerate(zip(cmd.jobs, specs, strict=True)):
        with _in_job(i):
            asked = parse_project_id(req.project_id)
            if asked not in decided:
                decided[asked] = await admit_project(cmd.access, asked, cmd.api_key, deps.projects)
        out.append(dataclasses.replace(spec, project_id=decided[asked]))
    return out


async def _admit(cmd: commands.SubmitJobs, specs: list[JobSpec], deps: Dependencies) -> None:
    """The GPU type catalog (asked once) and admission (once per distinct shape), job by job."""
    if any(s.gpu_type is not None for s in specs):
        known = await deps.catalog.names(cmd.authorization)
        for i, spec in enumerate(specs):
            with _in_job(i):
                check_gpu_type(spec, known)
    if deps.capacity is None:
        return
    answers: dict[Shape, str | None] = {}
    for i, spec in enumerate(specs):
        shape = shape_of_spec(spec)
        if shape not in answers:
            answers[shape] = await deps.capacity.never_fits(shape, cmd.organization_id)
        why = answers[shape]
        if why is not None:
            with _in_job(i):
                raise never_fits(why)


def _same_batch(specs: list[JobSpec], keys: list[str], found: dict[str, tuple[Job, str | None]]) -> list[Job]:
    """The jobs a batch's key names, if this batch created them: every one of its keys and no other
    found, each job the same request."""
    if set(found) != set(keys):
        raise IdempotencyKeyReused(
            "idempotency_key was already used with a different batch; retry with the same jobs to get "
            "them, or use a new key for new jobs",
            field="idempotency_key",
        )
    return [same_job(spec, found[key]) for spec, key in zip(specs, keys, strict=True)]


async def _write(
    cmd: commands.SubmitJobs, specs: list[JobSpec], deps: Dependencies
) -> tuple[list[Job], bool]:
    """The batch's jobs, and whether this call created them (False: a keyed replay)."""
    org = cmd.organization_id
    if cmd.idempotency_key is None and deps.submits is not None:
        return await deps.submits.submit_many(tuple(specs), org, cmd.user_id), True
    keys = [job_key(cmd.idempotency_key, i) for i in range(len(specs))] if cmd.idempotency_key else []
    # One key past the last: a batch of another size under this key is found too.
    probe = [*keys, job_key(cmd.idempotency_key, len(specs))] if cmd.idempotency_key else []
    async with deps.uow(org_id=org) as uow:
        if keys:
            found = await uow.jobs_by_idempotency_keys(org, probe)
            if found:
                return _same_batch(specs, keys, found), False
        at = await uow.now()
        jobs = [
            Job.submit(spec, job_id=job_id, organization_id=org, user_id=cmd.user_id, at=at)
            for spec, job_id in zip(specs, ordered_ids(len(specs)), strict=True)
        ]
        rows: list[tuple[Job, str | None]] = [
            (job, request_fingerprint(spec)) for job, spec in zip(jobs, specs, strict=True)
        ]
        records = [audit.job_change("job.submit", job, None) for job in jobs]
        if not keys:
            await uow.add_jobs(rows, audit=records)
        elif not await uow.add_keyed_jobs(rows, audit=records):
            # A concurrent batch with this key committed first: its jobs are the answer, if they are ours.
            return _same_batch(specs, keys, await uow.jobs_by_idempotency_keys(org, probe)), False
    return jobs, True


async def submit_jobs(cmd: commands.SubmitJobs, deps: Dependencies) -> list[Job]:
    """The batch's jobs in request order (see the module docstring)."""
    _check_batch(cmd)
    specs = await _with_projects(cmd, _specs(cmd, deps), deps)
    limits = deps.limits
    admission = await limits.admit(cmd.organization_id, len(specs)) if limits is not None else Admission(None)
    try:
        await _admit(cmd, specs, deps)
        jobs, created = await _write(cmd, specs, deps)
    except BaseException:
        admission.released()
        raise
    if created:
        admission.committed()
        deps.wakeup.set()  # once for the whole batch
    else:
        admission.released()  # a replay: the jobs were there already
    return jobs
