"""Conversions used at every wire edge (proto strings <-> Python values). No business rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from shared.errors import InvalidArgument


def ts(value: datetime | None) -> str:
    """RFC 3339 in UTC with a ``Z``; empty string for None (proto3 has no null strings)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_ts(value: str, field: str = "timestamp") -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not an RFC 3339 timestamp", field=field) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def dec(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def uuid_arg(value: str, field: str = "id") -> UUID:
    """Parse an id from a request; a malformed id is reported as not found by callers that prefer to
    reveal nothing, or as invalid here."""
    try:
        return UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidArgument(f"{field} is not a valid UUID", field=field) from exc


def opt(value: str) -> str | None:
    return value or None
