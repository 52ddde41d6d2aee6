"""Test harness: a real PostgreSQL and a real Kafka-protocol broker over TCP, started once per session.

Unit tests never touch these fixtures (they are lazy); integration and e2e tests do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres
from shared.migrate import migrate_service, role_name
from shared.verified_ahead import TASK_NAME as VERIFY_AHEAD_TASK

# Background tasks that caches start on first use and their owners stop when they close
# (services/scheduler/service_layer/freshness.py, shared/verified_ahead.py). The event loop lives for the
# whole session, so one left by a test that built a cache without closing it would go on reading (a
# disposed engine reconnects) for minutes of later tests: stopped after each test. Both restart on their
# cache's next use.
_CACHE_TASK_PREFIXES = ("keep-fresh-", VERIFY_AHEAD_TASK)


@pytest.fixture(autouse=True)
async def _stop_cache_keepers() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    left = [
        t
        for t in asyncio.all_tasks()
        if t is not current and not t.done() and t.get_name().startswith(_CACHE_TASK_PREFIXES)
    ]
    for task in left:
        task.cancel()
    for task in left:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gpufleet-test-"))
    yield path
    if os.environ.get("GPUFLEET_KEEP_TEST_STATE"):  # services' logs and state, to read after a failure
        print(f"test state kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(state_dir: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(state_dir / "pg", durable=False)
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def migrate_schema(postgres: EmbeddedPostgres):
    """``url = await migrate_schema("scheduler")``: migrates that service's schema once per session and
    returns the URL to connect as its DML-only role, password included (what the service itself uses)."""
    done: set[str] = set()

    async def _migrate(service: str) -> str:
        if service not in done:
            await migrate_service(
                postgres.admin_url, service, password=postgres.password_for(role_name(service))
            )
            done.add(service)
        return postgres.url_for(role_name(service))

    return _migrate


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
