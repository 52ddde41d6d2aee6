"""``python -m services.gateway``: serve the REST API with uvicorn until SIGINT/SIGTERM, then drain."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from services.gateway.config import GatewaySettings
from services.gateway.entrypoints.app import create_app
from shared.runtime import load_settings, run


class _Server(uvicorn.Server):
    """Signals belong to ``shared.runtime.run`` (it sets ``stop``); uvicorn must not take them over."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: GatewaySettings, stop: asyncio.Event) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    # Graceful: stop accepting, finish in-flight requests, then run the lifespan shutdown (channels).
    server.should_exit = True
    stopping.cancel()
    await serving
    if not server.started:
        raise SystemExit(f"gateway could not start on {settings.gateway_host}:{settings.gateway_port}")


def main() -> None:
    settings = load_settings(GatewaySettings)
    assert isinstance(settings, GatewaySettings)
    run("gateway", settings, lambda stop: serve(settings, stop))


if __name__ == "__main__":
    main()
