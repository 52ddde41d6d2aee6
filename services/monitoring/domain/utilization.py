"""Rules of the utilization question. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.errors import InvalidArgument

DEFAULT_HOURS = 24
MAX_HOURS = 720


def window_hours(requested: int) -> int:
    """0 (proto's unset) means the default day; anything outside 1..720 is refused."""
    if requested == 0:
        return DEFAULT_HOURS
    if not 1 <= requested <= MAX_HOURS:
        raise InvalidArgument(f"hours must be between 1 and {MAX_HOURS}", field="hours")
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
