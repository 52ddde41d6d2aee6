"""Composition root: wires the database-backed unit of work, the HTTP sender, the signer, the metrics
and the settings into the handlers, the delivery worker, the gRPC servicer and the job consumer.
Tests build the same :class:`NotificationApp` over their own database and settings, or pass fakes.

``__main__`` hands the parts to the runtime::

    app = bootstrap(settings, db=db, auth=rt.authenticator())
    rt.consumers(app.register_consumers, topics=(topics.JOBS, topics.COSTS))
    rt.grpc(settings.notification_grpc_listen, app.grpc_services)
    rt.task("delivery-worker", app.worker.run)
    rt.task("event-listener", app.listener.run)  # LISTEN/NOTIFY wake-ups of the event streams
    rt.periodic("event-log-retention", app.prune_event_log, every=settings.notification_event_log_prune_seconds)
    rt.on_close(app.close)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from gpufleet.v1 import notification_pb2_grpc

from shared.db import Database
from shared.grpc import Authenticator

from .adapters.event_listener import PgEventListener
from .adapters.http_sender import TIMEOUT_SECONDS, HttpSender
from .adapters.metrics import PrometheusDeliveryMetrics
from .adapters.repository import sql_unit_of_work
from .adapters.signing import StandardWebhooksSigner
from .config import NotificationSettings
from .domain.retry import RetryPolicy
from .entrypoints import consumers
from .entrypoints.grpc_server import SERVICE_NAME, NotificationServicer, StreamSettings
from .service_layer import commands, handlers
from .service_layer.event_stream import EventSignal
from .service_layer.handlers import Dependencies
from .service_layer.unit_of_work import DeliveryMetrics, Sender, UnitOfWorkFactory
from .service_layer.wakeup import Wakeup
from .service_layer.worker import DeliveryWorker

# A claimed delivery is retried after this long if its worker vanished: well past the HTTP timeout.
LEASE = timedelta(seconds=TIMEOUT_SECONDS * 6)

GrpcRegistration = tuple[Callable[[Any, Any], None], Any, str]


@dataclass(frozen=True)
class NotificationApp:
    deps: Dependencies
    worker: DeliveryWorker  # worker.run(stop) is the runtime task "delivery-worker"
    sender: Sender
    grpc_services: list[GrpcRegistration]
    listener: PgEventListener | None  # listener.run(stop) is the runtime task "event-listener"
    retention: commands.PruneEventLog

    def register_consumers(self, broker: KafkaBroker) -> None:
        """The job and cost topics' consumers (topics.JOBS, topics.COSTS)."""
        consumers.register(broker, self.deps)
        consumers.register_costs(broker, self.deps)

    async def prune_event_log(self) -> None:
        """One retention round of the event log (the runtime's periodic "event-log-retention")."""
        await handlers.handle(self.retention, self.deps)

    async def close(self) -> None:
        close = getattr(self.sender, "close", None)
        if close is not None:
            await close()


def bootstrap(
    settings: NotificationSettings,
    *,
    db: Database | None,
    auth: Authenticator,
    uow: UnitOfWorkFactory | None = None,
    sender: Sender | None = None,
    metrics: DeliveryMetrics | None = None,
) -> NotificationApp:
    """``uow``, ``sender`` and ``metrics`` replace the real adapters in tests (``db`` may then be None)."""
    if uow is None:
        if db is None:
            raise ValueError("bootstrap needs a database or a unit-of-work factory")
        uow = sql_unit_of_work(db)
    sender = sender or HttpSender(
        allow_private=settings.notification_allow_private_targets,
        max_connections=settings.notification_delivery_concurrency,
    )
    deps = Dependencies(
        uow=uow,
        wakeup=Wakeup(),
        allow_private_targets=settings.notification_allow_private_targets,
        policy=RetryPolicy(
            base_seconds=settings.notification_retry_base_seconds,
            max_attempts=settings.notification_max_attempts,
        ),
        metrics=metrics or PrometheusDeliveryMetrics(),
        events=EventSignal(),
    )
    worker = DeliveryWorker(
        deps,
        sender,
        StandardWebhooksSigner(),
        concurrency=settings.notification_delivery_concurrency,
        lease=LEASE,
    )
    services: list[GrpcRegistration] = [
        (
            notification_pb2_grpc.add_NotificationServiceServicer_to_server,
            NotificationServicer(
                deps,
                auth,
                StreamSettings(
                    heartbeat_seconds=settings.notification_stream_heartbeat_seconds,
                    reauth_seconds=settings.notification_stream_reauth_seconds,
                ),
            ),
            SERVICE_NAME,
        )
    ]
    return NotificationApp(
        deps=deps,
        worker=worker,
        sender=sender,
        grpc_services=services,
        listener=PgEventListener(db, deps.events) if db is not None else None,
        retention=commands.PruneEventLog(
            max_age=timedelta(hours=settings.notification_event_log_retention_hours),
            keep=settings.notification_event_log_max_events,
        ),
    )
