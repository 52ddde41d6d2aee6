"""Notification in-process: real PostgreSQL, the real HTTP sender, a tiny HTTP receiver on a free port,
its gRPC servicer on a free port and a fake identity mapping test keys to principals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from gpufleet.v1 import common_pb2, identity_pb2_grpc, notification_pb2_grpc

from services.notification.bootstrap import NotificationApp, bootstrap
from services.notification.config import NotificationSettings
from shared import api_keys
from shared.contracts import jobs
from shared.db import Database
from shared.embedded.postgres import free_port
from shared.events import Envelope
from shared.grpc import Authenticator, channel, serve


class FakeIdentity(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self) -> None:
        self.keys: dict[str, common_pb2.Principal] = {}

    def key(self, org: uuid.UUID, role: str = "member") -> tuple[tuple[str, str], ...]:
        secret = api_keys.new_key()
        self.keys[secret] = common_pb2.Principal(
            organization_id=str(org), user_id=str(uuid.uuid4()), role=role, api_key_id=str(uuid.uuid4())
        )
        return (("authorization", f"Bearer {secret}"),)

    async def Authenticate(self, request, context):  # type: ignore[no-untyped-def]
        principal = self.keys.get(request.api_key)
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return principal


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server (keep-alive, Content-Length bodies) answering ``status`` to every POST."""

    status: int = 204
    requests: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    url: str = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hooks"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request_line := await reader.readline():
                _, path, _ = request_line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Received(path, headers, body))
                self.arrived.set()
                writer.write(f"HTTP/1.1 {self.status} Status\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def wait_for(self, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def receiving(status: int = 204) -> AsyncIterator[Receiver]:
    receiver = Receiver(status=status)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@dataclass
class Harness:
    url: str
    db: Database
    identity: FakeIdentity
    identity_target: str
    auth: Authenticator

    def settings(self, **overrides: Any) -> NotificationSettings:
        values: dict[str, Any] = dict(
            notification_database_url=self.url,
            kafka_bootstrap_servers="127.0.0.1:1",
            identity_grpc_target=self.identity_target,
            notification_allow_private_targets=True,
            notification_retry_base_seconds=0.001,
            notification_delivery_concurrency=4,
        )
        values.update(overrides)
        return NotificationSettings(**values)

    def app(self, **overrides: Any) -> NotificationApp:
        return bootstrap(self.settings(**overrides), db=self.db, auth=self.auth)

    async def scalar(self, sql: str, **params: Any) -> Any:
        from sqlalchemy import text

        async with self.db.transaction(system=True) as s:
            return (await s.execute(text(sql), params)).scalar()

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
async def identity() -> AsyncIterator[tuple[FakeIdentity, str]]:
    fake = FakeIdentity()
    target = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        target,
        [(identity_pb2_grpc.add_IdentityServiceServicer_to_server, fake)],
        ["gpufleet.v1.IdentityService"],
    )
    yield fake, target
    await server.stop(None)


@pytest.fixture(scope="session")
async def harness(migrate_schema, identity) -> AsyncIterator[Harness]:
    fake, target = identity
    url = await migrate_schema("notification")
    db = Database(url, "notification", pool_size=4)
    auth = Authenticator(target, ttl=0)
    yield Harness(url, db, fake, target, auth)
    await auth.close()
    await db.dispose()


@dataclass
class Api:
    app: NotificationApp
    stub: notification_pb2_grpc.NotificationServiceStub


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[Api]:
    app = harness.app()
    target = f"127.0.0.1:{free_port()}"
    # What the runtime does with app.grpc_services.
    server, _ = await serve(
        target,
        [(add, servicer) for add, servicer, _ in app.grpc_services],
        [name for _, _, name in app.grpc_services],
    )
    client = channel(target)
    yield Api(app, notification_pb2_grpc.NotificationServiceStub(client))
    await client.close()
    await server.stop(None)
    await app.close()


def job_event(
    org: uuid.UUID,
    event_type: str = jobs.JOB_SUCCEEDED,
    webhook_url: str | None = None,
    job_id: uuid.UUID | None = None,
) -> Envelope:
    snapshot = jobs.JobSnapshotV1(
        job_id=job_id or uuid.uuid4(),
        organization_id=org,
        status=event_type.rsplit(".", 1)[1].replace("submitted", "queued").replace("started", "running"),  # type: ignore[arg-type]
        command="python train.py",
        gpu_count=1,
        gpu_memory_mb=1024,
        priority=0,
        webhook_url=webhook_url,
        created_at=datetime.now(UTC),
    )
    return Envelope(
        type=event_type,
        source="gpufleet/scheduler",
        data=jobs.JobEventV1(job=snapshot),
        subject=str(snapshot.job_id),
        organization_id=str(org),
    )
