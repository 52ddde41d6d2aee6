"""The whole process wiring (``services.notification.__main__.build``): a job event on the real topic in,
a signed HTTP request out."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from gpufleet.v1 import common_pb2, notification_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from standardwebhooks.webhooks import Webhook as Verifier

from services.notification.__main__ import build
from shared.contracts import jobs, topics
from shared.embedded.postgres import free_port
from shared.events import header_map
from shared.grpc import channel
from shared.kafka import make_broker
from shared.runtime import Fatal

from .conftest import Harness, job_event, receiving

pytestmark = pytest.mark.integration


async def test_service_delivers_a_job_event_to_the_jobs_webhook_url(harness: Harness, kafka) -> None:
    listen = f"127.0.0.1:{free_port()}"
    settings = harness.settings(
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_idempotent_producer=False,
        kafka_topic_partitions=3,
        notification_grpc_listen=listen,
    )
    stop = asyncio.Event()
    service = asyncio.create_task(build(settings).serve(stop))
    client = channel(listen)
    try:
        health = health_pb2_grpc.HealthStub(client)
        async with asyncio.timeout(30):
            while True:
                try:
                    reply = await health.Check(
                        health_pb2.HealthCheckRequest(service="gpufleet.v1.NotificationService")
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except Exception:
                    assert not service.done(), service.exception()
                await asyncio.sleep(0.2)
        org = uuid.uuid4()
        secret = (
            await notification_pb2_grpc.NotificationServiceStub(client).GetJobWebhookSecret(
                common_pb2.Empty(), metadata=harness.identity.key(org, "owner")
            )
        ).secret
        async with receiving(200) as rx:
            env = job_event(org, jobs.JOB_CANCELLED, webhook_url=rx.url)
            broker = make_broker(settings, "notification-test-producer")
            await broker.start()
            try:
                await broker.publish(
                    env.value(),
                    topic=topics.JOBS,
                    key=str(env.data.job.job_id).encode(),
                    headers=header_map(env.headers()),
                )
            finally:
                await broker.stop()
            await rx.wait_for(1, timeout=60)
        payload = Verifier(secret).verify(rx.requests[0].body, rx.requests[0].headers)
        assert payload["type"] == "job.cancelled" and payload["data"]["job_id"] == str(env.data.job.job_id)
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
        await client.close()


async def test_service_refuses_a_schema_behind_the_code(harness: Harness, monkeypatch) -> None:
    from services.notification.adapters.orm import SCHEMA_VERSION

    ahead = SCHEMA_VERSION + 1  # a build one migration ahead of the database
    monkeypatch.setattr("services.notification.__main__.SCHEMA_VERSION", ahead)
    with pytest.raises(Fatal, match=f"expects {ahead}"):
        # Its own port: the default one may be a running `make dev`'s.
        settings = harness.settings(notification_grpc_listen=f"127.0.0.1:{free_port()}")
        await asyncio.wait_for(build(settings).serve(asyncio.Event()), 30)
