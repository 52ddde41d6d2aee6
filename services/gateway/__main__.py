"""``python -m services.gateway``: serve the REST API with uvicorn until SIGINT/SIGTERM, then drain."""

from __future__ import annotations

import asyncio

from services.gateway.config import GatewaySettings
from services.gateway.entrypoints.app import create_app
from shared.ops import serve_asgi
from shared.runtime import Runtime, load_settings


def build(settings: GatewaySettings) -> Runtime:
    async def serve_http(stop: asyncio.Event) -> None:
        app = create_app(settings)
        host, port = settings.gateway_host, settings.gateway_port
        await serve_asgi(app, host, port, stop, drain_seconds=settings.drain_seconds)

    rt = Runtime("gateway", settings)
    rt.task("http", serve_http)
    return rt


def main() -> None:
    build(load_settings(GatewaySettings)).run()


if __name__ == "__main__":
    main()
