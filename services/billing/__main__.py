"""``python -m services.billing``: settings -> schema check -> outbox relay -> job consumer -> gRPC."""

from __future__ import annotations

import asyncio
from typing import cast

from gpufleet.v1 import billing_pb2, billing_pb2_grpc

from shared.contracts import topics
from shared.db import Database
from shared.grpc import Authenticator, serve
from shared.kafka import ensure_topics, make_broker
from shared.outbox import OutboxRelay
from shared.runtime import load_settings, run, supervise

from .adapters.orm import SCHEMA_VERSION
from .config import BillingSettings
from .entrypoints.consumers import register
from .entrypoints.grpc_server import BillingServicer


async def main(settings: BillingSettings, stop: asyncio.Event) -> None:
    db = Database(settings.billing_database_url, "billing")
    auth = Authenticator(settings.identity_grpc_target, ttl=settings.auth_cache_seconds)
    broker = make_broker(settings, "billing")
    tasks: list[asyncio.Task] = []
    server = health = None
    try:
        await db.check_schema("billing", SCHEMA_VERSION)
        tasks.append(
            asyncio.create_task(OutboxRelay(db, settings, publishes=(topics.COSTS,)).run(stop), name="relay")
        )
        await ensure_topics(settings, (topics.JOBS,))
        register(broker, db)
        await broker.start()
        server, health = await serve(
            settings.billing_grpc_listen,
            [(billing_pb2_grpc.add_BillingServiceServicer_to_server, BillingServicer(db, auth))],
            [billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name],
        )
        await supervise(stop, *tasks)
    finally:
        stop.set()
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
    cfg = cast(BillingSettings, load_settings(BillingSettings))
    run("billing", cfg, lambda stop: main(cfg, stop))
