"""Cost arithmetic. No I/O: a finished job in, cost lines out.

The price of a GPU is fixed when the scheduler allocates it (the job event carries it), and the GPU is
held from allocation (``scheduled_at``) to release (``finished_at``). So for each GPU::

    cost = cost_per_hour x seconds_held / 3600

computed exactly in Decimal from microsecond timestamps, then rounded half-even to 8 decimal places per
line; the job total is the sum of its lines (so lines always add up to the total).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from uuid import UUID

LINE_QUANTUM = Decimal("0.00000001")
SECONDS_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class HeldGpu:
    """A GPU of a job's allocation, at the price fixed when it was allocated."""

    gpu_id: UUID
    gpu_type: str
    cost_per_hour: Decimal


@dataclass(frozen=True)
class FinishedJob:
    """What billing needs of a job that reached a terminal state."""

    job_id: UUID
    organization_id: UUID
    user_id: UUID | None
    allocation: tuple[HeldGpu, ...]
    scheduled_at: datetime | None  # when its GPUs were allocated; None when it never held any
    finished_at: datetime | None


@dataclass(frozen=True)
class CostLine:
    gpu_id: UUID
    gpu_type: str
    cost_per_hour: Decimal
    start_time: datetime
    end_time: datetime
    seconds: Decimal
    cost: Decimal


@dataclass(frozen=True)
class JobCost:
    job_id: UUID
    organization_id: UUID
    user_id: UUID | None
    lines: tuple[CostLine, ...]
    currency: str = "USD"

    @property
    def total(self) -> Decimal:
        return sum((line.cost for line in self.lines), Decimal(0))

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
class RecordedCost:
    """A job's cost as stored, with when it was recorded (the paging key, with the job id)."""

    cost: JobCost
    recorded_at: datetime


def seconds_between(start: datetime, end: datetime) -> Decimal:
    delta = end - start
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return (Decimal(micros) / Decimal(1_000_000)).quantize(SECONDS_QUANTUM)


def line_cost(cost_per_hour: Decimal, seconds: Decimal) -> Decimal:
    return (cost_per_hour * seconds / Decimal(3600)).quantize(LINE_QUANTUM, rounding=ROUND_HALF_EVEN)


def cost_of(job: FinishedJob) -> JobCost | None:
    """The cost of a finished job, or None when it never held a GPU (cancelled while queued)."""
    if not job.allocation or job.scheduled_at is None or job.finished_at is None:
        return None
    start, end = job.scheduled_at, max(job.finished_at, job.scheduled_at)
    seconds = seconds_between(start, end)
    lines = tuple(
        CostLine(
            gpu_id=gpu.gpu_id,
            gpu_type=gpu.gpu_type,
            cost_per_hour=gpu.cost_per_hour,
            start_time=start,
            end_time=end,
            seconds=seconds,
            cost=line_cost(gpu.cost_per_hour, seconds),
        )
        for gpu in job.allocation
    )
    return JobCost(job.job_id, job.organization_id, job.user_id, lines)
