"""Which URLs a webhook may point at, pure (the resolver that feeds :func:`forbidden_address` is I/O).

A webhook makes *our* network send requests where a tenant says, so targets that resolve to
loopback, private, link-local (cloud metadata at 169.254.169.254), shared, multicast or otherwise
non-global addresses are refused unless the deployment allows private targets (dev stack, tests).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import InvalidArgument

MAX_URL_LENGTH = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # without IPv6 brackets
    port: int


class InvalidTarget(ValueError):
    pass


def parse_target(url: str) -> Target:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidTarget(f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTarget(f"malformed URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidTarget("URL scheme must be http or https")
    if not parts.hostname:
        raise InvalidTarget("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidTarget("URL must not carry credentials")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))


def forbidden_address(address: IpAddress) -> bool:
    """True for anything but a global unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (not address.is_global) or address.is_multicast or address.is_unspecified


def check_addresses(addresses: list[IpAddress], *, allow_private: bool) -> str | None:
    """Why a target resolving to ``addresses`` must not be called, or None when it may be."""
    if not addresses:
        return "target host did not resolve to any address"
    if allow_private:
        return None
    bad = [str(a) for a in addresses if forbidden_address(a)]
    if bad:
        return (
            f"refused: target resolves to a non-public address ({', '.join(bad)}); "
            "private, loopback and link-local targets are not allowed"
        )
    return None


def webhook_url(url: str, *, allow_private: bool) -> str:
    """Validate a URL a tenant registers. Literal non-public addresses are refused here already;
    host names are checked again at every delivery (DNS answers change)."""
    url = url.strip()
    if not url:
        raise InvalidArgument("url is required", field="url")
    try:
        target = parse_target(url)
    except InvalidTarget as exc:
        raise InvalidArgument(str(exc), field="url") from exc
    if not allow_private:
        try:
            literal: IpAddress | None = ipaddress.ip_address(target.host)
        except ValueError:
            literal = None
        if (
            target.host.lower() == "localhost"
            or target.host.lower().endswith(".localhost")
            or (literal is not None and forbidden_address(literal))
        ):
            raise InvalidArgument(
                "url must not point at a private, loopback or link-local address", field="url"
            )
    return url
