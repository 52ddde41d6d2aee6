"""Composition root: wires the database-backed unit of work, the HTTP sender and the settings into the
handlers and the delivery worker. Tests build the same :class:`NotificationApp` over their own
database and settings, or pass fakes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.db import Database

from .adapters.http_sender import TIMEOUT_SECONDS, HttpSender
from .adapters.repository import sql_unit_of_work
from .config import NotificationSettings
from .domain.retry import RetryPolicy
from .service_layer.handlers import Dependencies
from .service_layer.unit_of_work import Sender, UnitOfWorkFactory
from .service_layer.wakeup import Wakeup
from .service_layer.worker import DeliveryWorker

# A claimed delivery is retried after this long if its worker vanished: well past the HTTP timeout.
LEASE = timedelta(seconds=TIMEOUT_SECONDS * 6)


@dataclass(frozen=True)
class NotificationApp:
    deps: Dependencies
    worker: DeliveryWorker
    sender: Sender

    async def close(self) -> None:
        close = getattr(self.sender, "close", None)
        if close is not None:
            await close()


def bootstrap(
    settings: NotificationSettings,
    *,
    db: Database | None = None,
    uow: UnitOfWorkFactory | None = None,
    sender: Sender | None = None,
) -> NotificationApp:
    if uow is None:
        if db is None:
            raise ValueError("bootstrap needs a database or a unit-of-work factory")
        uow = sql_unit_of_work(db)
    wakeup = Wakeup()
    sender = sender or HttpSender(
        allow_private=settings.notification_allow_private_targets,
        max_connections=settings.notification_delivery_concurrency,
    )
    policy = RetryPolicy(
        base_seconds=settings.notification_retry_base_seconds, max_attempts=settings.notification_max_attempts
    )
    worker = DeliveryWorker(
        uow, sender, policy, wakeup, concurrency=settings.notification_delivery_concurrency, lease=LEASE
    )
    deps = Dependencies(
        uow=uow, wakeup=wakeup, allow_private_targets=settings.notification_allow_private_targets
    )
    return NotificationApp(deps=deps, worker=worker, sender=sender)
