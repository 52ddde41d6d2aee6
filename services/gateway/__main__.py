"""``python -m services.gateway``: serve the REST API with uvicorn until SIGINT/SIGTERM, then drain."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from services.gateway.config import GatewaySettings
from services.gateway.entrypoints.app import create_app
from shared.runtime import Fatal, Runtime, load_settings


class _Server(uvicorn.Server):
    """Signals belong to the runtime (it sets ``stop``); uvicorn must not take them over."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build(settings: GatewaySettings) -> Runtime:
    async def serve_http(stop: asyncio.Event) -> None:
        config = uvicorn.Config(
            create_app(settings),
            host=settings.gateway_host,
            port=settings.gateway_port,
            lifespan="on",
            log_config=None,
            access_log=False,
            proxy_headers=True,
            timeout_graceful_shutdown=int(settings.drain_seconds),
        )
        server = _Server(config)
        serving = asyncio.create_task(server.serve())
        await asyncio.wait({serving, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True  # stop accepting, finish in-flight requests, then close the channels
        await serving
        if not server.started:
            raise Fatal(f"gateway could not start on {settings.gateway_host}:{settings.gateway_port}")

    rt = Runtime("gateway", settings)
    rt.task("http", serve_http)
    return rt


def main() -> None:
    build(load_settings(GatewaySettings)).run()


if __name__ == "__main__":
    main()
