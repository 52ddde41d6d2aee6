"""Group commit of submits: concurrent submits share one transaction.

A submit costs its transaction's round trips and commit (BEGIN, scope, clock, insert, history,
outbox, COMMIT with its WAL flush), far more than the rows themselves. While one batch is being
written, new submits queue; the writer then takes everything that queued (up to ``max_batch``) into
the next transaction. Under light load a batch is one job and nothing waits; under heavy load the
cost of a commit is shared by every job that arrived during the previous one.

A submit is answered only after its batch committed, so a 201 still means "durably queued, its
``submitted`` event in the outbox". A failed transaction fails every submit of its batch with the
same error (each caller then gets UNAVAILABLE, or whatever the error maps to, and may retry).
Submits with an idempotency key keep their own transaction (they may have to read a concurrent
winner); they are rare and their callers are retrying anyway.

A batch submit (``JobService/SubmitJobs``) enters as one unit (:meth:`SubmitWriter.submit_many`): its
jobs are never split between transactions, so they commit together or not at all, and a transaction
may carry several batches and single submits at once. ``max_batch`` caps the jobs a transaction takes
from the queue, except that it always takes at least one unit whole (a batch larger than the cap is a
transaction of its own).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from shared import audit as shared_audit

from ..domain.model import Job
from ..domain.spec import JobSpec, request_fingerprint
from . import audit
from .unit_of_work import UnitOfWorkFactory

log = logging.getLogger("gpufleet.scheduler.submits")


@dataclass(frozen=True)
class _Pending:
    """One caller's unit: one job, or a whole batch (written in the same transaction)."""

    specs: tuple[JobSpec, ...]
    organization_id: UUID
    user_id: UUID | None
    done: asyncio.Future[list[Job]]
    # Who submitted, with which request: taken from the caller's task (the writer runs in its own).
    call: shared_audit.AuditCall | None = None


def ordered_ids(count: int) -> list[UUID]:
    """``count`` new job ids in increasing order. The jobs of one transaction share its time, and the
    queue orders equals by (created_at, id): a batch's jobs then wait, and start, in the batch's order
    (job 0 first, as a job array's lowest index)."""
    return sorted(uuid.uuid4() for _ in range(count))


class SubmitWriter:
    """One writer task at a time drains the queue; callers await their own job."""

    def __init__(
        self, uow: UnitOfWorkFactory, *, max_batch: int = 500, on_commit: Callable[[], None] | None = None
    ) -> None:
        self._uow = uow
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # committed transactions (tests and metrics)

    async def submit(self, spec: JobSpec, organization_id: UUID, user_id: UUID | None) -> Job:
        return (await self.submit_many((spec,), organization_id, user_id))[0]

    async def submit_many(
        self, specs: tuple[JobSpec, ...], organization_id: UUID, user_id: UUID | None
    ) -> list[Job]:
        """Every job of ``specs`` in one transaction (shared with other callers' submits), in order."""
        assert specs, "a batch has at least one job"
        assert all(s.idempotency_key is None for s in specs), "keyed submits take their own transaction"
        done: asyncio.Future[list[Job]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(specs, organization_id, user_id, done, shared_audit.current()))
        if self._writer is None or self._writer.done():
            # A task of its own: a caller that goes away (deadline, cancel) never stops a batch that
            # carries other callers' jobs.
            self._writer = asyncio.create_task(self._drain(), name="scheduler-submit-writer")
        return await asyncio.shield(done)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._take()
            try:
                jobs = await self._write(batch)
            except Exception as exc:
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            self.batches += 1
            if self._on_commit is not None:
                self._on_commit()
            for p, unit in zip(batch, jobs, strict=True):
                if not p.done.done():
                    p.done.set_result(unit)

    def _take(self) -> tuple[list[_Pending], list[_Pending]]:
        """The units of the next transaction (whole units, at most ``max_batch`` jobs unless the first
        alone has more), and what stays queued."""
        taken, jobs = 0, 0
        for p in self._queue:
            if taken and jobs + len(p.specs) > self._max_batch:
                break
            taken, jobs = taken + 1, jobs + len(p.specs)
        return self._queue[:taken], self._queue[taken:]

    async def _write(self, batch: list[_Pending]) -> list[list[Job]]:
        async with self._uow(system=True) as uow:
            at = await uow.now()
            units = [
                [
                    Job.submit(
                        spec, job_id=job_id, organization_id=p.organization_id, user_id=p.user_id, at=at
                    )
                    for spec, job_id in zip(p.specs, ordered_ids(len(p.specs)), strict=True)
                ]
                for p in batch
            ]
            pairs = [
                (p, spec, job)
                for p, jobs in zip(batch, units, strict=True)
                for spec, job in zip(p.specs, jobs, strict=True)
            ]
            await uow.add_jobs(
                [(job, request_fingerprint(spec)) for _, spec, job in pairs],
                audit=[audit.job_change("job.submit", job, None, call=p.call) for p, _, job in pairs],
            )
        return units
