"""Pure parts of the adapters and entrypoints: event mapping, the catalog cache, wire translation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from gpufleet.v1 import fleet_pb2

from services.scheduler.adapters import events
from services.scheduler.adapters.fleet_catalog import FleetGpuTypeCatalog
from services.scheduler.domain.model import GpuAllocation, Job, Outcome
from services.scheduler.domain.spec import job_spec
from services.scheduler.entrypoints.agent_api import assignment_message
from services.scheduler.entrypoints.consumers import to_inventory
from services.scheduler.entrypoints.grpc_server import job_message
from shared.contracts import fleet, jobs
from shared.errors import Unauthenticated, Unavailable
from shared.events import decode

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def finished_job() -> Job:
    job = Job.submit(
        job_spec(command="echo", gpu_count=2, gpu_type="h100-80gb"),
        job_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        at=T0,
    )
    job.schedule(
        uuid.uuid4(),
        (
            GpuAllocation(uuid.uuid4(), 3, "h100-80gb", Decimal("2.9900")),
            GpuAllocation(uuid.uuid4(), 5, "h100-80gb", Decimal("3.1000")),
        ),
        T0 + timedelta(seconds=1),
    )
    job.start(None, now=T0 + timedelta(seconds=2))
    job.finish(Outcome(exit_code=2, output_tail="boom"), None, now=T0 + timedelta(seconds=10))
    return job


def test_every_change_becomes_a_contract_event_with_the_snapshot_of_its_moment():
    job = finished_job()
    envelopes = [events.envelope(c) for c in job.events]
    assert [e.type for e in envelopes] == [
        jobs.JOB_SUBMITTED,
        jobs.JOB_SCHEDULED,
        jobs.JOB_STARTED,
        jobs.JOB_FAILED,
    ]
    decoded = [decode(e.headers(), e.value(), jobs.EVENT_TYPES) for e in envelopes]
    scheduled = decoded[1].data
    assert scheduled.job.status == "scheduled" and scheduled.previous_status == "queued"
    assert [a.cost_per_hour for a in scheduled.job.allocation] == [Decimal("2.9900"), Decimal("3.1000")]
    assert scheduled.job.scheduled_at == T0 + timedelta(seconds=1) and scheduled.job.finished_at is None
    failed = decoded[3].data.job
    assert failed.exit_code == 2 and failed.finished_at == T0 + timedelta(seconds=10)
    assert decoded[0].subject == str(job.id) and decoded[0].organization_id == str(job.organization_id)
    assert decoded[0].source == "gpufleet/scheduler"


def test_job_and_assignment_messages():
    job = finished_job()
    msg = job_message(job, with_history=True)
    assert msg.status == "failed" and msg.has_exit_code and msg.exit_code == 2
    assert [h.status for h in msg.history] == ["queued", "scheduled", "running", "failed"]
    assert msg.finished_at.endswith("Z") and msg.gpu_ids == [str(g) for g in job.gpu_ids]
    assert list(job_message(job).history) == []
    assert list(assignment_message(job).gpu_indices) == [3, 5]
    queued = Job.submit(
        job_spec(command="echo", gpu_count=1),
        job_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        user_id=None,
        at=T0,
    )
    m = job_message(queued)
    assert not m.has_exit_code and m.node_id == "" and m.user_id == "" and m.scheduled_at == ""


def test_fleet_snapshot_to_inventory():
    snap = fleet.GpuSnapshotV1(
        gpu_id=uuid.uuid4(),
        node_id=uuid.uuid4(),
        node_name="n1",
        index=2,
        uuid="GPU-x",
        name="H100",
        gpu_type="h100-80gb",
        memory_total_mb=81559,
        cost_per_hour=Decimal("2.99"),
        provider="aws",
        status="available",
        revision=7,
        changed_at=T0,
    )
    gpu = to_inventory(snap)
    assert (gpu.device_index, gpu.memory_total_mb, gpu.revision, gpu.organization_id) == (2, 81559, 7, None)


class _Rpc(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")


class FakeStub:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.fail: grpc.StatusCode | None = None
        self.names = ["h100-80gb"]

    async def ListGpuTypes(self, request, metadata=(), timeout=None):
        self.calls.append(tuple(metadata))
        if self.fail is not None:
            raise _Rpc(self.fail)
        return fleet_pb2.ListGpuTypesResponse(gpu_types=[fleet_pb2.GpuType(name=n) for n in self.names])


async def test_catalog_caches_forwards_credentials_and_survives_a_fleet_outage():
    now = [0.0]
    catalog = FleetGpuTypeCatalog("127.0.0.1:1", ttl=30, clock=lambda: now[0])
    stub = FakeStub()
    catalog._stub = stub  # the seam: the network stub
    try:
        assert await catalog.names("Bearer a") == {"h100-80gb"}
        stub.names = ["h100-80gb", "l40s"]
        assert await catalog.names("Bearer b") == {"h100-80gb"}  # cached
        assert stub.calls == [(("authorization", "Bearer a"),)]
        now[0] = 31
        assert await catalog.names("Bearer b") == {"h100-80gb", "l40s"}
        now[0] = 62
        stub.fail = grpc.StatusCode.UNAVAILABLE
        assert await catalog.names("Bearer b") == {"h100-80gb", "l40s"}  # stale beats refusing every submit
        stub.fail = grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(Unauthenticated):
            await catalog.names("Bearer bad")
    finally:
        await catalog.close()


async def test_catalog_without_any_answer_is_unavailable():
    catalog = FleetGpuTypeCatalog("127.0.0.1:1")
    stub = FakeStub()
    stub.fail = grpc.StatusCode.UNAVAILABLE
    catalog._stub = stub
    try:
        with pytest.raises(Unavailable):
            await catalog.names(None)
        assert stub.calls == [()]
    finally:
        await catalog.close()
