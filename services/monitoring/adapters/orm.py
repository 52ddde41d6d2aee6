"""SQLModel table of the ``monitoring`` schema (migrations/monitoring/*.sql is the source of truth)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import BigInteger, Column, Numeric
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 4  # the highest file in migrations/monitoring


class GpuMetricRow(SQLModel, table=True):
    __tablename__ = "gpu_metrics"
    __table_args__ = {"schema": "monitoring"}

    gpu_id: UUID = Field(primary_key=True)
    timestamp: datetime = Field(primary_key=True)
    node_id: UUID
    gpu_name: str
    gpu_type: str
    organization_id: UUID | None = None
    job_id: UUID | None = None
    memory_used: int = Field(sa_type=BigInteger)
    memory_total: int = Field(sa_type=BigInteger)
    gpu_utilization: Decimal | None = Field(default=None, sa_column=Column(Numeric(5, 2)))
    power_usage: Decimal | None = Field(default=None, sa_column=Column(Numeric(10, 2)))
    temperature: Decimal | None = Field(default=None, sa_column=Column(Numeric(5, 2)))
