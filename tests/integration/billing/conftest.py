"""Billing in-process: its gRPC servicer on a free port over the real PostgreSQL, with a fake identity
mapping test keys to principals (tests/fake_identity.py), plus helpers to build job events, feed them to
the consumer's sink and read what billing wrote."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from gpufleet.v1 import billing_pb2_grpc, identity_pb2_grpc
from sqlalchemy import text

from services.billing.bootstrap import BillingApp, bootstrap
from services.billing.config import BillingSettings
from services.billing.domain.costs import JobCost
from services.billing.entrypoints.consumers import to_command
from services.billing.entrypoints.grpc_server import SERVICE_NAMES
from services.billing.service_layer.handlers import Dependencies, handle
from shared.contracts import jobs
from shared.db import Database
from shared.embedded.postgres import free_port
from shared.events import Envelope
from shared.grpc import Authenticator, channel, serve
from tests.fake_identity import FakeIdentity


@dataclass
class Billing:
    db: Database
    settings: BillingSettings
    identity: FakeIdentity
    app: BillingApp
    stub: billing_pb2_grpc.BillingServiceStub

    async def rows(self, sql: str, **params: Any) -> list:
        async with self.db.transaction(system=True) as s:
            return list((await s.execute(text(sql), params)).all())

    async def consume(self, envelope: Envelope) -> JobCost | None:
        return await consume(self.app.deps, envelope)


async def consume(deps: Dependencies, envelope: Envelope) -> JobCost | None:
    """What the job-event consumer does with one delivery (converter, then handler), minus the broker;
    the cost when this delivery billed the job."""
    cmd = to_command(envelope)
    return None if cmd is None else await handle(cmd, deps)


@pytest.fixture(scope="session")
async def identity() -> AsyncIterator[tuple[FakeIdentity, str]]:
    fake = FakeIdentity()
    target = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        target,
        [(identity_pb2_grpc.add_IdentityServiceServicer_to_server, fake)],
        ["gpufleet.v1.IdentityService"],
    )
    yield fake, target
    await server.stop(None)


@pytest.fixture(scope="session")
async def billing(migrate_schema, identity) -> AsyncIterator[Billing]:
    fake, identity_target = identity
    url = await migrate_schema("billing")
    settings = BillingSettings(
        billing_database_url=url,
        kafka_bootstrap_servers="127.0.0.1:1",  # tests that need the broker override it
        identity_grpc_target=identity_target,
        auth_cache_seconds=0,
    )
    db = Database(url, "billing", pool_size=4)
    auth = Authenticator(identity_target, ttl=0)
    app = bootstrap(settings, db=db, auth=auth)
    listen = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        listen, [(add, servicer) for add, servicer, _ in app.grpc_services], SERVICE_NAMES
    )
    client = channel(listen)
    yield Billing(db, settings, fake, app, billing_pb2_grpc.BillingServiceStub(client))
    await client.close()
    await server.stop(None)
    await auth.close()
    await db.dispose()


def gpu(price: str, gpu_type: str = "a100") -> jobs.GpuAllocationV1:
    return jobs.GpuAllocationV1(
        gpu_id=uuid.uuid4(), gpu_index=0, gpu_type=gpu_type, cost_per_hour=Decimal(price)
    )


def job_event(
    org: uuid.UUID,
    allocation: list[jobs.GpuAllocationV1],
    *,
    held: timedelta = timedelta(minutes=30),
    event_type: str = jobs.JOB_SUCCEEDED,
    job_id: uuid.UUID | None = None,
    attempt: int = 1,
    scheduled: datetime | None = None,
) -> Envelope:
    """A job event as the scheduler publishes it; terminal ones carry the finished snapshot."""
    scheduled = scheduled or datetime.now(UTC) - timedelta(hours=2)
    terminal = event_type in jobs.TERMINAL_EVENTS
    status = {
        jobs.JOB_SUCCEEDED: "succeeded",
        jobs.JOB_FAILED: "failed",
        jobs.JOB_CANCELLED: "cancelled",
        jobs.JOB_TIMED_OUT: "timed_out",
        jobs.JOB_STARTED: "running",
        jobs.JOB_SCHEDULED: "scheduled",
    }.get(event_type, "queued")
    snapshot = jobs.JobSnapshotV1(
        job_id=job_id or uuid.uuid4(),
        organization_id=org,
        user_id=uuid.uuid4(),
        status=status,  # type: ignore[arg-type]
        command="python train.py",
        gpu_count=max(len(allocation), 1),
        gpu_memory_mb=1024,
        priority=0,
        allocation=allocation,
        created_at=scheduled - timedelta(minutes=1),
        scheduled_at=scheduled if allocation else None,
        finished_at=scheduled + held if terminal else None,
        attempt=attempt,
    )
    return Envelope(
        type=event_type,
        source="gpufleet/scheduler",
        data=jobs.JobEventV1(job=snapshot),
        subject=str(snapshot.job_id),
        organization_id=str(org),
    )


def requeued_event(
    org: uuid.UUID,
    allocation: list[jobs.GpuAllocationV1],
    *,
    held: timedelta,
    scheduled: datetime,
    job_id: uuid.UUID | None = None,
    attempt: int = 1,
) -> Envelope:
    """Attempt ``attempt`` lost its node: the snapshot is already the next attempt, queued and holding
    nothing; ``ended_attempt`` carries what the lost one held and for how long."""
    queued = job_event(org, [], event_type=jobs.JOB_SUBMITTED, job_id=job_id, attempt=attempt + 1)
    lost = jobs.EndedAttemptV1(
        attempt=attempt, allocation=allocation, scheduled_at=scheduled, released_at=scheduled + held
    )
    return Envelope(
        type=jobs.JOB_REQUEUED,
        source="gpufleet/scheduler",
        data=jobs.JobEventV1(
            job=queued.data.job, previous_status="running", reason="lost: the agent died", ended_attempt=lost
        ),
        subject=str(queued.data.job.job_id),
        organization_id=str(org),
    )
