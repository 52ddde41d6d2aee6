"""What the entrypoints ask of the handlers, already out of wire types."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class PruneSamples:
    """Delete raw samples older than ``retention_hours``, every organization's (housekeeping)."""

    retention_hours: int
