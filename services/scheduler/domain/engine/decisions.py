"""What a cycle decides, and why the rest waits.

A cycle's ``decisions`` are an ordered list the service applies in one transaction: :class:`Place`,
:class:`Reject` and :class:`Preempt`. A ``Preempt`` stops a job that runs on borrowed (lent) capacity
so that the organization that lent it gets it back (``preemption``); the cycle never places onto what
a ``Preempt`` frees: the victim's GPUs stay held until its agent reports it stopped, and the job that
reclaims them waits with reason ``reclaiming`` until then. ``CycleResult.reclaims`` names those
waiting jobs, so the next cycle keeps their organization's idle nominal out of what others may borrow.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from heapq import merge
from typing import Any, overload
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


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop a running job on borrowed capacity and requeue it (not a failure: it did nothing wrong).
    ``for_job``: the waiting job of the lending organization the GPUs go back to."""

    job_id: UUID
    organization: UUID  # the victim's
    reason: str  # for the victim's history
    for_job: UUID


Decision = Place | Reject | Preempt
Reclaim = tuple[UUID, str, int]
"""A waiting job reclaiming lent capacity: (its organization, the GPU type, GPUs it needs)."""


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
    preempted: int = 0


PendingClass = tuple[UUID, PendingReason, Sequence[JobKey], int, object]
"""What the cycle records for a class that waits: (organization, reason, its jobs' keys in queue
order, where its waiting ones start in them, the key of its estimated start in
``PendingOutcomes.starts``; None: no estimate). The keys are the snapshot's own list, which the
snapshot never changes once a result holds it (it changes a copy)."""


class PendingOutcomes(Sequence[ClassOutcome]):
    """A cycle's class outcomes, each made the first time it is read.

    A cycle over 100,000 waiting jobs in 4,000 classes that mostly still wait would otherwise spend a
    good part of its time building outcome objects nobody may ask for; the cycle keeps one tuple per
    class (with its keys, which later updates of the snapshot do not touch) and the estimated starts,
    one per (pools, shape)."""

    __slots__ = ("_made", "_pending", "_starts")

    def __init__(self, pending: Sequence[PendingClass], starts: Mapping[object, datetime | None]) -> None:
        self._pending = pending
        self._starts = starts
        self._made: tuple[ClassOutcome, ...] | None = None

    def _all(self) -> tuple[ClassOutcome, ...]:
        if self._made is None:
            starts = self._starts
            self._made = tuple(
                ClassOutcome(org, reason, tuple(keys[first:]), None if at is None else starts.get(at))
                for org, reason, keys, first, at in self._pending
            )
        return self._made

    def pending(self) -> Sequence[PendingClass]:
        return self._pending

    def start(self, at: object) -> datetime | None:
        return None if at is None else self._starts.get(at)

    def __len__(self) -> int:
        return len(self._pending)

    @overload
    def __getitem__(self, i: int) -> ClassOutcome: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[ClassOutcome]: ...
    def __getitem__(self, i: int | slice) -> ClassOutcome | Sequence[ClassOutcome]:
        return self._all()[i]

    def __iter__(self) -> Iterator[ClassOutcome]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PendingOutcomes):
            return self._all() == other._all()
        if isinstance(other, tuple):
            return self._all() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


def _pending_of(outcomes: Sequence[ClassOutcome]) -> tuple[Sequence[PendingClass], Any]:
    """The raw per-class records behind ``outcomes`` and how to read a record's estimated start."""
    if isinstance(outcomes, PendingOutcomes):
        return outcomes.pending(), outcomes.start
    return [(o.organization, o.reason, o.keys, 0, o.estimated_start) for o in outcomes], _same


def _tagged(record: PendingClass) -> Iterator[tuple[JobKey, bool, PendingClass]]:
    keys, first = record[2], record[3]
    for j in range(first, len(keys)):
        yield keys[j], j == first, record


def _same(at: Any) -> datetime | None:
    return at if isinstance(at, datetime) else None


class _WaitingIndex:
    """Where each waiting job is: its class record and place in it; built on the first question."""

    __slots__ = ("by_org", "held", "jobs", "pending", "start")

    def __init__(self, outcomes: Sequence[ClassOutcome], held: tuple[tuple[UUID, UUID], ...]) -> None:
        self.pending, self.start = _pending_of(outcomes)
        self.by_org: dict[UUID, list[PendingClass]] = {}
        self.jobs: dict[UUID, tuple[int, int]] = {}
        for i, record in enumerate(self.pending):
            self.by_org.setdefault(record[0], []).append(record)
            keys, first = record[2], record[3]
            for j in range(first, len(keys)):
                self.jobs[keys[j][2]] = (i, j)
        for _, job_id in held:
            self.jobs[job_id] = (-1, 0)


@dataclass(frozen=True)
class CycleResult:
    """The cycle's decisions plus the reason every other waiting job waits.

    Reasons are kept per class, not per job, so a cycle over 100,000 waiting jobs does not build
    100,000 objects; ``waiting(job_id)`` and ``waiting_in_order(org)`` derive the per-job view on demand
    (a job's position is how many of its organization's waiting jobs are ahead of it, counted with one
    binary search per class of that organization). ``outcomes`` is any sequence of
    :class:`ClassOutcome`; the cycle passes a :class:`PendingOutcomes`, which makes them on first use."""

    decisions: tuple[Decision, ...]
    outcomes: Sequence[ClassOutcome]
    held: tuple[tuple[UUID, UUID], ...] = ()  # (organization, job id)
    stats: CycleStats = field(default_factory=lambda: CycleStats(0, 0, 0, 0))
    reclaims: Mapping[UUID, Reclaim] = field(default_factory=dict)  # waiting job id -> what it reclaims
    _lazy: list[_WaitingIndex] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def placements(self) -> list[Place]:
        return [d for d in self.decisions if isinstance(d, Place)]

    @property
    def rejections(self) -> list[Reject]:
        return [d for d in self.decisions if isinstance(d, Reject)]

    @property
    def preemptions(self) -> list[Preempt]:
        return [d for d in self.decisions if isinstance(d, Preempt)]

    def waiting(self, job_id: UUID) -> Waiting | None:
        """Why this job waits; None when it was placed or rejected (or is not queued)."""
        index = self._index()
        where = index.jobs.get(job_id)
        if where is None:
            return None
        i, j = where
        if i < 0:
            return Waiting(HELD_REASON, None, None)
        org, reason, keys, first, at = index.pending[i]
        key = keys[j]
        ahead = sum(bisect_left(o[2], key, o[3]) - o[3] for o in index.by_org[org])
        return Waiting(reason, ahead + 1, index.start(at) if j == first else None)

    def waiting_in_order(self, organization: UUID) -> Iterator[tuple[UUID, Waiting]]:
        """Every waiting (not held) job of one organization in queue order, with its position."""
        index = self._index()
        tagged = [_tagged(o) for o in index.by_org.get(organization, [])]
        for position, (key, first, o) in enumerate(merge(*tagged, key=lambda t: t[0]), start=1):
            yield key[2], Waiting(o[1], position, index.start(o[4]) if first else None)

    def _index(self) -> _WaitingIndex:
        if not self._lazy:
            self._lazy.append(_WaitingIndex(self.outcomes, self.held))
        return self._lazy[0]


HELD_REASON = PendingReason("held", "the job is held; release it to let it be scheduled")
