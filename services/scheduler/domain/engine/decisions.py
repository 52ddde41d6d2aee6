"""What a cycle decides, and why the rest waits.

A cycle's ``decisions`` are an ordered list the service applies in one transaction. Today they are
:class:`Place` and :class:`Reject`. Preemption slots in as a third kind, ``Preempt(job_id, reason)``:
the cycle gains a phase before placement that releases the victims' GPUs in its own capacity overlay
(the same structure that takes GPUs for a placement, run the other way) and emits ``Preempt``
decisions ahead of the ``Place`` decisions that use what they free; the service applies them in
order. Nothing else in the result changes shape.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from heapq import merge
from uuid import UUID

from .model import JobKey


@dataclass(frozen=True, slots=True)
class PendingReason:
    code: str
    message: str  # for the job's owner: never names another organization or what it runs


@dataclass(frozen=True, slots=True)
class NodePlacement:
    node_id: UUID
    gpu_ids: tuple[UUID, ...]  # in device-index order
    rank: int  # 0..nodes-1 within a gang
    gpu_type: str
    cpu_cores: int
    ram_mb: int


@dataclass(frozen=True, slots=True)
class Place:
    job_id: UUID
    organization: UUID
    allocations: tuple[NodePlacement, ...]  # by rank

    @property
    def world_size(self) -> int:
        return len(self.allocations)


@dataclass(frozen=True, slots=True)
class Reject:
    """No node of this fleet could ever hold the job as asked."""

    job_id: UUID
    organization: UUID
    reason: PendingReason


Decision = Place | Reject


@dataclass(frozen=True, slots=True)
class Waiting:
    reason: PendingReason
    position: int | None  # 1 = next among its organization's waiting jobs (priority, then age); None: held
    estimated_start: datetime | None  # earliest start the running jobs' time limits allow; None: unknown


@dataclass(frozen=True, slots=True)
class ClassOutcome:
    """Why a whole class waits: one reason for all its jobs (a class that fails is skipped as a whole).
    ``keys`` are its waiting jobs in queue order; the estimate is for the first of them only, since the
    later ones start after it, by how much depends on what they run."""

    organization: UUID
    reason: PendingReason
    keys: tuple[JobKey, ...]
    estimated_start: datetime | None = None


@dataclass(frozen=True, slots=True)
class CycleStats:
    classes: int
    placements: int
    rejected: int
    capacity_searches: int


@dataclass(frozen=True)
class CycleResult:
    """The cycle's decisions plus the reason every other waiting job waits.

    Reasons are kept per class, not per job, so a cycle over 100,000 waiting jobs does not build
    100,000 objects; ``waiting(job_id)`` and ``waiting_in_order(org)`` derive the per-job view on demand
    (a job's position is how many of its organization's waiting jobs are ahead of it, counted with one
    binary search per class of that organization)."""

    decisions: tuple[Decision, ...]
    outcomes: tuple[ClassOutcome, ...]
    held: tuple[tuple[UUID, UUID], ...] = ()  # (organization, job id)
    stats: CycleStats = field(default_factory=lambda: CycleStats(0, 0, 0, 0))
    _index: dict[UUID, tuple[int, int]] = field(default_factory=dict, init=False, repr=False)
    _by_org: dict[UUID, list[ClassOutcome]] = field(default_factory=dict, init=False, repr=False)

    @property
    def placements(self) -> list[Place]:
        return [d for d in self.decisions if isinstance(d, Place)]

    @property
    def rejections(self) -> list[Reject]:
        return [d for d in self.decisions if isinstance(d, Reject)]

    def waiting(self, job_id: UUID) -> Waiting | None:
        """Why this job waits; None when it was placed or rejected (or is not queued)."""
        if not self._index:
            self._build_index()
        where = self._index.get(job_id)
        if where is None:
            return None
        i, j = where
        if i < 0:
            return Waiting(HELD_REASON, None, None)
        outcome = self.outcomes[i]
        key = outcome.keys[j]
        ahead = sum(bisect_left(o.keys, key) for o in self._by_org[outcome.organization])
        return Waiting(outcome.reason, ahead + 1, outcome.estimated_start if j == 0 else None)

    def waiting_in_order(self, organization: UUID) -> Iterator[tuple[UUID, Waiting]]:
        """Every waiting (not held) job of one organization in queue order, with its position."""
        if not self._index:
            self._build_index()
        tagged = (
            ((key, j == 0, o) for j, key in enumerate(o.keys)) for o in self._by_org.get(organization, [])
        )
        for position, (key, first, o) in enumerate(merge(*tagged, key=lambda t: t[0]), start=1):
            yield key[2], Waiting(o.reason, position, o.estimated_start if first else None)

    def _build_index(self) -> None:
        for i, outcome in enumerate(self.outcomes):
            self._by_org.setdefault(outcome.organization, []).append(outcome)
            for j, key in enumerate(outcome.keys):
                self._index[key[2]] = (i, j)
        for _, job_id in self.held:
            self._index[job_id] = (-1, 0)
        self._index.setdefault(_SENTINEL, (-2, 0))  # built, even when nothing waits


_SENTINEL = UUID(int=0)
HELD_REASON = PendingReason("held", "the job is held; release it to let it be scheduled")
