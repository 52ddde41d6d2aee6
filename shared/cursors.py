"""The one keyset cursor codec of every list API: the (timestamp, id) of the last row of a page.

Keyset rather than offset, so rows written while a client pages never shift or repeat entries. The
cursor is opaque to clients: unpadded URL-safe base64 of ``[iso-timestamp, uuid]`` (JSON), matching
``shared.contracts.limits.CURSOR_PATTERN``. A cursor that does not decode is the caller's error.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from shared.errors import InvalidArgument


def encode_cursor(at: datetime, row_id: UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The position a cursor names; :class:`InvalidArgument` (field ``cursor``) when it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, row_id = json.loads(raw)
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at, UUID(row_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArgument("cursor is not one this API returned", field="cursor") from exc
