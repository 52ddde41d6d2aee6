"""The ports the handlers depend on. adapters/repository.py implements the unit of work over
PostgreSQL; unit tests use an in-memory fake (tests/unit/billing/fakes.py).

One unit of work = one transaction: the consumer's claim of a job event, the attempt's cost lines and
the CostRecorded outbox row commit together or not at all, so a crash anywhere bills the attempt once."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ..domain.costs import AttemptCost, RecordedCost
from ..domain.running import RunningAttempt
from ..domain.summary import GroupBy, GroupedSums, Window


class BillingUnitOfWork(Protocol):
    async def claim(self, consumer: str, event_id: UUID) -> bool:
        """False when ``consumer`` has processed ``event_id`` before."""

    async def claim_many(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        """The subset of ``event_ids`` that ``consumer`` had not processed before (now claimed)."""

    async def add_attempt_costs(self, costs: Sequence[AttemptCost]) -> list[AttemptCost]:
        """:meth:`add_attempt_cost` for attempts of distinct jobs at once: the ones billed now."""

    async def announce_costs(self, costs: Sequence[AttemptCost]) -> None:
        """:meth:`announce_cost` for each, in order, in one write."""

    async def track_running_many(self, attempts: Sequence[RunningAttempt]) -> None:
        """:meth:`track_running` for each, as if one after the other; at most one attempt number per
        job (its events' GPUs may repeat: they are recorded once)."""

    async def end_running_many(self, ends: Sequence[tuple[UUID, int, datetime]]) -> None:
        """:meth:`end_running` for each (job, attempt, at) at once; at most one per job."""

    async def add_attempt_cost(self, cost: AttemptCost) -> bool:
        """Insert the attempt's lines; False (nothing written) when this attempt of the job was billed
        before, whatever event billed it."""

    async def announce_cost(self, cost: AttemptCost) -> None:
        """Write the CostRecorded event to the outbox (it leaves only after commit)."""

    async def job_cost(self, job_id: UUID) -> RecordedCost | None:
        """The job's cost over its attempts if the unit's scope may see it (row-level security hides
        other tenants')."""

    async def costs(
        self, after: tuple[datetime, UUID] | None, limit: int, *, project: UUID | None = None
    ) -> list[RecordedCost]:
        """Newest first by when each job was first billed, one entry per job (all its attempts),
        strictly before ``after`` (first_recorded_at, job_id) when given; only ``project``'s jobs when
        given."""

    async def track_running(self, attempt: RunningAttempt) -> int:
        """Record the attempt's GPUs as held now (a second time changes nothing), unless this attempt
        or a later one of the job was billed already; returns the GPUs recorded."""

    async def end_running(self, job_id: UUID, attempt: int, at: datetime) -> None:
        """The job's attempts up to ``attempt`` hold nothing any more (from ``at``)."""

    async def cost_summary(
        self,
        organization_id: UUID,
        by: GroupBy,
        window: Window,
        as_of: datetime,
        include_running: bool,
        *,
        project: UUID | None = None,
    ) -> GroupedSums:
        """The organization's costs in ``window`` summed per group and over all (domain/summary.py),
        running attempts valued at ``as_of`` when ``include_running``; only ``project``'s when given."""

    async def prune_ended_running(self, before: datetime) -> int:
        """Delete the tombstones of attempts that ended before ``before``; returns how many rows."""


class UnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[BillingUnitOfWork]: ...
