"""Test harness: a real PostgreSQL and a real Kafka-protocol broker over TCP, started once per session.

Unit tests never touch these fixtures (they are lazy); integration and e2e tests do.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres
from shared.migrate import migrate

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gpufleet-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(state_dir: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(state_dir / "pg", durable=False)
    pg.start()
    asyncio.run(migrate(pg.admin_url))
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def kafka(state_dir: Path) -> Iterator[EmbeddedKafka]:
    broker = EmbeddedKafka(log_path=state_dir / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_env(kafka: EmbeddedKafka) -> dict[str, str]:
    """Environment for KafkaSettings pointing at the harness broker."""
    return {
        "GPUFLEET_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "GPUFLEET_KAFKA_IDEMPOTENT_PRODUCER": "false",
        "GPUFLEET_KAFKA_TOPIC_PARTITIONS": "3",
    }
