"""The whole process wiring (``services.fleet.__main__.build``): gRPC in, outbox relay out to Kafka."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from gpufleet.v1 import fleet_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.fleet.__main__ import build
from services.fleet.adapters.orm import SCHEMA_VERSION
from shared.contracts import fleet as contract
from shared.contracts import topics
from shared.embedded.postgres import free_port
from shared.events import decode
from shared.grpc import channel, with_key
from shared.runtime import Fatal

from .conftest import Fleet
from .test_registry import node_request

pytestmark = pytest.mark.integration


async def test_service_registers_nodes_and_publishes_their_gpus(fleet: Fleet, identity, kafka) -> None:
    listen = f"127.0.0.1:{free_port()}"
    settings = fleet.settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka.bootstrap,
            "kafka_idempotent_producer": False,
            "kafka_topic_partitions": 3,
            "fleet_grpc_listen": listen,
            "fleet_sweep_interval_seconds": 0.5,
        }
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
                        health_pb2.HealthCheckRequest(service="gpufleet.v1.NodeRegistryService")
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except Exception:
                    assert not service.done(), service.exception()
                await asyncio.sleep(0.2)
        registry = fleet_pb2_grpc.NodeRegistryServiceStub(client)
        # The database is the same: a join token the operator made through the harness admits it.
        resp = await registry.RegisterNode(
            node_request(models=("NVIDIA A10G",)), metadata=with_key(await fleet.join_token())
        )

        consumer = AIOKafkaConsumer(
            topics.FLEET, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        found = None
        try:
            async with asyncio.timeout(30):
                while found is None:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for r in records:
                            if r.key == resp.gpus[0].gpu_id.encode():
                                found = decode(r.headers, r.value, contract.EVENT_TYPES)
        finally:
            await consumer.stop()
        assert found.type == contract.GPU_REGISTERED and found.data.gpu.gpu_type == "a10g"
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
        await client.close()


async def test_service_refuses_a_schema_behind_the_code(fleet: Fleet, monkeypatch) -> None:
    ahead = SCHEMA_VERSION + 1  # a build that expects the next migration
    monkeypatch.setattr("services.fleet.__main__.SCHEMA_VERSION", ahead)
    settings = fleet.settings.model_copy(update={"fleet_grpc_listen": f"127.0.0.1:{free_port()}"})
    with pytest.raises(Fatal, match=f"expects {ahead}"):
        await asyncio.wait_for(build(settings).serve(asyncio.Event()), 30)
