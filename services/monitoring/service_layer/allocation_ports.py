"""The allocation history as the handlers use it (adapters/allocations.py over PostgreSQL; unit tests
use tests/unit/monitoring/fakes.py). Both units of work carry one: the samples' (to lock GPUs) and the
job output's (the job-topic consumer records holds and checks chunks against placements).

Locks are transaction-scoped advisory locks, one per GPU and one per job attempt, always taken in a
sorted order and only ever held for the one short transaction of a consumed batch: a sample batch and
an allocation batch touching the same GPU run one after the other, so whichever commits second sees
the other's rows (docs/attribution.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol
from uuid import UUID

from ..domain.allocations import Hold, HoldKey, Placement, Span

AttemptKey = tuple[UUID, int]


class AllocationStore(Protocol):
    async def lock_gpus(self, gpu_ids: Iterable[UUID]) -> None:
        """Wait for, and hold until the transaction ends, the lock of each GPU (sorted order)."""

    async def lock_attempts(self, keys: Iterable[AttemptKey]) -> None:
        """The same for job attempts (another lock space than the GPUs')."""

    async def holds(self, keys: Sequence[HoldKey]) -> dict[HoldKey, Hold]:
        """The stored holds among ``keys``."""

    async def save_holds(self, holds: Sequence[Hold]) -> None:
        """Insert or replace (the caller merged them under the GPUs' locks)."""

    async def reattribute(self, spans: Sequence[Span]) -> int:
        """Set each sample in ``spans`` to the job and organization of the hold covering it (or none);
        returns how many samples were rewritten."""

    async def placements(self, keys: Sequence[AttemptKey]) -> dict[AttemptKey, Placement]:
        """Where each attempt among ``keys`` was placed (absent: not known yet)."""

    async def delete_ended_before(self, hours: int) -> int:
        """Drop holds that ended over ``hours`` ago (their samples are gone with retention too)."""
