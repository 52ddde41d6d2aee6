"""Proto messages -> response bodies. Proto3 has no null: an empty string means absent, here ``None``."""

from __future__ import annotations

from datetime import datetime

from gpufleet.v1 import (
    billing_pb2,
    common_pb2,
    fleet_pb2,
    identity_pb2,
    monitoring_pb2,
    notification_pb2,
    scheduler_pb2,
)

from services.gateway.entrypoints import responses as out
from services.gateway.entrypoints.responses_webhooks import (
    RotatedJobWebhookSecretOut,
    RotatedWebhookSecretOut,
)
from shared.errors import InvalidArgument
from shared.wire import opt, parse_ts


class UpstreamContractError(Exception):
    """A service answered something outside its contract: its fault, never the caller's (502)."""


def _at(value: str) -> datetime | None:
    try:
        return parse_ts(value)
    except InvalidArgument as exc:
        raise UpstreamContractError(f"not an RFC 3339 timestamp: {value!r}") from exc


def principal(p: common_pb2.Principal) -> out.PrincipalOut:
    return out.PrincipalOut(
        organization_id=p.organization_id,
        user_id=p.user_id,
        role=p.role,
        api_key_id=p.api_key_id,
        scopes=list(p.scopes),
        project_id=opt(p.project_id),
        project_roles=[out.ProjectRoleOut(project_id=r.project_id, role=r.role) for r in p.project_roles],
    )


def organization(o: identity_pb2.Organization) -> out.OrganizationOut:
    return out.OrganizationOut(id=o.id, name=o.name, created_at=_at(o.created_at))


def _api_key_fields(k: identity_pb2.ApiKey) -> dict:
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "scopes": list(k.scopes),
        "user_id": opt(k.user_id),
        "created_at": _at(k.created_at),
        "expires_at": _at(k.expires_at),
        "last_used_at": _at(k.last_used_at),
        "revoked_at": _at(k.revoked_at),
        "project_id": opt(k.project_id),
    }


def api_key(k: identity_pb2.ApiKey) -> out.ApiKeyOut:
    return out.ApiKeyOut(**_api_key_fields(k))


def created_api_key(c: identity_pb2.CreatedApiKey) -> out.CreatedApiKeyOut:
    return out.CreatedApiKeyOut(**_api_key_fields(c.key), secret=c.secret)


def gpu(g: fleet_pb2.Gpu) -> out.GpuOut:
    return out.GpuOut(
        id=g.id,
        name=g.name,
        gpu_type=g.gpu_type,
        node_id=g.node_id,
        node_name=g.node_name,
        index=g.index,
        uuid=g.uuid,
        memory_total_mb=g.memory_total_mb,
        status=g.status,
        in_use=g.in_use,
        cost_per_hour=g.cost_per_hour,
        provider=g.provider,
        is_spot=g.is_spot,
        dedicated=g.dedicated,
        last_active=_at(g.last_active),
    )


def gpu_type(t: fleet_pb2.GpuType) -> out.GpuTypeOut:
    return out.GpuTypeOut(
        name=t.name,
        vendor=t.vendor,
        model=t.model,
        memory_mb=t.memory_mb,
        reference_price_per_hour=t.reference_price_per_hour,
    )


def job(j: scheduler_pb2.Job) -> out.JobOut:
    return out.JobOut(
        id=j.id,
        organization_id=j.organization_id,
        user_id=opt(j.user_id),
        name=opt(j.name),
        command=j.command,
        gpu_count=j.gpu_count,
        gpu_memory_mb=j.gpu_memory_mb,
        gpu_type=opt(j.gpu_type),
        priority=j.priority,
        status=j.status,
        node_id=opt(j.node_id),
        gpu_ids=list(j.gpu_ids),
        webhook_url=opt(j.webhook_url),
        exit_code=j.exit_code if j.has_exit_code else None,
        output_tail=opt(j.output_tail),
        error_message=opt(j.error_message),
        cancel_requested=j.cancel_requested,
        created_at=_at(j.created_at),
        scheduled_at=_at(j.scheduled_at),
        started_at=_at(j.started_at),
        finished_at=_at(j.finished_at),
        history=[out.StatusChangeOut(status=h.status, at=_at(h.at), reason=opt(h.reason)) for h in j.history],
        # An older scheduler sends none of the engine's fields: one node, first attempt.
        nodes=j.nodes or 1,
        cpu_cores=j.cpu_cores,
        ram_mb=j.ram_mb,
        time_limit_seconds=j.time_limit_seconds or None,
        held=j.held,
        no_requeue=j.no_requeue,
        attempt=j.attempt or 1,
        pending_reason=(
            out.PendingReasonOut(code=j.pending_reason.code, message=j.pending_reason.message)
            if j.HasField("pending_reason") and j.pending_reason.code
            else None
        ),
        queue_position=j.queue_position or None,
        estimated_start=_at(j.estimated_start),
        placements=[
            out.JobPlacementOut(node_id=p.node_id, rank=p.rank, gpu_ids=list(p.gpu_ids)) for p in j.placements
        ],
        project_id=opt(j.project_id),
        image=opt(j.image),
    )


