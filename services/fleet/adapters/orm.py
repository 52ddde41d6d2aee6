"""SQLModel tables of the ``fleet`` schema (migrations/fleet/*.sql is the source of truth for DDL)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Column, LargeBinary, Numeric, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 5  # the highest file in migrations/fleet


class GpuTypeRow(SQLModel, table=True):
    __tablename__ = "gpu_types"
    __table_args__ = {"schema": "fleet"}

    name: str = Field(primary_key=True)
    vendor: str
    model: str
    memory_mb: int = Field(sa_type=BigInteger)
    nvml_names: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    reference_price_per_hour: Decimal = Field(sa_column=Column(Numeric(10, 4), nullable=False))
    spot_price_per_hour: Decimal | None = Field(default=None, sa_column=Column(Numeric(10, 4)))
    tdp_watts: int | None = None
    is_active: bool = True
    description: str | None = None
    created_at: datetime | None = Field(default=None, nullable=False)  # None: the DEFAULT now()
    updated_at: datetime | None = Field(default=None, nullable=False)


class NodeRow(SQLModel, table=True):
    __tablename__ = "nodes"
    __table_args__ = {"schema": "fleet"}

    id: UUID = Field(primary_key=True)
    hostname: str
    provider: str
    gpu_backend: str
    driver_version: str | None = None
    agent_version: str | None = None
    organization_id: UUID | None = None
    is_spot: bool = False
    status: str = "online"
    last_heartbeat: datetime
    registered_at: datetime
    updated_at: datetime
    cpu_cores: int = 0
    ram_mb: int = Field(default=0, sa_type=BigInteger)
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    fixed_labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    decommissioned_at: datetime | None = None


class JoinTokenRow(SQLModel, table=True):
    __tablename__ = "join_tokens"
    __table_args__ = {"schema": "fleet"}

    id: UUID = Field(primary_key=True)
    token_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    organization_id: UUID | None = None
    provider: str
    is_spot: bool
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    description: str = ""
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    node_id: UUID | None = None
    revoked_at: datetime | None = None


class NodeCredentialRow(SQLModel, table=True):
    __tablename__ = "node_credentials"
    __table_args__ = {"schema": "fleet"}

    id: UUID = Field(primary_key=True)
    node_id: UUID
    secret_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class NodeRecordKeyRow(SQLModel, table=True):
    __tablename__ = "node_record_keys"
    __table_args__ = {"schema": "fleet"}

    node_id: UUID = Field(primary_key=True)
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime


class GpuRow(SQLModel, table=True):
    __tablename__ = "gpu_resources"
    __table_args__ = {"schema": "fleet"}

    id: UUID = Field(primary_key=True)
    node_id: UUID = Field(foreign_key="fleet.nodes.id")
    uuid: str
    device_index: int
    organization_id: UUID | None = None
    name: str
    gpu_type: str
    provider: str
    provider_id: str | None = None
    status: str = "available"  # inventory/health only: allocation is the scheduler's
    memory_total: int = Field(sa_type=BigInteger)  # MB
    capabilities: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    cost_per_hour: Decimal = Field(sa_column=Column(Numeric(10, 4), nullable=False))
    is_spot: bool = False
    spot_request_id: str | None = None
    termination_time: datetime | None = None
    metadata_: dict[str, Any] | None = Field(default=None, sa_column=Column("metadata", JSONB))
    revision: int = Field(default=0, sa_type=BigInteger)
    reported: bool = True
    last_active: datetime
    created_at: datetime
    updated_at: datetime
