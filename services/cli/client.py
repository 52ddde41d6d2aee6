"""The REST client: one httpx client per command, failures turned into :class:`exits.CliError`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

import httpx

from services.cli import exits
from shared.contracts.limits import MAX_PAGE

# Reads and writes are short; streams (events, followed output) have no read timeout of their own:
# the server's heartbeats keep them alive and a dead peer is noticed by the connection.
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
STREAM_TIMEOUT = httpx.Timeout(None, connect=10.0)


def _version() -> str:
    try:
        return metadata.version("gpufleet")
    except metadata.PackageNotFoundError:
        return "0"


def problem_of(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def transport_error(exc: httpx.TransportError, url: str) -> exits.CliError:
    if isinstance(exc, httpx.ConnectError):
        return exits.CliError(f"cannot reach the gateway at {url}: {exc}", exits.UNAVAILABLE)
    if isinstance(exc, httpx.TimeoutException):
        return exits.CliError(f"the gateway at {url} did not answer in time", exits.TEMPORARY)
    return exits.CliError(f"connection to {url} failed: {exc!r}", exits.TEMPORARY)


class Api:
    """``/v1`` of one gateway with one key. ``transport`` is for tests (httpx.MockTransport)."""

    def __init__(self, url: str, api_key: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self._http = httpx.AsyncClient(
            base_url=url + "/v1",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"gpufleet-cli/{_version()}"},
            timeout=TIMEOUT,
            transport=transport,
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(method, path, params=params, json=json_body, headers=headers)
        except httpx.TransportError as exc:
            raise transport_error(exc, self.url) from exc
        self.check(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise exits.CliError(
                f"{method} {path}: the gateway answered {response.status_code} with a body that is not JSON",
                exits.SOFTWARE,
            ) from exc

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return await self.request("POST", path, json_body=body, headers=headers)

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)

    async def pages(self, path: str, items: str, *, max_items: int | None = None, **params: Any) -> list[Any]:
        """Every item of a cursor-paged list (``next_cursor``), or the first ``max_items`` of them."""
        out: list[Any] = []
        cursor: str | None = None
        size = min(MAX_PAGE, max_items) if max_items else MAX_PAGE
        while True:
            page = await self.get(path, cursor=cursor, limit=size, **params)
            out.extend(page.get(items) or [])
            cursor = page.get("next_cursor")
            if not cursor or (max_items is not None and len(out) >= max_items):
                return out[:max_items] if max_items is not None else out

    @asynccontextmanager
    async def stream(
        self, path: str, *, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """A streamed GET whose status has been checked (a problem body is read and raised).

        Only opening it turns transport failures into CliError: a read that fails later reaches the
        caller as the httpx error, so that a stream reader can tell a dropped connection and resume."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        request = self._http.build_request(
            "GET", path, params=params, headers=headers, timeout=STREAM_TIMEOUT
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise transport_error(exc, self.url) from exc
        try:
            if response.is_error:
                await response.aread()
                self.check(response)
            yield response
        finally:
            await response.aclose()

    @staticmethod
    def check(response: httpx.Response) -> None:
        if response.is_error:
            raise exits.ApiError(
                response.status_code, problem_of(response), response.reason_phrase or "HTTP error"
            )
