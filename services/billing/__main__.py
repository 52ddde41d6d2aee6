"""``python -m services.billing``: settings -> schema check -> outbox relay -> job consumer -> gRPC."""

from __future__ import annotations

import asyncio
from typing import cast

from gpufleet.v1 import billing_pb2_grpc

from shared.contracts import topics
from shared.db import Database
from shared.grpc import Authenticator, serve
from shared.kafka import ensure_topics, make_broker
from shared.runtime import load_settings, run, supervise

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import BillingSettings
from .entrypoints.grpc_server import SERVICE_NAMES


async def main(settings: BillingSettings, stop: asyncio.Event) -> None:
    db = Database(settings.billing_database_url, "billing")
    auth = Authenticator(settings.identity_grpc_target, ttl=settings.auth_cache_seconds)
    broker = make_broker(settings, "billing")
    tasks: list[asyncio.Task] = []
    server = health = None
    try:
        await db.check_schema("billing", SCHEMA_VERSION)
        app = bootstrap(settings, db, auth)
        tasks.append(asyncio.create_task(app.relay.run(stop), name="outbox-relay"))
        # The consumer group must find the topic it subscribes to even if the scheduler has not run yet.
        await ensure_topics(settings, (topics.JOBS,))
        app.register_consumers(broker)
        await broker.start()
        server, health = await serve(
            settings.billing_grpc_listen,
            [(billing_pb2_grpc.add_BillingServiceServicer_to_server, app.servicer)],
            SERVICE_NAMES,
        )
        await supervise(stop, *tasks)
    finally:
        stop.set()  # lets the relay finish its round if start-up failed half way
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
