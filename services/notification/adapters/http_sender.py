"""Sends deliveries over HTTP with httpx, refusing targets that resolve to non-public addresses.

The address check runs where the socket is opened (a guarded httpcore network backend), on the very
addresses connected to: a host name that resolves to a public address when checked and to a private
one when connected (DNS rebinding) cannot slip through. Redirects are not followed (a 3xx is a
failed attempt), and the response body is never read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpcore
import httpx

from shared.errors import InvalidArgument
from shared.urls import check_http_url

from ..domain.model import SendResult
from ..domain.targets import IpAddress, check_addresses

TIMEOUT_SECONDS = 10.0
USER_AGENT = "gpufleet-webhooks/1"


class TargetRefused(httpcore.ConnectError):
    """The target resolved to an address this deployment must not call."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allow_private = allow_private
        self._inner = inner or httpcore.AnyIOBackend()

    async def _resolve(self, host: str, port: int) -> list[IpAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        # Strip an IPv6 zone ("fe80::1%eth0"): the address itself is what is judged.
        return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        refusal = check_addresses(addresses, allow_private=self.allow_private)
        if refusal:
            raise TargetRefused(refusal)
        last: Exception | None = None
        for address in addresses:  # connect to the checked address itself, trying each in turn
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, allow_private: bool, max_connections: int) -> None:
        super().__init__(trust_env=False)  # never route tenants' targets through an environment proxy
        # httpx has no public switch for the network backend: swap in a pool that uses ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allow_private=allow_private),
        )


class HttpSender:
    def __init__(
        self, *, allow_private: bool, timeout: float = TIMEOUT_SECONDS, max_connections: int = 100
    ) -> None:
        self.client = httpx.AsyncClient(
            transport=_GuardedTransport(allow_private=allow_private, max_connections=max_connections),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": USER_AGENT},
        )
        self.timeout = timeout

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> SendResult:
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            check_http_url(url)  # the shape; where it points is judged on the addresses connected to
        except InvalidArgument as exc:
            return SendResult(None, f"invalid target URL: {exc.message}", 0, permanent=True)
        try:
            async with self.client.stream("POST", url, content=body, headers=dict(headers)) as response:
                status = response.status_code
        except httpx.TimeoutException:
            return SendResult(None, f"timed out after {self.timeout:g} s", elapsed())
        except httpx.HTTPError as exc:
            if isinstance(exc.__cause__, TargetRefused):
                return SendResult(None, str(exc.__cause__), elapsed(), permanent=True)
            return SendResult(
                None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, elapsed()
            )
        ok = 200 <= status < 300
        return SendResult(status, None if ok else f"HTTP {status}", elapsed())

    async def close(self) -> None:
        await self.client.aclose()
