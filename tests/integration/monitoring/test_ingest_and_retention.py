"""Sample ingestion (one statement per batch, idempotent by primary key), tenant visibility of samples,
and the retention sweep, against the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from gpufleet.v1 import monitoring_pb2

from .conftest import Monitoring, record

pytestmark = pytest.mark.integration


async def test_a_batch_is_stored_once_even_when_it_repeats_itself(monitoring: Monitoring) -> None:
    org, node = uuid.uuid4(), uuid.uuid4()
    busy, idle = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    job = await monitoring.allocate([busy], org, node, now - timedelta(minutes=1))
    tick = record([(busy, org, 40.0, now), (idle, None, 0.0, now)], node)
    # A redelivered record inside the same batch, and the batch once more later.
    assert await monitoring.consume([tick, tick]) == 2
    assert await monitoring.consume([tick]) == 0

    rows = await monitoring.rows(
        "SELECT gpu_id, organization_id, job_id, node_id, gpu_utilization, memory_used FROM gpu_metrics "
        "WHERE gpu_id IN (:a, :b) ORDER BY organization_id NULLS LAST",
        a=busy,
        b=idle,
    )
    assert [(r.gpu_id, r.organization_id) for r in rows] == [(busy, org), (idle, None)]
    assert rows[0].job_id == job and rows[1].job_id is None  # the scheduler's job, not the agent's word
    assert (
        rows[0].node_id == tick.data.node_id and rows[0].gpu_utilization == 40 and rows[0].memory_used == 4000
    )

    # Row-level security: the tenant sees its own sample only; idle samples are the system's.
    mine = await monitoring.rows(
        "SELECT gpu_id FROM gpu_metrics WHERE gpu_id IN (:a, :b)", org=org, a=busy, b=idle
    )
    assert [r.gpu_id for r in mine] == [busy]
    assert (
        await monitoring.rows("SELECT 1 FROM gpu_metrics WHERE gpu_id = :a", org=uuid.uuid4(), a=busy) == []
    )


async def test_an_empty_record_stores_nothing(monitoring: Monitoring) -> None:
    assert await monitoring.consume([record([])]) == 0


async def test_retention_deletes_only_samples_past_the_window(monitoring: Monitoring) -> None:
    gpu_id = uuid.uuid4()
    now = datetime.now(UTC)
    hours = monitoring.app.retention_hours
    await monitoring.consume(
        [
            record(
                [
                    (gpu_id, None, 1.0, now - timedelta(hours=hours + 1)),
                    (gpu_id, None, 2.0, now - timedelta(hours=1)),
                ]
            )
        ]
    )
    await monitoring.app.prune_once()  # one round, as the runtime calls it every sweep interval
    (kept,) = await monitoring.rows("SELECT gpu_utilization FROM gpu_metrics WHERE gpu_id = :g", g=gpu_id)
    assert kept.gpu_utilization == 2


async def test_utilization_needs_credentials_and_is_empty_for_a_new_organization(
    monitoring: Monitoring,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await monitoring.stub.GetUtilization(monitoring_pb2.GetUtilizationRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = await monitoring.stub.GetUtilization(
        monitoring_pb2.GetUtilizationRequest(hours=720), metadata=monitoring.identity.key(uuid.uuid4())
    )
    assert reply.hours == 720 and list(reply.gpus) == []
