"""The operations listener of a process: ``/metrics`` (Prometheus text), ``/livez`` and ``/readyz``.

Separate from the service's own ports, so scraping and probing never compete with tenants' requests and
the gateway's public API never exposes internals. It is a small ASGI app served by uvicorn (already the
gateway's server) on the process's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from shared.readiness import Readiness

log = logging.getLogger("gpufleet.ops")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def ops_app(readiness: Readiness) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if path == "/metrics":
            status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        elif path == "/livez":
            status, ctype, body = 200, "application/json", b'{"status":"alive"}'
        elif path == "/readyz":
            report = readiness.report()
            status = 200 if readiness.serving else 503
            ctype, body = "application/json", json.dumps(report).encode()
        else:
            status, ctype, body = 404, "text/plain", b"not found: try /metrics, /livez or /readyz\n"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype.encode()), (b"cache-control", b"no-store")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


class _Server(uvicorn.Server):
    """Signals belong to the runtime; uvicorn must not take them over."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OpsServer:
    def __init__(self, listen: str, readiness: Readiness) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        config = uvicorn.Config(
            ops_app(readiness),
            host=self.host,
            port=self.port,
            lifespan="off",
            log_config=None,
            access_log=False,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="ops-listener")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise SystemExit(f"ops listener could not start on {self.host}:{self.port}")
            await asyncio.sleep(0.01)
        servers = getattr(self._server, "servers", [])
        if self.port == 0 and servers:
            self.port = servers[0].sockets[0].getsockname()[1]
        log.info("ops listening", extra={"url": self.url})

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)


async def serve_asgi(app: Any, host: str, port: int, stop: asyncio.Event, *, drain_seconds: float) -> None:
    """Serve an ASGI app with uvicorn until ``stop``; then stop accepting, finish in-flight requests
    (up to ``drain_seconds``) and run the app's lifespan shutdown. A runtime task (the gateway's)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=int(drain_seconds),
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving
    if not server.started:
        raise RuntimeError(f"could not listen on {host}:{port}")
