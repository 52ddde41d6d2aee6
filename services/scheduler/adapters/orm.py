"""SQLModel tables of the ``scheduler`` schema (migrations/scheduler/*.sql is the source of truth for DDL)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, Numeric
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 2  # the highest file in migrations/scheduler


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class JobRow(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = {"schema": "scheduler"}

    id: UUID = Field(primary_key=True)
    organization_id: UUID
    user_id: UUID | None = None
    name: str | None = None
    command: str
    gpu_count: int
    gpu_memory_mb: int = Field(sa_column=Column(BigInteger, nullable=False))
    gpu_type: str | None = None
    priority: int
    status: str
    node_id: UUID | None = None
    gpu_ids: list[UUID] = Field(sa_column=Column(ARRAY(PG_UUID(as_uuid=True)), nullable=False))
    allocation: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    webhook_url: str | None = None
    exit_code: int | None = None
    output_tail: str | None = None
    error_message: str | None = None
    idempotency_key: str | None = None
    # SHA-256 of the request that created the job (domain.spec.request_fingerprint); NULL before 002.
    idempotency_fingerprint: str | None = None
    cancel_requested_at: datetime | None = _ts()
    created_at: datetime = _ts(nullable=False)
    scheduled_at: datetime | None = _ts()
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    updated_at: datetime = _ts(nullable=False)


class JobStatusHistoryRow(SQLModel, table=True):
    __tablename__ = "job_status_history"
    __table_args__ = {"schema": "scheduler"}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    job_id: UUID
    organization_id: UUID
    status: str
    at: datetime = _ts(nullable=False)
    reason: str | None = None


class GpuInventoryRow(SQLModel, table=True):
    __tablename__ = "gpu_inventory"
    __table_args__ = {"schema": "scheduler"}

    gpu_id: UUID = Field(primary_key=True)
    node_id: UUID
    node_name: str
    device_index: int
    gpu_type: str
    memory_total_mb: int = Field(sa_column=Column(BigInteger, nullable=False))
    cost_per_hour: Decimal = Field(sa_column=Column(Numeric(10, 4), nullable=False))
    organization_id: UUID | None = None
    status: str
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = _ts(nullable=False)


class GpuAllocationRow(SQLModel, table=True):
    __tablename__ = "gpu_allocations"
    __table_args__ = {"schema": "scheduler"}

    gpu_id: UUID = Field(primary_key=True)
    job_id: UUID
    node_id: UUID
    allocated_at: datetime = _ts(nullable=False)
