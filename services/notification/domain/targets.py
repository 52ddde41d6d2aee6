"""Where a webhook may point, pure (the resolver that feeds :func:`check_addresses` is I/O).

The URL's shape is the one shared rule (:func:`shared.urls.check_http_url`); on top of it, because a
webhook makes *our* network send requests where a tenant says, targets that resolve to loopback,
private, link-local (cloud metadata at 169.254.169.254), shared, multicast or otherwise non-global
addresses are refused unless the deployment allows private targets (dev stack, tests).
"""

from __future__ import annotations

import ipaddress

from shared.errors import InvalidArgument
from shared.urls import HttpUrl, check_http_url

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def _names_a_private_host(target: HttpUrl) -> bool:
    host = target.host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        literal: IpAddress = ipaddress.ip_address(target.host)
    except ValueError:
        return False  # a host name: judged on the addresses it resolves to, at every delivery
    return forbidden_address(literal)


def webhook_url(url: str, *, allow_private: bool, field: str = "url") -> str:
    """A URL we may send to, stripped; raises :class:`InvalidArgument` naming ``field``.

    Literal non-public addresses are refused here already; host names are checked again where the
    socket is opened at every delivery (DNS answers change)."""
    url = url.strip()
    if not url:
        raise InvalidArgument(f"{field} is required", field=field)
    target = check_http_url(url, field)
    if not allow_private and _names_a_private_host(target):
        raise InvalidArgument(
            f"{field} must not point at a private, loopback or link-local address", field=field
        )
    return url
