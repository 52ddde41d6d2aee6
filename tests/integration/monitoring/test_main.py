"""The whole process wiring: monitoring's bootstrap on the service runtime, composed as
``services/monitoring/__main__.py`` composes it; an agent's record in from the broker, its samples
answered over gRPC to the organization that held the GPU, the retention round run by the runtime."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc, monitoring_pb2, monitoring_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.monitoring.__main__ import build
from services.monitoring.adapters.orm import SCHEMA_VERSION
from shared.contracts import topics
from shared.embedded.postgres import free_port
from shared.events import header_map
from shared.grpc import channel, grpc_service, serve
from shared.kafka import ensure_topics, make_broker
from shared.record_signing import RecordSigner
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


@grpc_service
class _RecordKeys(fleet_pb2_grpc.NodeRegistryServiceServicer):
    """Fleet's GetRecordKeys, answering from a table (node id -> public key)."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self.keys = keys

    async def GetRecordKeys(self, request, context):  # type: ignore[no-untyped-def]
        return fleet_pb2.GetRecordKeysResponse(
            keys=[
                fleet_pb2.RecordKey(node_id=n, public_key=self.keys[n])
                for n in request.node_ids
                if n in self.keys
            ]
        )


async def test_service_ingests_metrics_from_the_broker_and_answers_utilization(
    monitoring: Monitoring, kafka
) -> None:
    listen, fleet_listen = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    settings = monitoring.settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka.bootstrap,
            "kafka_idempotent_producer": False,
            "kafka_topic_partitions": 3,
            "monitoring_grpc_listen": listen,
            "ops_listen": "",
            "monitoring_retention_sweep_seconds": 0.2,
            "fleet_agent_grpc_target": fleet_listen,
        }
    )
    org, gpu_id, node = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    signer, forger = (RecordSigner(Ed25519PrivateKey.generate()) for _ in range(2))
    fleet, _ = await serve(
        fleet_listen,
        [
            (
                fleet_pb2_grpc.add_NodeRegistryServiceServicer_to_server,
                _RecordKeys({str(node): signer.public_key}),
            )
        ],
        ["gpufleet.v1.NodeRegistryService"],
    )
    now = datetime.now(UTC)
    ticks = [
        record([(gpu_id, org, util, now - timedelta(seconds=s))], node) for s, util in ((2, 30.0), (1, 70.0))
    ]
    # Not this node's key: never counted (it would make the average 60 and the samples 3).
    forged = record([(gpu_id, org, 100.0, now - timedelta(seconds=3))], node)
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
            for tick, by in (
                (ticks[0], signer),
                (forged, forger),
                (ticks[1], signer),
                (ticks[0], signer),
                (last, signer),
            ):
                key, value = str(node).encode(), tick.value()
                headers = by.sign(str(node), topics.METRICS, key, tick.headers(), value)
                await agent.publish(value, topic=topics.METRICS, key=key, headers=header_map(headers))
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
        await fleet.stop(None)


async def test_service_refuses_a_schema_behind_the_code(monitoring: Monitoring, monkeypatch) -> None:
    settings = monitoring.settings.model_copy(
        update={
            "monitoring_grpc_listen": f"127.0.0.1:{free_port()}",
            "ops_listen": "",
            "fleet_agent_grpc_target": f"127.0.0.1:{free_port()}",
        }
    )
    rt = monitoring_runtime(
        settings, schema_version=SCHEMA_VERSION + 1, monkeypatch=monkeypatch
    )  # expects the next migration
    with pytest.raises(Fatal, match=f"expects {SCHEMA_VERSION + 1}"):
        await asyncio.wait_for(rt.serve(asyncio.Event()), 30)


def test_checking_signatures_without_fleet_to_ask_is_refused_at_start(monitoring: Monitoring) -> None:
    with pytest.raises(Fatal, match="GPUFLEET_FLEET_AGENT_GRPC_TARGET"):
        build(monitoring.settings.model_copy(update={"ops_listen": ""}))
    off = monitoring.settings.model_copy(update={"ops_listen": "", "monitoring_record_signatures": "off"})
    assert isinstance(build(off), Runtime)
