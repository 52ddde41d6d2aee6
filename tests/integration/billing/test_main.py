"""The whole process wiring: billing's bootstrap on the service runtime, composed as
``services/billing/__main__.py`` composes it; a job event in from the broker, the cost out on the costs
topic through the runtime's outbox relay, and the same cost over gRPC."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer
from gpufleet.v1 import billing_pb2, billing_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.billing.__main__ import build
from services.billing.adapters.orm import SCHEMA_VERSION
from shared.contracts import costs, topics
from shared.embedded.postgres import free_port
from shared.events import decode, header_map
from shared.grpc import channel
from shared.kafka import ensure_topics, make_broker
from shared.runtime import Fatal, Runtime

from .conftest import Billing, gpu, job_event

pytestmark = pytest.mark.integration


def billing_runtime(settings, *, schema_version: int = SCHEMA_VERSION, monkeypatch=None) -> Runtime:  # type: ignore[no-untyped-def]
    """``python -m services.billing``'s own composition; ``schema_version`` plays a build that expects
    another migration."""
    if schema_version != SCHEMA_VERSION:
        assert monkeypatch is not None
        monkeypatch.setattr("services.billing.__main__.SCHEMA_VERSION", schema_version)
    return build(settings)


async def wait_serving(client, service: asyncio.Task) -> None:  # type: ignore[no-untyped-def]
    health = health_pb2_grpc.HealthStub(client)
    async with asyncio.timeout(30):
        while True:
            try:
                reply = await health.Check(
                    health_pb2.HealthCheckRequest(service="gpufleet.v1.BillingService")
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except Exception:
                assert not service.done(), service.exception()
            await asyncio.sleep(0.2)


async def test_service_bills_a_finished_job_and_publishes_its_cost(billing: Billing, kafka) -> None:
    listen = f"127.0.0.1:{free_port()}"
    settings = billing.settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka.bootstrap,
            "kafka_idempotent_producer": False,
            "kafka_topic_partitions": 3,
            "billing_grpc_listen": listen,
            "ops_listen": "",
        }
    )
    org = uuid.uuid4()
    env = job_event(org, [gpu("7.2000", "h100")], held=timedelta(minutes=5))
    job_id = str(env.data.job.job_id)
    stop = asyncio.Event()
    service = asyncio.create_task(billing_runtime(settings).serve(stop))
    client = channel(listen)
    try:
        await wait_serving(client, service)
        await ensure_topics(settings, (topics.JOBS,))
        producer = make_broker(settings, "test-scheduler")
        await producer.start()
        try:
            await producer.publish(
                env.value(), topic=topics.JOBS, key=job_id.encode(), headers=header_map(env.headers())
            )
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topics.COSTS, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        found = None
        try:
            async with asyncio.timeout(30):
                while found is None:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for r in records:
                            if r.key == job_id.encode():
                                found = decode(r.headers, r.value, costs.EVENT_TYPES)
        finally:
            await consumer.stop()
        assert found.type == costs.COST_RECORDED and str(found.data.total_cost) == "0.60000000"

        stub = billing_pb2_grpc.BillingServiceStub(client)
        cost = await stub.GetJobCost(
            billing_pb2.GetJobCostRequest(job_id=job_id), metadata=billing.identity.key(org)
        )
        assert cost.total_cost == "0.60000000" and cost.gpu_count == 1
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
        await client.close()


async def test_service_refuses_a_schema_behind_the_code(billing: Billing, monkeypatch) -> None:
    settings = billing.settings.model_copy(
        update={"billing_grpc_listen": f"127.0.0.1:{free_port()}", "ops_listen": ""}
    )
    rt = billing_runtime(
        settings, schema_version=SCHEMA_VERSION + 1, monkeypatch=monkeypatch
    )  # a build that expects the next migration
    with pytest.raises(Fatal, match=f"expects {SCHEMA_VERSION + 1}"):
        await asyncio.wait_for(rt.serve(asyncio.Event()), 30)
