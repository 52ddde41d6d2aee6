"""SQLModel tables of the ``scheduler`` schema (migrations/scheduler/*.sql is the source of truth for DDL)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, Numeric, SmallInteger, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.types import UserDefinedType
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 10  # the highest file in migrations/scheduler


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (``pg_current_xact_id()``)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


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
    # 003: the engine's job shape, attempts, placements and the persisted "why pending".
    nodes: int = 1
    cpu_cores: int = 0
    ram_mb: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    time_limit_seconds: int | None = Field(default=None, sa_column=Column(BigInteger))
    held: bool = False
    no_requeue: bool = False
    attempt: int = 1
    node_ids: list[UUID] = Field(sa_column=Column(ARRAY(PG_UUID(as_uuid=True)), nullable=False))
    placements: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    pending_code: str | None = None
    pending_message: str | None = None
    estimated_start: datetime | None = _ts()
    change_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    # 009: the transaction of the last scheduling change (NULL: changed before 009); set by the database.
    change_xid: int | None = Field(
        default=None, sa_column=Column(Xid8(), server_default=text("pg_current_xact_id()"))
    )
    # 007: the job's project (NULL: none) and container image (NULL: the host sandbox).
    project_id: UUID | None = None
    image: str | None = None
    # 008: preemption (asked to stop for a reclaim; attempts that ended so).
    preempted_at: datetime | None = _ts()
    preemptions: int = 0
    # 010: the attempt whose time-limit warning was sent (0: none).
    time_limit_warned_attempt: int = 0


class JobStatusHistoryRow(SQLModel, table=True):
    __tablename__ = "job_status_history"
    __table_args__ = {"schema": "scheduler"}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    job_id: UUID
    organization_id: UUID
    status: str
    at: datetime = _ts(nullable=False)
    reason: str | None = None
    attempt: int = 1


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
    node_cpu_cores: int = 0
    node_ram_mb: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    node_labels: dict[str, str] = Field(sa_column=Column(JSONB, nullable=False))
    change_seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class SchedulerLeaseRow(SQLModel, table=True):
    __tablename__ = "scheduler_lease"
    __table_args__ = {"schema": "scheduler"}

    id: int = Field(sa_column=Column(SmallInteger, primary_key=True))
    holder: str
    token: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: datetime = _ts(nullable=False)


class GpuAllocationRow(SQLModel, table=True):
    __tablename__ = "gpu_allocations"
    __table_args__ = {"schema": "scheduler"}

    gpu_id: UUID = Field(primary_key=True)
    job_id: UUID
    node_id: UUID
    allocated_at: datetime = _ts(nullable=False)
