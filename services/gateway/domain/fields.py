"""How a validation error's location becomes the ``field`` a caller sees in a problem's ``errors``."""

from __future__ import annotations

from collections.abc import Sequence

_SOURCES = {"body", "query", "path", "header", "cookie"}


def field_name(loc: Sequence[str | int]) -> str | None:
    """``("body", "gpu_count")`` -> ``"gpu_count"``; ``("body", "events", 0)`` -> ``"events[0]"``.

    ``None`` when the error concerns the request body as a whole (missing, or not an object).
    """
    parts = list(loc)
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def field_message(error_type: str, message: str) -> str:
    """Pydantic's messages are fine for people; a few get clearer words at the API edge."""
    if error_type == "extra_forbidden":
        return "unknown field"
    if error_type == "missing":
        return "field required"
    return message
