"""Who held a GPU when: the scheduler's allocations as monitoring learns them from the job topic, and
the rules that decide whose a GPU sample or a job's output chunk is (docs/attribution.md). No I/O.

A :class:`Hold` is one GPU held by one attempt of a job, from ``started_at`` (the scheduler allocated
it) to ``ended_at`` (released; None while still held). Job events may come twice or out of order, so a
hold is only ever *merged* with what is known already (:func:`merge`): whatever order the events of an
attempt arrive in, the result is the same. A sample is the job's when a hold on its GPU, placed on the
node that sent the sample, covers its timestamp (:func:`holder`); what the agent says about the sample's
job or organization never decides it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

HoldKey = tuple[UUID, int, UUID]  # (job id, attempt, gpu id)


@dataclass(frozen=True, slots=True)
class Hold:
    job_id: UUID
    attempt: int
    gpu_id: UUID
    # The node the GPU was placed on; None when only a requeue's ended attempt told of the hold (that
    # event names the GPUs, not their node): such a hold ends nothing wrongly but attributes nothing.
    node_id: UUID | None
    organization_id: UUID
    project_id: UUID | None
    started_at: datetime
    ended_at: datetime | None = None

    @property
    def key(self) -> HoldKey:
        return (self.job_id, self.attempt, self.gpu_id)

    def covers(self, node_id: UUID, at: datetime) -> bool:
        """``[started_at, ended_at)`` holds ``at`` and the GPU was placed on ``node_id``."""
        return (
            self.node_id is not None
            and self.node_id == node_id
            and self.started_at <= at
            and (self.ended_at is None or at < self.ended_at)
        )


def merge(known: Hold | None, new: Hold) -> Hold:
    """What is known of a hold after one more event about it. Order-free: the earliest start, the
    first end recorded, and whichever event named the node (an attempt's allocation never changes)."""
    if known is None:
        return new
    return replace(
        known,
        node_id=known.node_id or new.node_id,
        project_id=known.project_id or new.project_id,
        started_at=min(known.started_at, new.started_at),
        ended_at=known.ended_at or new.ended_at,
    )


@dataclass(frozen=True, slots=True)
class Span:
    """``[start, end)`` of one GPU's samples; ``end`` None: open (up to now and on)."""

    gpu_id: UUID
    start: datetime
    end: datetime | None


def changed_span(known: Hold | None, merged: Hold) -> Span | None:
    """The samples whose owner may differ now that ``known`` became ``merged`` (None: nothing changed)."""
    if known == merged:
        return None
    if known is None or (known.node_id, known.started_at) != (merged.node_id, merged.started_at):
        start = merged.started_at if known is None else min(known.started_at, merged.started_at)
        return Span(merged.gpu_id, start, merged.ended_at)
    if known.ended_at == merged.ended_at or merged.ended_at is None:
        return None  # the project, say: nothing a sample keeps
    # Only the end moved (from open to a time): samples from that time on are no longer this hold's.
    return Span(merged.gpu_id, merged.ended_at, known.ended_at)


def coalesce(spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans of a GPU joined, so one update touches each sample at most once."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.gpu_id.bytes, s.start)):
        last = out[-1] if out else None
        if last is not None and last.gpu_id == span.gpu_id and (last.end is None or span.start <= last.end):
            end = None if last.end is None or span.end is None else max(last.end, span.end)
            out[-1] = Span(last.gpu_id, last.start, end)
        else:
            out.append(span)
    return out


def holder(holds: Iterable[Hold], gpu_id: UUID, node_id: UUID, at: datetime) -> Hold | None:
    """The hold a sample of ``gpu_id`` sent by ``node_id`` at ``at`` belongs to; None: unattributed
    (idle, or its allocation is not known yet). Holds of one GPU do not overlap; should clocks make two
    touch, the later-started one wins (the same order the SQL uses)."""
    covering = [h for h in holds if h.gpu_id == gpu_id and h.covers(node_id, at)]
    return max(covering, key=lambda h: (h.started_at, h.attempt), default=None)


def claim_disputed(claimed: UUID | None, attributed: UUID | None) -> bool:
    """The agent named another organization than the allocation: worth a warning, nothing more.

    A sample the agent sent as idle inside a hold is no dispute: a hold starts when the job is placed
    and ends when its end is recorded, so the agent's own view (job not started yet, or just reaped)
    lags it at both edges by design."""
    return attributed is not None and claimed is not None and claimed != attributed


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an attempt runs, as the job topic said: the only nodes whose output of it is accepted;
    and whose it is (its organization, and its job's project: None, none)."""

    organization_id: UUID
    nodes: frozenset[UUID]
    project_id: UUID | None = None


class ChunkVerdict(enum.Enum):
    APPLY = "apply"
    PARK = "park"  # the placement is not known yet: kept aside until the job topic tells it
    REFUSE = "refuse"


def judge_chunk(placement: Placement | None, node_id: UUID | None) -> ChunkVerdict:
    """A chunk is applied only when it comes from a node its attempt was placed on."""
    if node_id is None:
        return ChunkVerdict.REFUSE  # an agent that does not say its node cannot be checked
    if placement is None:
        return ChunkVerdict.PARK
    return ChunkVerdict.APPLY if node_id in placement.nodes else ChunkVerdict.REFUSE
