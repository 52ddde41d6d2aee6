"""``python -m services.fleet``: settings -> schema check -> outbox relay -> job consumer -> gRPC -> sweeper."""

from __future__ import annotations

import asyncio
from typing import cast

from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc

from shared.contracts import topics
from shared.db import Database
from shared.grpc import Authenticator, serve
from shared.kafka import make_broker
from shared.outbox import OutboxRelay
from shared.runtime import load_settings, run, supervise

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import FleetSettings
from .entrypoints.consumers import register_consumers
from .entrypoints.grpc_server import FleetServicer, NodeRegistryServicer


async def main(settings: FleetSettings, stop: asyncio.Event) -> None:
    db = Database(settings.fleet_database_url, "fleet")
    auth = Authenticator(settings.identity_grpc_target, ttl=settings.auth_cache_seconds)
    broker = make_broker(settings, "fleet")
    tasks: list[asyncio.Task] = []
    server = health = None
    try:
        await db.check_schema("fleet", SCHEMA_VERSION)
        app = bootstrap(settings, db)
        tasks.append(
            asyncio.create_task(
                OutboxRelay(db, settings, publishes=(topics.FLEET,)).run(stop), name="outbox-relay"
            )
        )
        register_consumers(broker, app)
        await broker.start()
        server, health = await serve(
            settings.fleet_grpc_listen,
            [
                (fleet_pb2_grpc.add_FleetServiceServicer_to_server, FleetServicer(app, auth)),
                (
                    fleet_pb2_grpc.add_NodeRegistryServiceServicer_to_server,
                    NodeRegistryServicer(app, settings.agent_token.get_secret_value()),
                ),
            ],
            [
                fleet_pb2.DESCRIPTOR.services_by_name[n].full_name
                for n in ("FleetService", "NodeRegistryService")
            ],
        )
        tasks.append(asyncio.create_task(app.sweep_forever(stop), name="offline-sweeper"))
        await supervise(stop, *tasks)
    finally:
        stop.set()  # lets the relay and the sweeper finish their round if start-up failed half way
        if health is not None and server is not None:
            await health.enter_graceful_shutdown()
            await server.stop(grace=5)
        await broker.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await auth.close()
        await db.dispose()


if __name__ == "__main__":
    cfg = cast(FleetSettings, load_settings(FleetSettings))
    run("fleet", cfg, lambda stop: main(cfg, stop))
