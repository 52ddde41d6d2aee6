"""Rules of the utilization question. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.contracts.limits import DEFAULT_UTILIZATION_HOURS, MAX_UTILIZATION_HOURS
from shared.errors import InvalidArgument


def window_hours(requested: int) -> int:
    """0 (proto's unset) means the default day; anything outside 1..MAX_UTILIZATION_HOURS is refused."""
    if requested == 0:
        return DEFAULT_UTILIZATION_HOURS
    if not 1 <= requested <= MAX_UTILIZATION_HOURS:
        raise InvalidArgument(f"hours must be between 1 and {MAX_UTILIZATION_HOURS}", field="hours")
    return requested


@dataclass(frozen=True)
class GpuUtilization:
    gpu_id: UUID
    gpu_name: str
    gpu_type: str
    avg_utilization: float
    max_utilization: float
    avg_memory_used_mb: float
    samples: int
    first_sample_at: datetime
    last_sample_at: datetime


@dataclass(frozen=True)
class Utilization:
    """The answer: the window it covers and, per GPU, the organization's usage within it."""

    hours: int
    gpus: list[GpuUtilization]
