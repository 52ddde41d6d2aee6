"""The ports the handlers depend on. adapters/repository.py implements the unit of work over
PostgreSQL; unit tests use an in-memory fake (tests/unit/billing/fakes.py).

One unit of work = one transaction: the consumer's claim of a job event, the job's cost lines and the
CostRecorded outbox row commit together or not at all, so a crash anywhere bills the job once."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ..domain.costs import JobCost, RecordedCost


class BillingUnitOfWork(Protocol):
    async def claim(self, consumer: str, event_id: UUID) -> bool:
        """False when ``consumer`` has processed ``event_id`` before."""

    async def add_job_cost(self, cost: JobCost) -> bool:
        """Insert the job's lines; False (nothing written) when the job was billed before, whatever
        event billed it."""

    async def announce_cost(self, cost: JobCost) -> None:
        """Write the CostRecorded event to the outbox (it leaves only after commit)."""

    async def job_cost(self, job_id: UUID) -> RecordedCost | None:
        """The job's cost if the unit's scope may see it (row-level security hides other tenants')."""

    async def costs(self, after: tuple[datetime, UUID] | None, limit: int) -> list[RecordedCost]:
        """Newest first, one entry per job, strictly before ``after`` (recorded_at, job_id) when given."""


class UnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[BillingUnitOfWork]: ...
