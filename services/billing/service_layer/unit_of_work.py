"""The ports the handlers depend on. adapters/repository.py implements the unit of work over
PostgreSQL; unit tests use an in-memory fake (tests/unit/billing/fakes.py).

One unit of work = one transaction: the consumer's claim of a job event, the attempt's cost lines and
the CostRecorded outbox row commit together or not at all, so a crash anywhere bills the attempt once."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ..domain.costs import AttemptCost, RecordedCost


class BillingUnitOfWork(Protocol):
    async def claim(self, consumer: str, event_id: UUID) -> bool:
        """False when ``consumer`` has processed ``event_id`` before."""

    async def add_attempt_cost(self, cost: AttemptCost) -> bool:
        """Insert the attempt's lines; False (nothing written) when this attempt of the job was billed
        before, whatever event billed it."""

    async def announce_cost(self, cost: AttemptCost) -> None:
        """Write the CostRecorded event to the outbox (it leaves only after commit)."""

    async def job_cost(self, job_id: UUID) -> RecordedCost | None:
        """The job's cost over its attempts if the unit's scope may see it (row-level security hides
        other tenants')."""

    async def costs(self, after: tuple[datetime, UUID] | None, limit: int) -> list[RecordedCost]:
        """Newest first by when each job was first billed, one entry per job (all its attempts),
        strictly before ``after`` (first_recorded_at, job_id) when given."""


class UnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[BillingUnitOfWork]: ...
