"""The whole process wiring (``services.identity.__main__.build``): schema check, gRPC with health."""

from __future__ import annotations

import asyncio

import pytest
from gpufleet.v1 import identity_pb2, identity_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.identity.__main__ import build
from services.identity.bootstrap import SERVICE_NAME
from shared.embedded.postgres import free_port
from shared.grpc import channel
from shared.runtime import Fatal

from .conftest import ADMIN_TOKEN, Identity

pytestmark = pytest.mark.integration


async def test_service_serves_until_stopped(identity: Identity) -> None:
    listen = f"127.0.0.1:{free_port()}"
    settings = identity.settings.model_copy(update={"identity_grpc_listen": listen})
    stop = asyncio.Event()
    service = asyncio.create_task(build(settings).serve(stop))
    client = channel(listen)
    try:
        health = health_pb2_grpc.HealthStub(client)
        async with asyncio.timeout(30):
            while True:
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except Exception:
                    assert not service.done(), service.exception()
                await asyncio.sleep(0.2)
        created = await identity_pb2_grpc.IdentityServiceStub(client).CreateOrganization(
            identity_pb2.CreateOrganizationRequest(name="Main", owner_email="main@example.com"),
            metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),),
        )
        assert created.api_key.secret.startswith("gpf_")
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
        await client.close()


async def test_service_refuses_an_unmigrated_database(identity: Identity, postgres) -> None:
    # The maintenance database has no identity schema at all.
    settings = identity.settings.model_copy(
        update={
            "identity_database_url": postgres.url_for("postgres", "postgres"),
            "identity_grpc_listen": f"127.0.0.1:{free_port()}",
        }
    )
    with pytest.raises(Fatal, match="not migrated"):
        await asyncio.wait_for(build(settings).serve(asyncio.Event()), 30)
