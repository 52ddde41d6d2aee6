"""The process entrypoint: schema check, relay, consumer, loop and gRPC come up and go down cleanly."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from gpufleet.v1 import scheduler_pb2, scheduler_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.scheduler.__main__ import build
from services.scheduler.config import SchedulerSettings
from shared.embedded.ports import free_port
from shared.runtime import Fatal

pytestmark = pytest.mark.integration


def settings(db_url: str, harness, kafka) -> SchedulerSettings:
    target = harness.fleet_target
    return SchedulerSettings(
        scheduler_database_url=db_url,
        scheduler_grpc_listen=f"127.0.0.1:{free_port()}",
        fleet_grpc_target=target,
        identity_grpc_target=target,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_idempotent_producer=False,
        kafka_topic_partitions=3,
    )


async def test_the_service_starts_serves_and_stops(harness, kafka, migrate_schema):
    config = settings(await migrate_schema("scheduler"), harness, kafka)
    stop = asyncio.Event()
    task = asyncio.create_task(build(config).serve(stop))
    _, key = harness.tenant()
    try:
        async with grpc.aio.insecure_channel(config.scheduler_grpc_listen) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            async with asyncio.timeout(60):
                while True:
                    try:
                        got = await health.Check(
                            health_pb2.HealthCheckRequest(service="gpufleet.v1.JobService")
                        )
                        if got.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    except grpc.aio.AioRpcError:
                        assert not task.done(), task
                        await asyncio.sleep(0.2)
            job = await scheduler_pb2_grpc.JobServiceStub(ch).SubmitJob(
                scheduler_pb2.SubmitJobRequest(command="echo", gpu_count=1), metadata=key
            )
            assert job.status == "queued" and uuid.UUID(job.id)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_an_unmigrated_database_stops_the_service(harness, kafka, postgres):
    config = settings(postgres.url_for("gpufleet_nobody"), harness, kafka)
    with pytest.raises(Fatal, match="not migrated"):
        await asyncio.wait_for(build(config).serve(asyncio.Event()), 30)
