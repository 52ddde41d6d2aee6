"""Fake gRPC servicers for the gateway's downstream services.

Each one checks the forwarded key like the real services do, records every call (method, request,
metadata) and returns canned protos, or raises the ``shared.errors`` error a test queued for a method.
They run behind ``shared.grpc.grpc_service``, so errors reach the gateway as real gRPC statuses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from gpufleet.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    common_pb2,
    fleet_pb2,
    fleet_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)

from shared import api_keys
from shared.errors import Unauthenticated
from shared.grpc import bearer, grpc_service

TEST_KEY = api_keys.compose("test" * 10)  # well formed: the gateway checks the checksum
ORG_ID = "0b6c2a53-7f0e-4b7a-9d55-3c1f7a2d9e10"
USER_ID = "5d8e9f10-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
KEY_ID = "9a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
JOB_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
GPU_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
NODE_ID = "16fd2706-8baf-433b-82eb-8c7fada847da"
WEBHOOK_ID = "e4eaaaf2-d142-11e1-b3e4-080027620cdd"
T0 = "2025-01-02T03:04:05Z"
T1 = "2025-01-02T03:05:05.500000Z"


@dataclass
class Call:
    method: str
    request: Any
    metadata: dict[str, str]


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, Exception] = field(default_factory=dict)

    def reset(self) -> None:
        self.calls.clear()
        self.failures.clear()

    def fail_next(self, method: str, error: Exception) -> None:
        self.failures[method] = error

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def tenant_call(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        metadata = {
            k: (v if isinstance(v, str) else v.decode()) for k, v in context.invocation_metadata() or ()
        }
        self.calls.append(Call(method, request, metadata))
        if bearer(context) != TEST_KEY:
            raise Unauthenticated("invalid API key")
        error = self.failures.pop(method, None)
        if error is not None:
            raise error


def principal() -> common_pb2.Principal:
    return common_pb2.Principal(
        organization_id=ORG_ID, user_id=USER_ID, role="owner", api_key_id=KEY_ID, scopes=["jobs:write"]
    )


def api_key(revoked: bool = False) -> identity_pb2.ApiKey:
    return identity_pb2.ApiKey(
        id=KEY_ID,
        name="ci",
        prefix="gpf_test",
        scopes=["jobs:write"],
        created_at=T0,
        expires_at="",
        last_used_at=T1,
        revoked_at=T1 if revoked else "",
        user_id=USER_ID,
    )


def job(request: scheduler_pb2.SubmitJobRequest | None = None, status: str = "queued") -> scheduler_pb2.Job:
    r = request or scheduler_pb2.SubmitJobRequest(command="echo hi", gpu_count=1, priority=50)
    j = scheduler_pb2.Job(
        id=JOB_ID,
        organization_id=ORG_ID,
        user_id=USER_ID,
        name=r.name,
        command=r.command,
        gpu_count=r.gpu_count,
        gpu_memory_mb=r.gpu_memory_mb,
        gpu_type=r.gpu_type,
        priority=r.priority,
        status=status,
        webhook_url=r.webhook_url,
        created_at=T0,
        history=[scheduler_pb2.StatusChange(status="queued", at=T0, reason="")],
        nodes=r.nodes or 1,
        cpu_cores=r.cpu_cores,
        ram_mb=r.ram_mb,
        time_limit_seconds=r.time_limit_seconds,
        held=r.hold,
        no_requeue=r.no_requeue,
        attempt=1,
    )
    if status == "queued":
        j.queue_position = 3
        j.estimated_start = T1
        j.pending_reason.code, j.pending_reason.message = (
            ("held", "the job is held") if r.hold else ("no_capacity", "no node has 2 free GPUs")
        )
    if status == "succeeded":
        j.node_id, j.scheduled_at, j.started_at, j.finished_at = NODE_ID, T0, T0, T1
        j.gpu_ids.append(GPU_ID)
        j.attempt = 2
        j.placements.append(scheduler_pb2.JobPlacement(node_id=NODE_ID, rank=0, gpu_ids=[GPU_ID]))
        j.has_exit_code, j.exit_code, j.output_tail = True, 0, "hello\n"
        j.history.extend(
            [
                scheduler_pb2.StatusChange(status=s, at=T1, reason="")
                for s in ("scheduled", "running", "succeeded")
            ]
        )
    return j


@grpc_service
class FakeIdentity(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.authenticate_calls = 0

    async def Authenticate(self, request, context):
        self.authenticate_calls += 1
        if request.api_key != TEST_KEY:
            raise Unauthenticated("invalid API key")
        return principal()

    async def GetOrganization(self, request, context):
        self.rec.tenant_call("GetOrganization", request, context)
        return identity_pb2.Organization(id=ORG_ID, name="Acme Research", created_at=T0)

    async def CreateApiKey(self, request, context):
        self.rec.tenant_call("CreateApiKey", request, context)
        key = api_key()
        key.name = request.name
        del key.scopes[:]
        key.scopes.extend(request.scopes)
        return identity_pb2.CreatedApiKey(key=key, secret="gpf_new_secret")

    async def ListApiKeys(self, request, context):
        self.rec.tenant_call("ListApiKeys", request, context)
        return identity_pb2.ListApiKeysResponse(keys=[api_key()])

    async def RevokeApiKey(self, request, context):
        self.rec.tenant_call("RevokeApiKey", request, context)
        return api_key(revoked=True)


@grpc_service
class FakeFleet(fleet_pb2_grpc.FleetServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def ListGpus(self, request, context):
        self.rec.tenant_call("ListGpus", request, context)
        return fleet_pb2.ListGpusResponse(
            gpus=[
                fleet_pb2.Gpu(
                    id=GPU_ID,
                    name="node-1/gpu0",
                    gpu_type="h100-80gb",
                    node_id=NODE_ID,
                    node_name="node-1",
                    index=0,
                    uuid="GPU-abc",
                    memory_total_mb=81920,
                    status="available",
                    in_use=False,
                    cost_per_hour="2.50",
                    provider="on-prem",
                    is_spot=False,
                    dedicated=True,
                    last_active="",
                )
            ]
        )

    async def ListNodes(self, request, context):
        self.rec.tenant_call("ListNodes", request, context)
        return fleet_pb2.ListNodesResponse(
            nodes=[
                fleet_pb2.Node(
                    id=NODE_ID, hostname="node-1", provider="on-prem", status="online", last_heartbeat=T0
                )
            ]
        )

    async def ListGpuTypes(self, request, context):
        self.rec.tenant_call("ListGpuTypes", request, context)
        return fleet_pb2.ListGpuTypesResponse(
            gpu_types=[
                fleet_pb2.GpuType(
                    name="h100-80gb",
                    vendor="nvidia",
                    model="NVIDIA H100 80GB HBM3",
                    memory_mb=81920,
                    reference_price_per_hour="2.50",
                )
            ]
        )


@grpc_service
class FakeScheduler(scheduler_pb2_grpc.JobServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def SubmitJob(self, request, context):
        self.rec.tenant_call("SubmitJob", request, context)
        return job(request)

    async def SubmitJobs(self, request, context):
        self.rec.tenant_call("SubmitJobs", request, context)
        jobs = [job(r) for r in request.jobs]
        for i, j in enumerate(jobs):  # each its own id, stable across calls (as a keyed replay's)
            j.id = str(uuid.uuid5(uuid.UUID(JOB_ID), f"{request.idempotency_key}/{i}"))
        return scheduler_pb2.SubmitJobsResponse(jobs=jobs)

    async def GetJob(self, request, context):
        self.rec.tenant_call("GetJob", request, context)
        return job(status="succeeded")

    async def ListJobs(self, request, context):
        self.rec.tenant_call("ListJobs", request, context)
        return scheduler_pb2.ListJobsResponse(jobs=[job(status="succeeded")], next_cursor="cur-2")

    async def CancelJob(self, request, context):
        self.rec.tenant_call("CancelJob", request, context)
        cancelled = job(status="queued")
        cancelled.cancel_requested = True
        return cancelled

    async def HoldJob(self, request, context):
        self.rec.tenant_call("HoldJob", request, context)
        return job(scheduler_pb2.SubmitJobRequest(command="echo hi", gpu_count=1, priority=50, hold=True))

    async def ReleaseJob(self, request, context):
        self.rec.tenant_call("ReleaseJob", request, context)
        return job()

    async def UpdateJobPriority(self, request, context):
        self.rec.tenant_call("UpdateJobPriority", request, context)
        return job(scheduler_pb2.SubmitJobRequest(command="echo hi", gpu_count=1, priority=request.priority))

    async def ListAllocations(self, request, context):
        self.rec.tenant_call("ListAllocations", request, context)
        return scheduler_pb2.ListAllocationsResponse()  # nobody holds anything


@grpc_service
class FakeBilling(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    @staticmethod
    def _cost() -> billing_pb2.JobCost:
        return billing_pb2.JobCost(
            job_id=JOB_ID,
            organization_id=ORG_ID,
            currency="USD",
            total_cost="0.041667",
            gpu_count=1,
            held_seconds="60.5",
            recorded_at=T1,
            lines=[
                billing_pb2.CostLine(
                    gpu_id=GPU_ID,
                    gpu_type="h100-80gb",
                    cost_per_hour="2.50",
                    start_time=T0,
                    end_time=T1,
                    seconds="60.5",
                    cost="0.041667",
                )
            ],
        )

    async def GetJobCost(self, request, context):
        self.rec.tenant_call("GetJobCost", request, context)
        return self._cost()

    async def ListJobCosts(self, request, context):
        self.rec.tenant_call("ListJobCosts", request, context)
        return billing_pb2.ListJobCostsResponse(costs=[self._cost()], next_cursor="", total_cost="0.041667")


@grpc_service
class FakeMonitoring(monitoring_pb2_grpc.MonitoringServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def GetUtilization(self, request, context):
        self.rec.tenant_call("GetUtilization", request, context)
        return monitoring_pb2.GetUtilizationResponse(
            hours=request.hours,
            gpus=[
                monitoring_pb2.GpuUtilization(
                    gpu_id=GPU_ID,
                    gpu_name="node-1/gpu0",
                    gpu_type="h100-80gb",
                    avg_utilization=42.5,
                    max_utilization=99.0,
                    avg_memory_used_mb=1024.0,
                    samples=12,
                    first_sample_at=T0,
                    last_sample_at=T1,
                )
            ],
        )


def webhook() -> notification_pb2.Webhook:
    return notification_pb2.Webhook(
        id=WEBHOOK_ID,
        url="https://example.com/hook",
        events=["job.succeeded"],
        status="active",
        is_active=True,
        error_rate=0.0,
        consecutive_failures=0,
        last_used="",
        created_at=T0,
        description="ci",
    )


@grpc_service
class FakeNotification(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def CreateWebhook(self, request, context):
        self.rec.tenant_call("CreateWebhook", request, context)
        return notification_pb2.CreatedWebhook(webhook=webhook(), secret="whsec_abc")

    async def ListWebhooks(self, request, context):
        self.rec.tenant_call("ListWebhooks", request, context)
        return notification_pb2.ListWebhooksResponse(webhooks=[webhook()])

    async def DeleteWebhook(self, request, context):
        self.rec.tenant_call("DeleteWebhook", request, context)
        return common_pb2.Empty()

    async def ListDeliveries(self, request, context):
        self.rec.tenant_call("ListDeliveries", request, context)
        return notification_pb2.ListDeliveriesResponse(
            deliveries=[
                notification_pb2.Delivery(
                    id="msg_1",
                    webhook_id="",
                    url="https://example.com/job",
                    event_type="job.succeeded",
                    job_id=JOB_ID,
                    status="failed",
                    attempts=1,
                    next_attempt_at=T1,
                    created_at=T0,
                    delivered_at="",
                    attempt_log=[
                        notification_pb2.DeliveryAttempt(
                            attempt=1, at=T0, response_status=0, error="connection refused", duration_ms=12
                        )
                    ],
                )
            ]
        )

    async def GetJobWebhookSecret(self, request, context):
        self.rec.tenant_call("GetJobWebhookSecret", request, context)
        return notification_pb2.JobWebhookSecret(secret="whsec_job")
