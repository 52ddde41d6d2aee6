"""End-to-end harness: every service as its own OS process on the harness's PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiokafka import AIOKafkaConsumer

from shared.contracts import topics
from shared.devstack import Stack, service_db_passwords
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres, free_port
from shared.migrate import migrate


@pytest.fixture(scope="package")
def e2e_postgres(state_dir) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the e2e suite's own: no row left by other suites can be seen (or scheduled on)."""
    pg = EmbeddedPostgres(state_dir / "e2e-pg", durable=False)
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="package")
def e2e_kafka(state_dir) -> Iterator[EmbeddedKafka]:
    """A broker of the e2e suite's own: its restart test cannot disturb any other suite."""
    broker = EmbeddedKafka(log_path=state_dir / "e2e-tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="package")
async def stack(e2e_postgres, e2e_kafka, state_dir) -> AsyncIterator[Stack]:
    postgres, kafka = e2e_postgres, e2e_kafka
    passwords = service_db_passwords(postgres)
    await migrate(postgres.admin_url, passwords=passwords)
    ports = {
        name: free_port()
        for name in ("identity", "fleet", "scheduler", "billing", "monitoring", "notification", "gateway")
    }
    s = Stack(
        state_dir / "e2e",
        postgres.port,
        kafka.bootstrap,
        ports,
        admin_token=secrets.token_urlsafe(16),
        agent_gpus=2,
        extra_env={
            "GPUFLEET_AGENT_METRICS_INTERVAL_SECONDS": "1",
            "GPUFLEET_NOTIFICATION_RETRY_BASE_SECONDS": "1",
            "GPUFLEET_AGENT_KILL_GRACE_SECONDS": "2",
        },
        db_passwords=passwords,
    )
    try:
        await s.start(timeout=120)
        yield s
    finally:
        s.stop()


class Receiver:
    """A local HTTP endpoint that records every webhook delivery it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for p, h, b in list(self.requests) if p == path]

    def events(self, path: str) -> list[dict]:
        return [json.loads(b) for _, b in self.bodies(path)]


@pytest.fixture(scope="package")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


class TopicTap:
    """A plain aiokafka consumer (no group) reading the public topics from the beginning."""

    def __init__(self, bootstrap: str) -> None:
        self.records: list = []
        self.consumer = AIOKafkaConsumer(
            topics.JOBS,
            topics.COSTS,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            metadata_max_age_ms=1000,
        )
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.consumer.start()

        async def pump() -> None:
            async for record in self.consumer:
                self.records.append(record)

        self.task = asyncio.create_task(pump())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        await self.consumer.stop()


@pytest.fixture(scope="package")
async def tap(stack: Stack) -> AsyncIterator[TopicTap]:
    t = TopicTap(stack.kafka_bootstrap)
    await t.start()
    yield t
    await t.stop()


@pytest.fixture(scope="package")
async def orgs(stack: Stack) -> dict[str, str]:
    a = await stack.create_organization("Acme Research", "alice@acme.example", "Alice")
    b = await stack.create_organization("Globex", "bob@globex.example", "Bob")
    return {
        "a": a.api_key.secret,
        "b": b.api_key.secret,
        "a_org": a.organization.id,
        "b_org": b.organization.id,
    }
