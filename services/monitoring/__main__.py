"""``python -m services.monitoring``: settings -> schema check -> metrics consumer -> retention -> gRPC.

Monitoring publishes nothing yet (alerts come later), so it runs no outbox relay: the start-up order's
relay step is simply absent until it has an event to announce."""

from __future__ import annotations

import asyncio
from typing import cast

from gpufleet.v1 import monitoring_pb2_grpc

from shared.contracts import topics
from shared.db import Database
from shared.grpc import Authenticator, serve
from shared.kafka import ensure_topics, make_broker
from shared.runtime import load_settings, run, supervise

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import MonitoringSettings
from .entrypoints.grpc_server import SERVICE_NAMES


async def main(settings: MonitoringSettings, stop: asyncio.Event) -> None:
    db = Database(settings.monitoring_database_url, "monitoring")
    auth = Authenticator(settings.identity_grpc_target, ttl=settings.auth_cache_seconds)
    broker = make_broker(settings, "monitoring")
    tasks: list[asyncio.Task] = []
    server = health = None
    try:
        await db.check_schema("monitoring", SCHEMA_VERSION)
        app = bootstrap(settings, db, auth)
        # The consumer group must find the topic it subscribes to even if no agent has published yet.
        await ensure_topics(settings, (topics.METRICS,))
        app.register_consumers(broker)
        await broker.start()
        tasks.append(asyncio.create_task(app.retention_forever(stop), name="retention"))
        server, health = await serve(
            settings.monitoring_grpc_listen,
            [(monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server, app.servicer)],
            SERVICE_NAMES,
        )
        await supervise(stop, *tasks)
    finally:
        stop.set()  # lets the retention loop finish its round if start-up failed half way
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
    cfg = cast(MonitoringSettings, load_settings(MonitoringSettings))
    run("monitoring", cfg, lambda stop: main(cfg, stop))
