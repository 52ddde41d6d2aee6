"""Public cost topic contract (``gpufleet.costs.v1``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel

COST_RECORDED = "gpufleet.cost.recorded"


class CostLineV1(BaseModel):
    gpu_id: UUID
    gpu_type: str
    cost_per_hour: Decimal
    start_time: datetime
    end_time: datetime
    seconds: Decimal
    cost: Decimal


class CostRecordedV1(BaseModel):
    """The cost of one finished job: sum over its GPUs of hourly price x seconds held / 3600."""

    job_id: UUID
    organization_id: UUID
    user_id: UUID | None = None
    currency: str = "USD"
    total_cost: Decimal
    gpu_count: int
    held_seconds: Decimal
    start_time: datetime
    end_time: datetime
    lines: list[CostLineV1]


EVENT_TYPES: dict[str, type[BaseModel]] = {COST_RECORDED: CostRecordedV1}
