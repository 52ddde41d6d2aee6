"""The one check of a URL a tenant gives us (a job's ``webhook_url``, an organization webhook).

Shape only: an absolute http(s) URL with a host, a valid port, no credentials, no whitespace or NUL,
at most ``MAX_URL`` characters. Where it may point (no private addresses) is notification's rule, on
top of this one (``services/notification/domain/targets.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.contracts.limits import MAX_URL
from shared.errors import InvalidArgument


@dataclass(frozen=True)
class HttpUrl:
    scheme: str
    host: str  # without IPv6 brackets
    port: int


def check_http_url(url: str, field: str = "url") -> HttpUrl:
    """Parse ``url`` or raise :class:`InvalidArgument` naming ``field`` and what is wrong."""
    if len(url) > MAX_URL:
        raise InvalidArgument(f"{field} is longer than {MAX_URL} characters", field=field)
    if any(c.isspace() for c in url) or "\x00" in url:
        raise InvalidArgument(f"{field} must not contain whitespace or NUL", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not a valid URL: {exc}", field=field) from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(f"{field} must be an absolute http:// or https:// URL", field=field)
    if not parts.hostname:
        raise InvalidArgument(f"{field} has no host", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument(f"{field} must not carry credentials", field=field)
    return HttpUrl(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))
