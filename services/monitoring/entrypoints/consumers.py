"""Kafka entrypoint: batches of metric records in, one bulk insert out."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe_batch
from shared.contracts import metrics, topics
from shared.db import Database
from shared.events import Envelope

from ..service_layer.handlers import store_samples

CONSUMER = "monitoring.metrics"


def register(broker: KafkaBroker, db: Database, *, group_id: str = CONSUMER) -> None:
    async def handle(envelopes: list[Envelope]) -> None:
        await store_samples(db, envelopes)

    subscribe_batch(broker, topics.METRICS, group_id=group_id, models=metrics.EVENT_TYPES, handle=handle)
