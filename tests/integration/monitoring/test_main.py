"""The whole process wiring: monitoring's bootstrap on the service runtime, composed as
``services/monitoring/__main__.py`` composes it; an agent's record in from the broker, its samples
answered over gRPC to the organization that held the GPU, the retention round run by the runtime."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from gpufleet.v1 import monitoring_pb2, monitoring_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.monitoring.__main__ import build
from services.monitoring.adapters.orm import SCHEMA_VERSION
from shared.contracts import topics
from shared.embedded.postgres import free_port
from shared.events import header_map
from shared.grpc import channel
from shared.kafka import ensure_topics, make_broker
from shared.runtime import Fatal, Runtime

from .conftest import Monitoring, record

pytestmark = pytest.mark.integration


def monitoring_runtime(settings, *, schema_version: int = SCHEMA_VERSION, monkeypatch=None) -> Runtime:  # type: ignore[no-untyped-def]
    """``python -m services.monitoring``'s own composition; ``schema_version`` plays a build that expects
    another migration."""
    if schema_version != SCHEMA_VERSION:
        assert monkeypatch is not None
        monkeypatch.setattr("services.monitoring.__main__.SCHEMA_VERSION", schema_version)
    return build(settings)


async def test_service_ingests_metrics_from_the_broker_and_answers_utilization(
    monitoring: Monitoring, kafka
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    settings = monitoring.settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka.bootstrap,
            "kafka_idempotent_producer": False,
            "kafka_topic_partitions": 3,
            "monitoring_grpc_listen": listen,
            "ops_listen": "",
            "monitoring_retention_sweep_seconds": 0.2,
        }
    )
    org, gpu_id, node = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    ticks = [
        record([(gpu_id, org, util, now - timedelta(seconds=s))], node) for s, util in ((2, 30.0), (1, 70.0))
    ]
    sentinel = uuid.uuid4()
    last = record([(sentinel, org, 10.0, now)], node)
    await monitoring.allocate([gpu_id, sentinel], org, node, now - timedelta(minutes=1))
    stop = asyncio.Event()
    service = asyncio.create_task(monitoring_runtime(settings).serve(stop))
    client = channel(listen)
    try:
        health = health_pb2_grpc.HealthStub(client)
        async with asyncio.timeout(30):
            while True:
                try:
                    reply = await health.Check(
                        health_pb2.HealthCheckRequest(service="gpufleet.v1.MonitoringService")
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except Exception:
                    assert not service.done(), service.exception()
                await asyncio.sleep(0.2)
        await ensure_topics(settings, (topics.METRICS,))
        agent = make_broker(settings, "test-agent")
        await agent.start()
        try:
            # The first record redelivered, then a last record of another GPU: one key keeps them in order,
            # so once that GPU shows up, the redelivery has been consumed too.
            for tick in (*ticks, ticks[0], last):
                await agent.publish(
                    tick.value(),
                    topic=topics.METRICS,
                    key=str(node).encode(),
                    headers=header_map(tick.headers()),
                )
        finally:
            await agent.stop()

        stub = monitoring_pb2_grpc.MonitoringServiceStub(client)
        key = monitoring.identity.key(org)
        async with asyncio.timeout(30):
            while True:
                reply = await stub.GetUtilization(monitoring_pb2.GetUtilizationRequest(), metadata=key)
                if str(sentinel) in {g.gpu_id for g in reply.gpus}:
                    break
                await asyncio.sleep(0.2)
        (gpu,) = [g for g in reply.gpus if g.gpu_id == str(gpu_id)]
        assert gpu.gpu_id == str(gpu_id) and gpu.samples == 2
        assert (gpu.avg_utilization, gpu.max_utilization, gpu.avg_memory_used_mb) == (50.0, 70.0, 5000.0)
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
        await client.close()


async def test_service_refuses_a_schema_behind_the_code(monitoring: Monitoring, monkeypatch) -> None:
    settings = monitoring.settings.model_copy(
        update={"monitoring_grpc_listen": f"127.0.0.1:{free_port()}", "ops_listen": ""}
    )
    rt = monitoring_runtime(
        settings, schema_version=SCHEMA_VERSION + 1, monkeypatch=monkeypatch
    )  # expects the next migration
    with pytest.raises(Fatal, match=f"expects {SCHEMA_VERSION + 1}"):
        await asyncio.wait_for(rt.serve(asyncio.Event()), 30)
