"""Composition root: wires the database, the identity client and the Kafka settings into the pieces the
billing process runs (job consumer, outbox relay, gRPC servicer). Tests build the same
:class:`BillingApp` over their own database, broker and fake identity."""

from __future__ import annotations

from dataclasses import dataclass

from faststream.kafka import KafkaBroker

from shared.contracts import topics
from shared.db import Database
from shared.grpc import Authenticator
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings

from .entrypoints import consumers
from .entrypoints.grpc_server import BillingServicer
from .service_layer.handlers import CONSUMER


@dataclass(frozen=True)
class BillingApp:
    db: Database
    relay: OutboxRelay
    servicer: BillingServicer

    def register_consumers(self, broker: KafkaBroker, *, group_id: str = CONSUMER) -> None:
        consumers.register(broker, self.db, group_id=group_id)


def bootstrap(kafka: KafkaSettings, db: Database, auth: Authenticator) -> BillingApp:
    return BillingApp(
        db=db,
        # Billing's only outgoing events are the cost records, published after commit by the relay.
        relay=OutboxRelay(db, kafka, publishes=(topics.COSTS,)),
        servicer=BillingServicer(db, auth),
    )