def job_batch(r: scheduler_pb2.SubmitJobsResponse) -> out.JobBatchOut:
    return out.JobBatchOut(jobs=[job(j) for j in r.jobs])


def job_list(r: scheduler_pb2.ListJobsResponse) -> out.JobListOut:
    return out.JobListOut(jobs=[job(j) for j in r.jobs], next_cursor=opt(r.next_cursor))


def job_cost(c: billing_pb2.JobCost) -> out.JobCostOut:
    return out.JobCostOut(
        job_id=c.job_id,
        organization_id=c.organization_id,
        currency=c.currency,
        total_cost=c.total_cost,
        # An older billing sends no gross or credit: everything it recorded was charged.
        gross_cost=c.gross_cost or c.total_cost,
        credit=c.credit or "0",
        gpu_count=c.gpu_count,
        held_seconds=c.held_seconds,
        recorded_at=_at(c.recorded_at),
        project_id=opt(c.project_id),
        lines=[
            out.CostLineOut(
                gpu_id=line.gpu_id,
                gpu_type=line.gpu_type,
                cost_per_hour=line.cost_per_hour,
                start_time=_at(line.start_time),
                end_time=_at(line.end_time),
                seconds=line.seconds,
                cost=line.cost,
                attempt=line.attempt or 1,
                credit=line.credit or "0",
            )
            for line in c.lines
        ],
        attempts=[
            out.AttemptCostOut(
                attempt=a.attempt,
                outcome=opt(a.outcome),
                gross_cost=a.gross_cost,
                credit=a.credit,
                net_cost=a.net_cost,
                gpu_count=a.gpu_count,
                held_seconds=a.held_seconds,
                start_time=_at(a.start_time),
                end_time=_at(a.end_time),
            )
            for a in c.attempts
        ],
    )


def job_cost_list(r: billing_pb2.ListJobCostsResponse) -> out.JobCostListOut:
    return out.JobCostListOut(
        costs=[job_cost(c) for c in r.costs], next_cursor=opt(r.next_cursor), total_cost=r.total_cost or "0"
    )


def utilization(r: monitoring_pb2.GetUtilizationResponse) -> out.UtilizationOut:
    return out.UtilizationOut(
        hours=r.hours,
        gpus=[
            out.GpuUtilizationOut(
                gpu_id=g.gpu_id,
                gpu_name=g.gpu_name,
                gpu_type=g.gpu_type,
                avg_utilization=g.avg_utilization,
                max_utilization=g.max_utilization,
                avg_memory_used_mb=g.avg_memory_used_mb,
                samples=g.samples,
                first_sample_at=_at(g.first_sample_at),
                last_sample_at=_at(g.last_sample_at),
            )
            for g in r.gpus
        ],
    )


def _webhook_fields(w: notification_pb2.Webhook) -> dict:
    return {
        "id": w.id,
        "url": w.url,
        "events": list(w.events),
        "description": opt(w.description),
        "status": w.status,
        "is_active": w.is_active,
        "error_rate": w.error_rate,
        "consecutive_failures": w.consecutive_failures,
        "last_used": _at(w.last_used),
        "created_at": _at(w.created_at),
    }


def webhook(w: notification_pb2.Webhook) -> out.WebhookOut:
    return out.WebhookOut(**_webhook_fields(w))


def created_webhook(c: notification_pb2.CreatedWebhook) -> out.CreatedWebhookOut:
    return out.CreatedWebhookOut(**_webhook_fields(c.webhook), secret=c.secret)


def rotated_webhook_secret(r: notification_pb2.RotatedWebhookSecret) -> RotatedWebhookSecretOut:
    return RotatedWebhookSecretOut(
        **_webhook_fields(r.webhook),
        secret=r.secret,
        previous_secret_expires_at=_at(r.previous_secret_expires_at),
    )


def rotated_job_webhook_secret(r: notification_pb2.JobWebhookSecret) -> RotatedJobWebhookSecretOut:
    return RotatedJobWebhookSecretOut(
        secret=r.secret, previous_secret_expires_at=_at(r.previous_secret_expires_at)
    )


def delivery(d: notification_pb2.Delivery) -> out.DeliveryOut:
    return out.DeliveryOut(
        id=d.id,
        event_id=d.event_id,
        webhook_id=opt(d.webhook_id),
        url=d.url,
        event_type=d.event_type,
        job_id=opt(d.job_id),
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=_at(d.next_attempt_at),
        created_at=_at(d.created_at),
        delivered_at=_at(d.delivered_at),
        attempt_log=[
            out.DeliveryAttemptOut(
                attempt=a.attempt,
                at=_at(a.at),
                response_status=a.response_status or None,
                error=opt(a.error),
                duration_ms=a.duration_ms,
            )
            for a in d.attempt_log
        ],
    )
