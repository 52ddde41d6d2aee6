"""SQLModel tables of the ``identity`` schema (migrations/identity/*.sql is the source of truth for DDL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Column, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 6  # the highest file in migrations/identity


class OrganizationRow(SQLModel, table=True):
    __tablename__ = "organizations"
    __table_args__ = {"schema": "identity"}

    id: UUID = Field(primary_key=True)
    name: str
    stripe_customer_id: str | None = None
    created_at: datetime
    updated_at: datetime


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = {"schema": "identity"}

    id: UUID = Field(primary_key=True)
    email: str
    name: str | None = None
    avatar: str | None = None
    auth_id: str | None = None
    default_organization_id: UUID | None = None
    created_at: datetime
    updated_at: datetime


class MembershipRow(SQLModel, table=True):
    __tablename__ = "organization_members"
    __table_args__ = {"schema": "identity"}

    id: UUID = Field(primary_key=True)
    user_id: UUID
    organization_id: UUID
    role: str
    created_at: datetime
    updated_at: datetime


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = {"schema": "identity"}

    id: UUID = Field(primary_key=True)
    organization_id: UUID
    user_id: UUID
    name: str
    prefix: str
    key_hash: str
    scopes: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    last_used: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    project_id: UUID | None = None


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = {"schema": "identity"}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    organization_id: UUID | None = None  # None: a fleet-wide operator change
    actor_user_id: UUID | None = None
    actor_api_key_id: UUID | None = None
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    at: datetime
    actor_operator: str | None = None
    # The one audit log of every service (migrations/identity/005, docs/audit.md).
    actor_kind: str = "system"
    actor_node_id: UUID | None = None
    service: str = "identity"
    before: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSONB(none_as_null=True), nullable=True)
    )
    after: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSONB(none_as_null=True), nullable=True)
    )
    request_id: str | None = None
    event_id: UUID | None = None


class InviteRow(SQLModel, table=True):
    __tablename__ = "organization_invites"
    __table_args__ = {"schema": "identity"}

    id: UUID = Field(primary_key=True)
    organization_id: UUID
    kind: str
    email: str | None = None
    role: str
    prefix: str
    token_hash: str
    max_uses: int
    uses: int
    expires_at: datetime
    revoked_at: datetime | None = None
    created_by_user_id: UUID | None = None
    created_at: datetime
    updated_at: datetime


class OperatorRow(SQLModel, table=True):
    __tablename__ = "operators"
    __table_args__ = {"schema": "identity"}

    id: UUID = Field(primary_key=True)
    name: str
    prefix: str
    token_hash: str
    created_by: str
    revoked_by: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class ProjectRow(SQLModel, table=True):
    __tablename__ = "projects"
    __table_args__ = {"schema": "identity"}

    id: UUID = Field(primary_key=True)
    organization_id: UUID
    name: str
    slug: str
    description: str = ""
    created_by: UUID | None = None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None


class ProjectMemberRow(SQLModel, table=True):
    __tablename__ = "project_members"
    __table_args__ = {"schema": "identity"}

    id: UUID = Field(primary_key=True)
    organization_id: UUID
    project_id: UUID
    user_id: UUID
    role: str
    added_by: UUID | None = None
    created_at: datetime
    updated_at: datetime
