"""The one audit log (docs/audit.md): its records and the questions asked of it. Plain Python, no I/O.

A record is one change made by a caller, in identity or in any other service (consumed from
``gpufleet.audit.v1``). Owners and admins read their organization's records; the operator reads every
organization's and the fleet-wide ones (``organization_id`` None).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.contracts import limits
from shared.errors import InvalidArgument, PermissionDenied

from .model import Principal, Role

DEFAULT_PAGE = 50
READERS = (Role.OWNER, Role.ADMIN)  # the member and viewer roles read no audit log


@dataclass(frozen=True)
class Actor:
    kind: str  # user | operator | node | system
    user_id: UUID | None = None
    api_key_id: UUID | None = None
    operator_name: str | None = None
    node_id: UUID | None = None


@dataclass(frozen=True)
class AuditRecord:
    organization_id: UUID | None
    actor: Actor
    service: str
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    at: datetime
    id: int | None = None  # assigned by the store


@dataclass(frozen=True)
class AuditQuery:
    """Filters (None: any) and a page. ``organization_id`` None with ``every_organization``: the
    operator's fleet-wide view; a tenant's query always names its own organization."""

    organization_id: UUID | None
    every_organization: bool = False
    service: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    actor_user_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_PAGE
    before_id: int | None = None  # the cursor: records with a smaller id


def check_reader(caller: Principal) -> None:
    """Owners and admins only (their key also needs the audit:read scope, checked at the entrypoint)."""
    if caller.role not in READERS:
        raise PermissionDenied("only an owner or an admin may read the audit log")


def page_limit(limit: int) -> int:
    value = limit or DEFAULT_PAGE
    if not 1 <= value <= limits.MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {limits.MAX_PAGE}", field="limit")
    return value


def check_filters(query: AuditQuery) -> AuditQuery:
    if query.target_id is not None and query.target_type is None:
        raise InvalidArgument("target_id needs target_type", field="target_id")
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise InvalidArgument("since must be before until", field="since")
    return query


def encode_cursor(record_id: int) -> str:
    return base64.urlsafe_b64encode(f"a{record_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("a"):
            raise ValueError(raw)
        value = int(raw[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArgument("cursor is not one this service issued", field="cursor") from exc
    if value < 1:
        raise InvalidArgument("cursor is not one this service issued", field="cursor")
    return value
