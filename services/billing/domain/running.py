"""Attempts that hold their GPUs now. No I/O.

Billing bills an attempt once it ends (domain/costs.py); until then the job topic's scheduled and
started events say which GPUs it holds, at which price, since when. That is all the cost so far needs::

    cost so far = cost_per_hour x (now - scheduled_at) / 3600   per GPU

computed when asked, never stored (it changes every instant).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from .costs import HeldGpu


@dataclass(frozen=True)
class RunningAttempt:
    """An attempt whose GPUs were allocated at ``scheduled_at`` and are not released yet."""

    job_id: UUID
    organization_id: UUID
    user_id: UUID | None
    attempt: int
    allocation: tuple[HeldGpu, ...]
    scheduled_at: datetime
    project_id: UUID | None = None  # the job's project (None: none)
