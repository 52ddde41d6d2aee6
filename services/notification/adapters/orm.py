"""SQLModel tables of the ``notification`` schema (migrations/notification/*.sql is the source of truth)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, LargeBinary, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 6  # the highest file in migrations/notification


class WebhookRow(SQLModel, table=True):
    __tablename__ = "webhooks"
    __table_args__ = {"schema": "notification"}

    id: UUID = Field(primary_key=True)
    organization_id: UUID
    url: str
    events: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    type: str = "job_status"
    status: str = "active"
    error_rate: float = 0.0
    signing_secret: str
    is_active: bool = True
    last_used: datetime | None = None
    description: str | None = None
    consecutive_failures: int = 0
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    previous_signing_secret: str | None = None  # signs too until previous_secret_expires_at
    previous_secret_expires_at: datetime | None = None
    created_at: datetime | None = Field(default=None, nullable=False)  # None: the DEFAULT now()
    updated_at: datetime | None = Field(default=None, nullable=False)


class JobWebhookSecretRow(SQLModel, table=True):
    __tablename__ = "job_webhook_secrets"
    __table_args__ = {"schema": "notification"}

    organization_id: UUID = Field(primary_key=True)
    secret: str
    previous_secret: str | None = None  # signs too until previous_expires_at
    previous_expires_at: datetime | None = None
    created_at: datetime | None = Field(default=None, nullable=False)  # None: the DEFAULT now()


class DeliveryRow(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = {"schema": "notification"}

    id: UUID = Field(primary_key=True)
    organization_id: UUID
    webhook_id: UUID | None = Field(default=None, foreign_key="notification.webhooks.id")
    url: str
    event_id: UUID
    event_type: str
    job_id: UUID | None = None
    project_id: UUID | None = None  # the job's project (None: none)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = Field(default=None, nullable=False)  # None: the DEFAULT now()
    delivered_at: datetime | None = None
    schedule_start: int = 0  # attempts made before the latest redelivery


class AttemptRow(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = {"schema": "notification"}

    delivery_id: UUID = Field(primary_key=True, foreign_key="notification.webhook_deliveries.id")
    attempt: int = Field(primary_key=True)
    organization_id: UUID
    at: datetime
    response_status: int | None = None
    error: str | None = None
    duration_ms: int = 0


class EventLogHeadRow(SQLModel, table=True):
    """The last number an organization's event log handed out (its row lock orders the appends)."""

    __tablename__ = "event_log_heads"
    __table_args__ = {"schema": "notification"}

    organization_id: UUID = Field(primary_key=True)
    last_seq: int = Field(sa_type=BigInteger)


class EventLogRow(SQLModel, table=True):
    __tablename__ = "event_log"
    __table_args__ = {"schema": "notification"}

    organization_id: UUID = Field(primary_key=True)
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    event_id: UUID
    type: str
    job_id: UUID | None = None
    project_id: UUID | None = None  # the job's project (None: none)
    occurred_at: datetime
    stored_at: datetime | None = Field(default=None, nullable=False)  # None: the DEFAULT now()
    cloudevent: str
