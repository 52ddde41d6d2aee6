"""``python -m services.identity``: settings -> schema check -> gRPC (health SERVING) -> run until stopped."""

from __future__ import annotations

import asyncio
from typing import cast

from gpufleet.v1 import identity_pb2, identity_pb2_grpc

from shared.db import Database
from shared.grpc import serve
from shared.runtime import load_settings, run, supervise

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import IdentitySettings
from .entrypoints.grpc_server import IdentityServicer

SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name


async def main(settings: IdentitySettings, stop: asyncio.Event) -> None:
    db = Database(settings.identity_database_url, "identity")
    server = health = None
    try:
        await db.check_schema("identity", SCHEMA_VERSION)
        app = bootstrap(settings, db)
        server, health = await serve(
            settings.identity_grpc_listen,
            [(identity_pb2_grpc.add_IdentityServiceServicer_to_server, IdentityServicer(app))],
            [SERVICE_NAME],
        )
        await supervise(stop)
    finally:
        if health is not None and server is not None:
            await health.enter_graceful_shutdown()
            await server.stop(grace=5)
        await db.dispose()


if __name__ == "__main__":
    cfg = cast(IdentitySettings, load_settings(IdentitySettings))
    run("identity", cfg, lambda stop: main(cfg, stop))
