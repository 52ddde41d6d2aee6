"""Public cost topic contract (``gpufleet.costs.v1``).

One ``gpufleet.cost.recorded`` event per attempt of a job that held GPUs (the first run is attempt 1; a
job requeued after its node or agent was lost runs again as attempt 2, and so on). An attempt that ended
on its own (succeeded, failed, cancelled, timed out) is charged. An attempt lost to infrastructure
(``outcome`` "requeued") is announced all the same, with every line credited in full: its lines show
the GPU time it held, ``credit`` equals ``gross_cost`` and ``total_cost`` is 0.

Credits are a field, not negative lines: ``total_cost`` is always what the tenant is charged for the
attempt (``gross_cost - credit``), so a subscriber that sums ``total_cost`` over events sums the bill,
and each line's ``cost - credit`` is its net. Amounts are decimal strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

COST_RECORDED = "gpufleet.cost.recorded"

AttemptOutcome = Literal["succeeded", "failed", "cancelled", "timed_out", "requeued"]


class CostLineV1(BaseModel):
    gpu_id: UUID
    gpu_type: str
    cost_per_hour: Decimal
    start_time: datetime
    end_time: datetime
    seconds: Decimal
    cost: Decimal = Field(description="the GPU time held, valued at its price (before any credit)")
    # Added with attempts (optional: older events decode unchanged, as attempt 1 without credit).
    attempt: int = Field(default=1, description="the attempt this GPU was held by")
    credit: Decimal = Field(
        default=Decimal(0), description="given back; equals cost when lost to infrastructure"
    )


class CostRecordedV1(BaseModel):
    """The cost of one ended attempt of a job: sum over its GPUs of hourly price x seconds held / 3600,
    less credits."""

    job_id: UUID
    organization_id: UUID
    user_id: UUID | None = None
    currency: str = "USD"
    total_cost: Decimal = Field(description="charged for this attempt: gross_cost - credit")
    gpu_count: int
    held_seconds: Decimal
    start_time: datetime
    end_time: datetime
    lines: list[CostLineV1]
    # Added with attempts (optional: older events decode unchanged).
    attempt: int = Field(default=1, description="1 for the first run; +1 per requeue after a lost node/agent")
    outcome: AttemptOutcome | None = Field(
        default=None, description="how the attempt ended; requeued = lost to infrastructure, credited"
    )
    gross_cost: Decimal | None = Field(default=None, description="sum of the lines' cost")
    credit: Decimal = Field(default=Decimal(0), description="sum of the lines' credit")
    # Added with projects (optional: older events decode unchanged).
    project_id: UUID | None = Field(default=None, description="the job's project; null: none")


EVENT_TYPES: dict[str, type[BaseModel]] = {COST_RECORDED: CostRecordedV1}
