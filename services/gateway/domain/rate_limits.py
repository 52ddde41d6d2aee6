"""The HTTP headers of a 429 (docs/limits.md): ``Retry-After`` (RFC 9110, whole seconds) and the IETF
``RateLimit-Policy`` / ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers: lists of items
named by the policy, with ``q`` quota, ``w`` window in seconds, ``r`` remaining and ``t`` seconds
until more is available).

The numbers come from the scheduler's refusal (its RESOURCE_EXHAUSTED trailing metadata, keys in
``shared.errors``). A token bucket of ``rate``/s and ``burst`` is stated as ``q=burst;w=burst/rate``
(rounded up): at most ``q`` at once, ``q`` more every ``w`` seconds. The queued-jobs cap has no
window: ``q`` is the cap and ``r`` is 0. Plain data in, plain data out; anything malformed is left
out rather than echoed into a header.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from shared.errors import (
    LIMIT_KEY,
    LIMIT_QUOTA_KEY,
    LIMIT_REMAINING_KEY,
    LIMIT_WINDOW_KEY,
    RETRY_AFTER_MS_KEY,
)

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def trailer_map(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """gRPC trailing metadata as a dict of text values (the last of a repeated key wins)."""
    out: dict[str, str] = {}
    for key, value in metadata or ():
        out[key] = value.decode(errors="replace") if isinstance(value, bytes) else value
    return out


def _count(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit() or len(raw) > 12:
        return None
    return int(raw)


def retry_after_seconds(trailers: Mapping[str, str]) -> int | None:
    """Whole seconds to wait (rounded up, at least 1), from ``retry-after-ms``."""
    ms = _count(trailers.get(RETRY_AFTER_MS_KEY))
    return None if ms is None else max(1, math.ceil(ms / 1000))


def headers(trailers: Mapping[str, str]) -> dict[str, str]:
    """``Retry-After``, and ``RateLimit-Policy``/``RateLimit`` where the refusal named its limit."""
    out: dict[str, str] = {}
    retry = retry_after_seconds(trailers)
    if retry is not None:
        out["Retry-After"] = str(retry)
    name = trailers.get(LIMIT_KEY, "")
    quota = _count(trailers.get(LIMIT_QUOTA_KEY))
    remaining = _count(trailers.get(LIMIT_REMAINING_KEY))
    if not _NAME.match(name) or quota is None or remaining is None:
        return out
    window = _count(trailers.get(LIMIT_WINDOW_KEY))
    policy = f'"{name}";q={quota}'
    current = f'"{name}";r={remaining}'
    if window is not None:
        policy += f";w={window}"
        if retry is not None:
            current += f";t={retry}"
    out["RateLimit-Policy"] = policy
    out["RateLimit"] = current
    return out
