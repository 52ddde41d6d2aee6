"""Cost arithmetic. No I/O: an ended attempt of a job in, cost lines out.

The price of a GPU is fixed when the scheduler allocates it (the job event carries it), and the GPU is
held from allocation (``scheduled_at``) to release. So for each GPU of an attempt::

    cost = cost_per_hour x seconds_held / 3600

computed exactly in Decimal from microsecond timestamps, then rounded half-even to 8 decimal places per
line; an attempt's cost is the sum of its lines (so lines always add up to the total).

Each attempt of a job is billed on its own. An attempt that ended on its own (succeeded, failed,
cancelled, timed out) is charged. An attempt lost to infrastructure (its node or agent was lost and the
job was requeued) is recorded all the same, so the tenant sees the GPU time it held, and every line
carries a credit equal to its cost: its net is zero. What a tenant pays is the sum of the nets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal
from uuid import UUID

LINE_QUANTUM = Decimal("0.00000001")
SECONDS_QUANTUM = Decimal("0.000001")
NO_CREDIT = Decimal(0).quantize(LINE_QUANTUM)  # at the lines' scale, as the database gives it back

Outcome = Literal["succeeded", "failed", "cancelled", "timed_out", "requeued"]
LOST_TO_INFRASTRUCTURE: Outcome = "requeued"


@dataclass(frozen=True)
class HeldGpu:
    """A GPU of an attempt's allocation, at the price fixed when it was allocated."""

    gpu_id: UUID
    gpu_type: str
    cost_per_hour: Decimal


@dataclass(frozen=True)
class EndedAttempt:
    """What billing needs of one attempt of a job once it ended, whichever way."""

    job_id: UUID
    organization_id: UUID
    user_id: UUID | None
    attempt: int  # 1 for the first run
    outcome: Outcome
    allocation: tuple[HeldGpu, ...]
    scheduled_at: datetime | None  # when its GPUs were allocated; None when it never held any
    released_at: datetime | None
    project_id: UUID | None = None  # the job's project, as its events say (None: none)


@dataclass(frozen=True)
class CostLine:
    gpu_id: UUID
    gpu_type: str
    cost_per_hour: Decimal
    start_time: datetime
    end_time: datetime
    seconds: Decimal
    cost: Decimal  # the GPU time held, valued at its price
    attempt: int = 1
    credit: Decimal = NO_CREDIT  # given back: the whole cost for an attempt lost to infrastructure

    @property
    def net(self) -> Decimal:
        return self.cost - self.credit


@dataclass(frozen=True)
class AttemptCost:
    """The cost of one attempt: its lines (one per GPU held) and how it ended. ``outcome`` is None for
    lines recorded before attempts were told apart (all of them charged)."""

    job_id: UUID
    organization_id: UUID
    user_id: UUID | None
    attempt: int
    outcome: Outcome | None
    lines: tuple[CostLine, ...]
    currency: str = "USD"
    project_id: UUID | None = None

    @property
    def gross(self) -> Decimal:
        return sum((line.cost for line in self.lines), Decimal(0))

    @property
    def credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), Decimal(0))

    @property
    def total(self) -> Decimal:
        """What the tenant pays for this attempt (0 when it was lost to infrastructure)."""
        return self.gross - self.credit

    @property
    def credited(self) -> bool:
        return self.outcome == LOST_TO_INFRASTRUCTURE

    @property
    def held_seconds(self) -> Decimal:
        return self.lines[0].seconds if self.lines else Decimal(0)

    @property
    def start_time(self) -> datetime:
        return min(line.start_time for line in self.lines)

    @property
    def end_time(self) -> datetime:
        return max(line.end_time for line in self.lines)


@dataclass(frozen=True)
class JobCost:
    """A job's cost over all its attempts (in attempt order)."""

    job_id: UUID
    organization_id: UUID
    user_id: UUID | None
    attempts: tuple[AttemptCost, ...]
    currency: str = "USD"
    project_id: UUID | None = None  # the job's project (None: none)

    @property
    def lines(self) -> tuple[CostLine, ...]:
        return tuple(line for a in self.attempts for line in a.lines)

    @property
    def gross(self) -> Decimal:
        return sum((a.gross for a in self.attempts), Decimal(0))

    @property
    def credit(self) -> Decimal:
        return sum((a.credit for a in self.attempts), Decimal(0))

    @property
    def total(self) -> Decimal:
        """What the tenant pays: the attempts that ended on their own."""
        return self.gross - self.credit

    @property
    def gpu_count(self) -> int:
        """GPUs of one attempt (every attempt asks for the same), whatever number of attempts."""
        return max((len(a.lines) for a in self.attempts), default=0)

    @property
    def held_seconds(self) -> Decimal:
        """Seconds the job held its GPUs in the attempts it pays for."""
        return sum((a.held_seconds for a in self.attempts if not a.credited), Decimal(0))


@dataclass(frozen=True)
class RecordedCost:
    """A job's cost as stored. ``recorded_at``: when its latest attempt was billed; ``first_recorded_at``:
    when its first was (the paging key, with the job id: it never moves when a later attempt lands, so
    a walk through the pages neither skips nor repeats a job)."""

    cost: JobCost
    recorded_at: datetime
    first_recorded_at: datetime


def seconds_between(start: datetime, end: datetime) -> Decimal:
    delta = end - start
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return (Decimal(micros) / Decimal(1_000_000)).quantize(SECONDS_QUANTUM)


def line_cost(cost_per_hour: Decimal, seconds: Decimal) -> Decimal:
    return (cost_per_hour * seconds / Decimal(3600)).quantize(LINE_QUANTUM, rounding=ROUND_HALF_EVEN)


def cost_of(attempt: EndedAttempt) -> AttemptCost | None:
    """The cost of an ended attempt, or None when it never held a GPU (cancelled while queued)."""
    if not attempt.allocation or attempt.scheduled_at is None or attempt.released_at is None:
        return None
    start, end = attempt.scheduled_at, max(attempt.released_at, attempt.scheduled_at)
    seconds = seconds_between(start, end)
    lost = attempt.outcome == LOST_TO_INFRASTRUCTURE
    lines = []
    for gpu in attempt.allocation:
        cost = line_cost(gpu.cost_per_hour, seconds)
        lines.append(
            CostLine(
                gpu_id=gpu.gpu_id,
                gpu_type=gpu.gpu_type,
                cost_per_hour=gpu.cost_per_hour,
                start_time=start,
                end_time=end,
                seconds=seconds,
                cost=cost,
                attempt=attempt.attempt,
                credit=cost if lost else NO_CREDIT,
            )
        )
    return AttemptCost(
        job_id=attempt.job_id,
        organization_id=attempt.organization_id,
        user_id=attempt.user_id,
        attempt=attempt.attempt,
        outcome=attempt.outcome,
        lines=tuple(lines),
        project_id=attempt.project_id,
    )


def job_cost(attempts: list[AttemptCost]) -> JobCost:
    """The attempts of one job (at least one), put in attempt order. A job's project never changes; the
    latest attempt's is the job's (an attempt recorded before projects existed has none)."""
    ordered = tuple(sorted(attempts, key=lambda a: a.attempt))
    first = ordered[0]
    project = next((a.project_id for a in reversed(ordered) if a.project_id is not None), None)
    return JobCost(first.job_id, first.organization_id, first.user_id, ordered, first.currency, project)
