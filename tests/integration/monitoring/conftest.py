"""Monitoring in-process: its gRPC servicer on a free port over the real PostgreSQL, with the fake identity
mapping test keys to principals (tests/fake_identity.py), plus builders of agents' metric records and of
the scheduler's job events (which decide whose a sample is: docs/attribution.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from gpufleet.v1 import identity_pb2_grpc, monitoring_pb2_grpc
from sqlalchemy import text

from services.monitoring.bootstrap import MonitoringApp, bootstrap
from services.monitoring.config import MonitoringSettings
from services.monitoring.entrypoints.consumers import to_command
from services.monitoring.entrypoints.grpc_server import SERVICE_NAMES
from services.monitoring.entrypoints.output_consumers import to_attempt
from services.monitoring.output_bootstrap import OutputApp, bootstrap_output
from services.monitoring.service_layer import output_commands, output_handlers
from services.monitoring.service_layer.handlers import Dependencies, handle
from shared.contracts import jobs
from shared.contracts.metrics import GPU_METRICS_SAMPLED, GpuMetricsSampledV1, GpuSampleV1
from shared.db import Database
from shared.embedded.postgres import free_port
from shared.events import Envelope
from shared.grpc import Authenticator, channel, serve
from tests.fake_identity import FakeIdentity


@dataclass
class Monitoring:
    db: Database
    settings: MonitoringSettings
    identity: FakeIdentity
    app: MonitoringApp
    stub: monitoring_pb2_grpc.MonitoringServiceStub
    output: OutputApp

    async def rows(self, sql: str, *, org: uuid.UUID | None = None, **params: Any) -> list:
        """Run ``sql`` as the tenant ``org``, or in system scope when ``org`` is None."""
        scope: dict[str, Any] = {"org_id": org} if org else {"system": True}
        async with self.db.transaction(**scope) as s:
            return list((await s.execute(text(sql), params)).all())

    async def consume(self, batch: list[Envelope]) -> int:
        return await consume(self.app.deps, batch)

    async def jobs(self, *events: Envelope) -> None:
        """What the job-topic consumer of monitoring does with one batch, minus the broker."""
        await record_jobs(self.output, *events)

    async def allocate(
        self,
        gpus: list[uuid.UUID],
        org: uuid.UUID,
        node: uuid.UUID,
        start: datetime,
        end: datetime | None = None,
        job: uuid.UUID | None = None,
        project: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """The scheduler placed a job of ``org`` (in ``project``, None: none) on ``gpus`` of ``node`` at
        ``start`` (and, with ``end``, it has ended): its events, through the consumer's converter and
        handler. Returns the job id."""
        job = job or uuid.uuid4()
        events = [job_event(jobs.JOB_SCHEDULED, job, org, node, gpus, start, project=project)]
        if end is not None:
            events.append(job_event(jobs.JOB_SUCCEEDED, job, org, node, gpus, start, end, project=project))
        await self.jobs(*events)
        return job

    def bound_key(self, org: uuid.UUID, project: uuid.UUID | str) -> tuple[tuple[str, str], ...]:
        """Metadata carrying a fresh key of ``org`` bound to ``project`` (as identity states a
        project-bound key in its Principal: ``project_id``)."""
        return bound_key(self.identity, org, project)


def bound_key(
    identity: FakeIdentity, org: uuid.UUID, project: uuid.UUID | str, role: str = "member"
) -> tuple[tuple[str, str], ...]:
    metadata = identity.key(org, role)
    secret = metadata[0][1].removeprefix("Bearer ")
    identity.keys[secret].project_id = str(project)
    return metadata


async def record_jobs(output: OutputApp, *events: Envelope) -> None:
    cmds = tuple(cmd for e in events if (cmd := to_attempt(e)) is not None)
    await output_handlers.handle(output_commands.RecordJobAttempts(cmds), output.deps)


def job_event(
    kind: str,
    job: uuid.UUID,
    org: uuid.UUID,
    node: uuid.UUID,
    gpus: list[uuid.UUID],
    start: datetime,
    end: datetime | None = None,
    attempt: int = 1,
    placed: bool = True,
    project: uuid.UUID | None = None,
) -> Envelope:
    """A job event as the scheduler publishes it (services/scheduler/adapters/events.py): placed on
    ``gpus`` of ``node`` at ``start``, or (``placed=False``) not placed yet; the job in ``project``."""
    status = {
        jobs.JOB_SUBMITTED: "queued",
        jobs.JOB_SCHEDULED: "scheduled",
        jobs.JOB_STARTED: "running",
        jobs.JOB_SUCCEEDED: "succeeded",
        jobs.JOB_FAILED: "failed",
    }
    snapshot = jobs.JobSnapshotV1.model_validate(
        {
            "job_id": job,
            "organization_id": org,
            "project_id": project,
            "status": status.get(kind, "running"),
            "command": "x",
            "gpu_count": len(gpus),
            "gpu_memory_mb": 1,
            "priority": 50,
            "created_at": start,
            "attempt": attempt,
            "node_id": node if placed else None,
            "allocation": []
            if not placed
            else [
                {"gpu_id": g, "gpu_index": i, "gpu_type": "a100", "cost_per_hour": "1"}
                for i, g in enumerate(gpus)
            ],
            "placements": [{"node_id": node, "rank": 0, "gpu_ids": gpus}] if placed else [],
            "scheduled_at": start if placed else None,
            "finished_at": end,
        }
    )
    return Envelope(type=kind, source="gpufleet/scheduler", data=jobs.JobEventV1(job=snapshot))


async def consume(deps: Dependencies, batch: list[Envelope]) -> int:
    """What the metrics consumer does with one batch (converter, then handler), minus the broker; how
    many samples were new."""
    cmd = to_command(batch)
    return 0 if cmd is None else await handle(cmd, deps)


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
async def monitoring(migrate_schema, identity) -> AsyncIterator[Monitoring]:
    fake, identity_target = identity
    url = await migrate_schema("monitoring")
    settings = MonitoringSettings(
        monitoring_database_url=url,
        kafka_bootstrap_servers="127.0.0.1:1",  # tests that need the broker override it
        identity_grpc_target=identity_target,
        auth_cache_seconds=0,
    )
    db = Database(url, "monitoring", pool_size=4)
    auth = Authenticator(identity_target, ttl=0)
    app = bootstrap(settings, db=db, auth=auth)
    listen = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        listen, [(add, servicer) for add, servicer, _ in app.grpc_services], SERVICE_NAMES
    )
    client = channel(listen)
    output = bootstrap_output(settings, db=db, auth=auth)
    yield Monitoring(db, settings, fake, app, monitoring_pb2_grpc.MonitoringServiceStub(client), output)
    await client.close()
    await server.stop(None)
    await auth.close()
    await db.dispose()


def record(
    samples: list[tuple[uuid.UUID, uuid.UUID | None, float, datetime]], node: uuid.UUID | None = None
) -> Envelope:
    """One node's record: (gpu id, the organization the agent claims or None, utilization %, time) per
    sample. The claim decides nothing: a hold (:meth:`Monitoring.allocate`) does."""
    return Envelope(
        type=GPU_METRICS_SAMPLED,
        source="gpufleet/agent",
        data=GpuMetricsSampledV1(
            node_id=node or uuid.uuid4(),
            samples=[
                GpuSampleV1(
                    gpu_id=gpu_id,
                    gpu_name=f"GPU {i}",
                    gpu_type="a100",
                    timestamp=at,
                    gpu_utilization=util,
                    memory_used_mb=int(util) * 100,
                    memory_total_mb=40_960,
                    power_usage_w=200.0,
                    temperature_c=60.0,
                    organization_id=org,
                    job_id=uuid.uuid4() if org else None,
                )
                for i, (gpu_id, org, util, at) in enumerate(samples)
            ],
        ),
    )
