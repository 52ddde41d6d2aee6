"""Helpers the shared-plumbing integration tests have in common: a tiny event model, Kafka settings for the
harness broker, and reading a whole topic with a plain consumer."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from pydantic import BaseModel

from shared.settings import KafkaSettings


class Ping(BaseModel):
    n: int


MODELS = {"test.ping": Ping}


def settings(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(
        kafka_bootstrap_servers=bootstrap, kafka_idempotent_producer=False, kafka_topic_partitions=2
    )


async def read_all(bootstrap: str, topic: str, want: int, timeout: float = 30) -> list:
    """Records of ``topic`` from the start, until ``want`` of them arrived or ``timeout`` passed."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list = []
    try:
        async with asyncio.timeout(timeout):
            while len(got) < want:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(records)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return got
