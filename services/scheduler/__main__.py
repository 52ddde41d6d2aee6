"""``python -m services.scheduler``: the job API, the agents' API, the fleet consumer and the
placement loop in one process (replicas are hot standbys for the loop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gpufleet.v1 import scheduler_pb2_grpc

from shared.contracts import topics
from shared.db import Database
from shared.grpc import Authenticator, serve
from shared.kafka import ensure_topics, make_broker
from shared.outbox import OutboxRelay
from shared.runtime import load_settings, run, supervise

from .adapters.orm import SCHEMA_VERSION
from .bootstrap import bootstrap
from .config import SchedulerSettings
from .entrypoints import consumers
from .entrypoints.grpc_server import SERVICE_NAMES, JobServicer, NodeAgentServicer
from .service_layer.scheduling import run_scheduling_loop

log = logging.getLogger("gpufleet.scheduler")


async def main(settings: SchedulerSettings, stop: asyncio.Event) -> None:
    async with contextlib.AsyncExitStack() as cleanup:  # undone in reverse, also when start-up fails
        db = Database(settings.scheduler_database_url, "scheduler")
        cleanup.push_async_callback(db.dispose)
        await db.check_schema("scheduler", SCHEMA_VERSION)
        deps = bootstrap(settings, db=db)
        close_catalog = getattr(deps.catalog, "close", None)
        if close_catalog is not None:
            cleanup.push_async_callback(close_catalog)
        auth = Authenticator(settings.identity_grpc_target, ttl=settings.auth_cache_seconds)
        cleanup.push_async_callback(auth.close)

        relay = OutboxRelay(db, settings, publishes=(topics.JOBS,))
        tasks = [asyncio.create_task(relay.run(stop), name="outbox-relay")]
        cleanup.push_async_callback(_cancel, tasks)

        await ensure_topics(settings, (topics.FLEET,))
        broker = make_broker(settings, "scheduler")
        consumers.register(broker, deps)
        await broker.start()
        cleanup.push_async_callback(broker.stop)
        tasks.append(
            asyncio.create_task(
                run_scheduling_loop(stop, deps, settings.scheduler_tick_seconds), name="scheduling-loop"
            )
        )

        server, health = await serve(
            settings.scheduler_grpc_listen,
            [
                (scheduler_pb2_grpc.add_JobServiceServicer_to_server, JobServicer(deps, auth)),
                (
                    scheduler_pb2_grpc.add_NodeAgentServiceServicer_to_server,
                    NodeAgentServicer(deps, settings.agent_token.get_secret_value()),
                ),
            ],
            SERVICE_NAMES,
        )
        cleanup.push_async_callback(server.stop, 5)
        cleanup.push_async_callback(health.enter_graceful_shutdown)
        await supervise(stop, *tasks)


async def _cancel(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def entrypoint() -> None:
    settings = load_settings(SchedulerSettings)
    assert isinstance(settings, SchedulerSettings)
    run("scheduler", settings, lambda stop: main(settings, stop))


if __name__ == "__main__":
    entrypoint()
