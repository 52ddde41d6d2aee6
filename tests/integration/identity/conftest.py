"""Identity in-process: its servicer on a free port over the real PostgreSQL, called through grpc.aio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from gpufleet.v1 import identity_pb2_grpc

from services.identity.bootstrap import IdentityApp, bootstrap
from services.identity.config import IdentitySettings
from shared.db import Database
from shared.embedded.postgres import free_port
from shared.grpc import channel, serve

ADMIN_TOKEN = "test-admin-token-0123456789"


@dataclass
class Identity:
    app: IdentityApp
    db: Database
    settings: IdentitySettings
    stub: identity_pb2_grpc.IdentityServiceStub
    target: str


@pytest.fixture(scope="session")
async def identity(migrate_schema) -> AsyncIterator[Identity]:
    url = await migrate_schema("identity")
    # The audit consumer is not run here (tests/integration/identity/test_audit_log.py runs its own).
    settings = IdentitySettings(
        identity_database_url=url, admin_token=ADMIN_TOKEN, kafka_bootstrap_servers="127.0.0.1:9"
    )
    db = Database(url, "identity", pool_size=4)
    app = bootstrap(settings, db=db)
    target = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        target,
        [(add, servicer) for add, servicer, _ in app.grpc_services],
        [name for _, _, name in app.grpc_services],
    )
    client = channel(target)
    yield Identity(app, db, settings, identity_pb2_grpc.IdentityServiceStub(client), target)
    await client.close()
    await server.stop(None)
    await db.dispose()
