"""The service runtime against real PostgreSQL and a real broker: it starts and serves with a dependency
down, says so truthfully (gRPC health per dependency, /readyz, /metrics), and catches up when it returns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic_settings import SettingsConfigDict

from shared import readiness
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.ports import free_port
from shared.runtime import Fatal, Runtime
from shared.settings import BaseServiceSettings, KafkaSettings

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _Settings(BaseServiceSettings, KafkaSettings):
    model_config = SettingsConfigDict(env_prefix="GPUFLEET_TEST_RT_", extra="ignore", frozen=True)


def _settings(bootstrap: str) -> _Settings:
    return _Settings(
        kafka_bootstrap_servers=bootstrap,
        kafka_idempotent_producer=False,
        kafka_topic_partitions=1,
        ops_listen=f"127.0.0.1:{free_port()}",
        drain_seconds=2,
    )


@contextlib.asynccontextmanager
async def running(rt: Runtime) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(rt.serve(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _eventually(check: Callable[[], object], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while True:
            got = check()
            if asyncio.iscoroutine(got):
                got = await got
            if got:
                return
            await asyncio.sleep(0.2)


async def _health(target: str, service: str) -> int | None:
    async with grpc.aio.insecure_channel(target) as ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
        except grpc.aio.AioRpcError:
            return None
        return reply.status


def _runtime(bootstrap: str, db_url: str, grpc_listen: str, seen: list[str]) -> Runtime:
    rt = Runtime("runtime-test", _settings(bootstrap))
    rt.database(db_url, schema="billing", version=_billing_version())
    rt.outbox(publishes=("gpufleet.runtime-test.v1",))

    def register(broker) -> None:  # type: ignore[no-untyped-def]
        @broker.subscriber("gpufleet.runtime-test.v1", group_id="runtime-test", auto_offset_reset="earliest")
        async def _consume(body: bytes) -> None:
            seen.append(str(body))

    rt.consumers(register, topics=("gpufleet.runtime-test.v1",))
    rt.grpc(grpc_listen, [])
    return rt


def _billing_version() -> int:
    from services.billing.adapters.orm import SCHEMA_VERSION

    return SCHEMA_VERSION


async def test_starts_and_serves_while_the_broker_is_down_then_catches_up(migrate_schema, state_dir):
    url = await migrate_schema("billing")
    broker_port = free_port()  # nothing listens there yet
    target = f"127.0.0.1:{free_port()}"
    rt = _runtime(f"127.0.0.1:{broker_port}", url, target, [])
    async with running(rt) as task:
        await _eventually(lambda: rt.ops is not None and rt.readiness.states[readiness.DATABASE].up)
        assert not task.done()
        # The core dependency is up: serving, but degraded with the broker named.
        assert await _health(target, "") == SERVING
        assert await _health(target, readiness.health_name(readiness.BROKER)) == NOT_SERVING
        assert await _health(target, readiness.health_name(readiness.DATABASE)) == SERVING
        assert rt.ops is not None
        async with httpx.AsyncClient(base_url=rt.ops.url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            body = ready.json()
            assert body["status"] == "degraded"
            assert body["dependencies"]["broker"]["state"] == "down"
            assert body["dependencies"]["database"]["state"] == "up"
            metrics = (await http.get("/metrics")).text
            assert 'gpufleet_dependency_up{dependency="broker"} 0.0' in metrics
            assert (await http.get("/livez")).status_code == 200

        kafka = EmbeddedKafka(port=broker_port, log_path=state_dir / "runtime-tansu.log")
        kafka.start()
        try:
            await _eventually(lambda: rt.readiness.states[readiness.BROKER].up)
            await _eventually(lambda: rt._broker is not None)
            assert await _health(target, readiness.health_name(readiness.BROKER)) == SERVING
            async with httpx.AsyncClient(base_url=rt.ops.url) as http:
                await _eventually(
                    lambda: _ready_status(http, "ready"),
                )
        finally:
            kafka.stop()
        # The broker went away again: noticed within seconds.
        await _eventually(lambda: not rt.readiness.states[readiness.BROKER].up, timeout=20)


async def test_after_the_broker_comes_back_empty_the_consumers_read_its_log_from_the_start(
    migrate_schema, state_dir
):
    """The consumers are paused when the broker stops answering, so none of them fetches from the
    restarted, empty broker at its old position: records written there before the probe sees it back
    (more of them than the old position, as an outbox replay writes) are all read, in order."""
    from aiokafka import AIOKafkaProducer

    topic = "gpufleet.runtime-test.v1"
    url = await migrate_schema("billing")
    broker_port = free_port()
    kafka = EmbeddedKafka(port=broker_port, log_path=state_dir / "runtime-refill-tansu.log")
    kafka.start()
    seen: list[str] = []
    rt = _runtime(kafka.bootstrap, url, f"127.0.0.1:{free_port()}", seen)

    async def send(values: list[str]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            for v in values:
                await producer.send_and_wait(topic, v.encode(), partition=0)
        finally:
            await producer.stop()

    try:
        async with running(rt):
            await _eventually(lambda: rt._broker is not None and rt.readiness.states[readiness.BROKER].up)
            await send([f"old-{i}" for i in range(20)])
            await _eventually(lambda: len(seen) == 20)
            kafka.kill()  # in memory: every record and offset is gone
            await _eventually(lambda: not rt.readiness.states[readiness.BROKER].up, timeout=20)
            kafka.start()
            from shared.kafka import ensure_topics

            await ensure_topics(_settings(kafka.bootstrap), (topic,))
            new = [f"new-{i}" for i in range(40)]
            await send(new)  # offsets 0..39: past the old position of 20
            await _eventually(lambda: len(seen) >= 60, timeout=60)
    finally:
        kafka.stop()
    assert [v for v in seen if "new-" in v] == [f"b'{v}'" for v in new]


async def _ready_status(http: httpx.AsyncClient, status: str) -> bool:
    return (await http.get("/readyz")).json()["status"] == status


async def test_an_unreachable_database_is_not_serving_and_not_fatal(kafka):
    dead_db = f"postgresql://nobody@127.0.0.1:{free_port()}/gpufleet"
    target = f"127.0.0.1:{free_port()}"
    rt = _runtime(kafka.bootstrap, dead_db, target, [])
    async with running(rt) as task:
        await _eventually(
            lambda: rt.ops is not None and rt.readiness.states[readiness.DATABASE].detail != "not checked yet"
        )
        await asyncio.sleep(1)
        assert not task.done()
        assert await _health(target, "") == NOT_SERVING
        assert rt.ops is not None
        async with httpx.AsyncClient(base_url=rt.ops.url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert ready.json()["dependencies"]["database"]["state"] == "down"


async def test_a_failing_task_is_fatal_and_the_rest_is_torn_down(migrate_schema, kafka):
    url = await migrate_schema("billing")
    rt = _runtime(kafka.bootstrap, url, f"127.0.0.1:{free_port()}", [])
    closed: list[str] = []

    async def broken(stop: asyncio.Event) -> None:
        raise RuntimeError("boom")

    async def close() -> None:
        closed.append("closed")

    rt.task("broken", broken)
    rt.on_close(close)
    with pytest.raises(Fatal, match="broken"):
        await asyncio.wait_for(rt.serve(asyncio.Event()), 30)
    assert closed == ["closed"]


async def test_periodic_rounds_survive_failures(migrate_schema, kafka):
    url = await migrate_schema("billing")
    rt = _runtime(kafka.bootstrap, url, f"127.0.0.1:{free_port()}", [])
    rounds: list[int] = []

    async def flaky() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("first round fails")

    rt.periodic("flaky", flaky, every=0.05)
    async with running(rt) as task:
        await _eventually(lambda: len(rounds) >= 3)
        assert not task.done()
