"""SQLModel table of the ``billing`` schema (migrations/billing/*.sql is the source of truth for DDL)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Column, Numeric
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 4  # the highest file in migrations/billing


class CostRow(SQLModel, table=True):
    """One GPU of one attempt of a job: UNIQUE (job_id, attempt, gpu_id)."""

    __tablename__ = "cost_tracking"
    __table_args__ = {"schema": "billing"}

    id: UUID = Field(primary_key=True)
    organization_id: UUID
    user_id: UUID | None = None
    project_id: UUID | None = None  # the job's project (None: none)
    job_id: UUID
    attempt: int = 1
    outcome: str | None = None  # None: recorded before attempts were told apart (charged)
    gpu_id: UUID
    gpu_type: str
    start_time: datetime
    end_time: datetime
    seconds: Decimal = Field(sa_column=Column(Numeric(20, 6), nullable=False))
    cost_per_hour: Decimal = Field(sa_column=Column(Numeric(10, 4), nullable=False))
    total_cost: Decimal = Field(sa_column=Column(Numeric(20, 8), nullable=False))
    credit: Decimal = Field(default=Decimal(0), sa_column=Column(Numeric(20, 8), nullable=False))
    currency: str = "USD"
    created_at: datetime | None = Field(default=None, nullable=False)  # None: the DEFAULT now()


class RunningGpuRow(SQLModel, table=True):
    """One GPU of an attempt that holds its GPUs now (``ended_at`` None) or did (a tombstone until
    pruned): PRIMARY KEY (job_id, attempt, gpu_id)."""

    __tablename__ = "running_attempts"
    __table_args__ = {"schema": "billing"}

    organization_id: UUID
    user_id: UUID | None = None
    project_id: UUID | None = None
    job_id: UUID = Field(primary_key=True)
    attempt: int = Field(primary_key=True)
    gpu_id: UUID = Field(primary_key=True)
    gpu_type: str
    cost_per_hour: Decimal = Field(sa_column=Column(Numeric(10, 4), nullable=False))
    start_time: datetime
    ended_at: datetime | None = None
    created_at: datetime | None = Field(default=None, nullable=False)  # None: the DEFAULT now()
