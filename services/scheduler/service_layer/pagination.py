"""Opaque keyset cursors for ListJobs: the (created_at, id) of the last job of the previous page.

Keyset rather than offset so that jobs submitted while a client pages never shift or repeat entries."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from uuid import UUID

from shared.errors import InvalidArgument


def encode_cursor(created_at: datetime, job_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(job_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, job_id = json.loads(raw)
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, UUID(job_id)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidArgument("cursor is not one this service returned", field="cursor") from exc
