"""``python -m services.notification``: the job event consumer, the delivery worker and the webhook API.

It publishes nothing, so there is no outbox relay: settings -> schema check -> consumer -> delivery
worker -> gRPC (health SERVING) -> supervise -> clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib

from gpufleet.v1 import notification_pb2_grpc

from shared.contracts import topics
from shared.db import Database
from shared.grpc import Authenticator, serve
from shared.kafka import ensure_topics, make_broker
from shared.runtime import load_settings, run, supervise

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import NotificationSettings
from .entrypoints import consumers
from .entrypoints.grpc_server import SERVICE_NAMES, NotificationServicer


async def main(settings: NotificationSettings, stop: asyncio.Event) -> None:
    async with contextlib.AsyncExitStack() as cleanup:  # undone in reverse, also when start-up fails
        db = Database(settings.notification_database_url, "notification")
        cleanup.push_async_callback(db.dispose)
        await db.check_schema("notification", SCHEMA_VERSION)
        app = bootstrap(settings, db=db)
        cleanup.push_async_callback(app.close)
        auth = Authenticator(settings.identity_grpc_target, ttl=settings.auth_cache_seconds)
        cleanup.push_async_callback(auth.close)

        # The scheduler may not have published yet: make sure the topic exists before subscribing.
        await ensure_topics(settings, (topics.JOBS,))
        broker = make_broker(settings, "notification")
        consumers.register(broker, app.deps)
        await broker.start()
        cleanup.push_async_callback(broker.stop)

        worker_stop = asyncio.Event()
        tasks = [asyncio.create_task(app.worker.run(worker_stop), name="delivery-worker")]
        cleanup.push_async_callback(_stop_worker, worker_stop, tasks)

        server, health = await serve(
            settings.notification_grpc_listen,
            [
                (
                    notification_pb2_grpc.add_NotificationServiceServicer_to_server,
                    NotificationServicer(app.deps, auth),
                )
            ],
            SERVICE_NAMES,
        )
        cleanup.push_async_callback(server.stop, 5)
        cleanup.push_async_callback(health.enter_graceful_shutdown)
        await supervise(stop, *tasks)


async def _stop_worker(worker_stop: asyncio.Event, tasks: list[asyncio.Task]) -> None:
    worker_stop.set()  # lets attempts under way finish and be recorded
    await asyncio.gather(*tasks, return_exceptions=True)


def entrypoint() -> None:
    settings = load_settings(NotificationSettings)
    assert isinstance(settings, NotificationSettings)
    run("notification", settings, lambda stop: main(settings, stop))


if __name__ == "__main__":
    entrypoint()
