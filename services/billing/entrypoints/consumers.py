"""Kafka entrypoint: job events in, handler calls out."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe
from shared.contracts import jobs, topics
from shared.db import Database
from shared.events import Envelope

from ..service_layer.handlers import CONSUMER, record_job_cost


def register(broker: KafkaBroker, db: Database, *, group_id: str = CONSUMER) -> None:
    async def handle(envelope: Envelope) -> None:
        await record_job_cost(db, envelope)

    subscribe(broker, topics.JOBS, group_id=group_id, models=jobs.EVENT_TYPES, handle=handle)
