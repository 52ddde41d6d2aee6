"""Response bodies of the read APIs the dashboard and the CLI draw from: costs grouped, utilization as a
time series. Money is a decimal string, as everywhere; GPU-seconds and utilization are plain numbers
(they are measurements, not amounts owed)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.gateway.entrypoints.responses import Decimal

# ----------------------------------------------------------------------------- costs


class CostTotalOut(BaseModel):
    gpu_seconds: float = Field(description="GPU-seconds charged, plus running ones when included.")
    cost: Decimal = Field(description="Ended attempts, net of credits (USD).")
    running_cost: Decimal = Field(description="The cost so far of attempts still running (USD).")
    jobs: int = Field(description="Distinct jobs with GPU time in the window.")


class CostGroupOut(CostTotalOut):
    key: str = Field(
        description='"2026-12-01" (a UTC day), a GPU type, or a project ("" until jobs carry projects).',
        examples=["2026-12-01"],
    )


class CostSummaryOut(BaseModel):
    """Costs in ``[from, to)``. A cost line is attributed by time: the part of its GPU time on each UTC
    day (and inside the window) carries that part of its cost, so the groups add up to the total."""

    group_by: str = Field(examples=["day"])
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    currency: str = Field(examples=["USD"])
    include_running: bool
    as_of: datetime = Field(description="The instant the running cost is computed at.")
    groups: list[CostGroupOut] = Field(description="Ordered by key; groups with no cost are absent.")
    total: CostTotalOut


# ----------------------------------------------------------------------------- utilization


class UtilizationPointOut(BaseModel):
    t: datetime = Field(description="The bucket's start; it covers [t, t + step_seconds).")
    utilization: float = Field(description="Fraction 0..1: the mean of the bucket's samples.")
    memory_used_mb: int = Field(description="Mean of the bucket's samples.")
    samples: int


class GpuSeriesOut(BaseModel):
    gpu_id: str
    gpu_name: str
    gpu_type: str
    points: list[UtilizationPointOut] = Field(description="Buckets without samples are absent.")


class AggregatePointOut(BaseModel):
    t: datetime
    utilization: float = Field(description="Fraction 0..1: the mean of the GPUs' bucket means.")
    gpus: int = Field(description="GPUs with samples in this bucket.")


class AggregateSeriesOut(BaseModel):
    points: list[AggregatePointOut]


class UtilizationSeriesOut(BaseModel):
    """Samples taken while the GPUs ran the organization's jobs (idle time and other organizations'
    time are not in it), in buckets of ``step_seconds`` from ``from``."""

    from_: datetime = Field(serialization_alias="from")
    to: datetime
    step_seconds: int
    series: list[GpuSeriesOut]
    aggregate: AggregateSeriesOut
