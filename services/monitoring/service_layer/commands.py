"""What the entrypoints ask of the handlers, already out of wire types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ..domain.samples import GpuSample


@dataclass(frozen=True)
class IngestSamples:
    """Store one consumed batch of samples (redelivered ones included: they are skipped)."""

    samples: tuple[GpuSample, ...]


@dataclass(frozen=True)
class GetUtilization:
    organization_id: UUID
    hours: int = 0  # 0 (proto's unset): the default day
    # The caller's key is bound to this project: only samples of its jobs count (None: unbound).
    project_id: UUID | None = None


@dataclass(frozen=True)
class GetUtilizationSeries:
    organization_id: UUID
    start: datetime | None = None  # None: an hour before ``end``
    end: datetime | None = None  # None: now
    step_seconds: int = 0  # 0 (proto's unset): chosen so that a series has at most 500 points
    gpu_id: UUID | None = None  # None: every GPU the organization's jobs used in the window
    project_id: UUID | None = None  # a bound key's project: only samples of its jobs (None: unbound)


@dataclass(frozen=True)
class PruneSamples:
    """Delete raw samples older than ``retention_hours``, every organization's (housekeeping)."""

    retention_hours: int
