"""/v1/webhooks and /v1/webhook-deliveries (notification)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from gpufleet.v1 import common_pb2, notification_pb2

from services.gateway.entrypoints import translate
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep, resource_id
from services.gateway.entrypoints.requests import WebhookCreate
from services.gateway.entrypoints.responses import (
    CreatedWebhookOut,
    DeliveryListOut,
    DeliveryOut,
    JobWebhookSecretOut,
    WebhookListOut,
    WebhookOut,
)
from services.gateway.entrypoints.responses_webhooks import (
    RotatedJobWebhookSecretOut,
    RotatedWebhookSecretOut,
    WebhookSecretRotate,
    WebhookUpdate,
)
from services.gateway.entrypoints.routes import PageSize, problem_responses
from shared.errors import NotFound

router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedWebhookOut,
    responses=problem_responses(400, 409, 422),
    summary="Register a webhook (its secret is shown once)",
)
async def create_webhook(body: WebhookCreate, caller: CallerDep, down: DownstreamDep) -> CreatedWebhookOut:
    created = await down.notification.CreateWebhook(
        notification_pb2.CreateWebhookRequest(
            url=body.url, events=body.events, description=body.description or ""
        ),
        **caller.call,
    )
    return translate.created_webhook(created)


@router.get(
    "/webhooks", response_model=WebhookListOut, responses=problem_responses(), summary="List webhooks"
)
async def list_webhooks(caller: CallerDep, down: DownstreamDep) -> WebhookListOut:
    reply = await down.notification.ListWebhooks(common_pb2.Empty(), **caller.call)
    return WebhookListOut(webhooks=[translate.webhook(w) for w in reply.webhooks])


@router.get(
    "/webhooks/job-secret",
    response_model=JobWebhookSecretOut,
    responses=problem_responses(),
    summary="The secret that signs deliveries to jobs' own webhook_url",
)
async def job_webhook_secret(caller: CallerDep, down: DownstreamDep) -> JobWebhookSecretOut:
    reply = await down.notification.GetJobWebhookSecret(common_pb2.Empty(), **caller.call)
    return JobWebhookSecretOut(secret=reply.secret)


@router.post(
    "/webhooks/job-secret/rotate",
    response_model=RotatedJobWebhookSecretOut,
    responses=problem_responses(422),
    summary="A new job webhook secret (shown once); the old one keeps signing for an overlap",
)
async def rotate_job_webhook_secret(
    caller: CallerDep, down: DownstreamDep, body: WebhookSecretRotate | None = None
) -> RotatedJobWebhookSecretOut:
    request = notification_pb2.RotateJobWebhookSecretRequest()
    if body is not None and body.overlap_seconds is not None:
        request.overlap_seconds = body.overlap_seconds
    reply = await down.notification.RotateJobWebhookSecret(request, **caller.call)
    return translate.rotated_job_webhook_secret(reply)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404),
    summary="Delete a webhook",
)
async def delete_webhook(webhook_id: str, caller: CallerDep, down: DownstreamDep) -> Response:
    await down.notification.DeleteWebhook(
        notification_pb2.DeleteWebhookRequest(id=resource_id(webhook_id)), **caller.call
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    responses=problem_responses(404, 422),
    summary="Change a webhook's URL, events, description or status (fields left out are kept)",
)
async def update_webhook(
    webhook_id: str, body: WebhookUpdate, caller: CallerDep, down: DownstreamDep
) -> WebhookOut:
    request = notification_pb2.UpdateWebhookRequest(id=resource_id(webhook_id))
    given = body.model_fields_set
    if body.url is not None:
        request.url = body.url
    if body.events is not None:
        request.events.SetInParent()
        request.events.names.extend(body.events)
    if "description" in given:
        request.description = body.description or ""  # null: removed
    if body.status is not None:
        request.status = body.status
    return translate.webhook(await down.notification.UpdateWebhook(request, **caller.call))


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    response_model=RotatedWebhookSecretOut,
    responses=problem_responses(404, 422),
    summary="A new signing secret (shown once); the old one keeps signing for an overlap",
)
async def rotate_webhook_secret(
    webhook_id: str,
    caller: CallerDep,
    down: DownstreamDep,
    body: WebhookSecretRotate | None = None,
) -> RotatedWebhookSecretOut:
    request = notification_pb2.RotateWebhookSecretRequest(id=resource_id(webhook_id))
    if body is not None and body.overlap_seconds is not None:
        request.overlap_seconds = body.overlap_seconds
    return translate.rotated_webhook_secret(
        await down.notification.RotateWebhookSecret(request, **caller.call)
    )


@router.post(
    "/webhook-deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses=problem_responses(404, 409),
    summary="Send a delivery again now (same event id), whether it was delivered or failed",
)
async def redeliver_delivery(delivery_id: str, caller: CallerDep, down: DownstreamDep) -> DeliveryOut:
    reply = await down.notification.RedeliverDelivery(
        notification_pb2.RedeliverDeliveryRequest(id=resource_id(delivery_id)), **caller.call
    )
    return translate.delivery(reply)


@router.get(
    "/webhook-deliveries",
    response_model=DeliveryListOut,
    responses=problem_responses(422),
    summary="Recent deliveries, newest first",
)
async def list_deliveries(
    caller: CallerDep,
    down: DownstreamDep,
    job_id: Annotated[str | None, Query(description="Only deliveries about this job.")] = None,
    webhook_id: Annotated[str | None, Query(description="Only deliveries to this webhook.")] = None,
    limit: PageSize = None,
) -> DeliveryListOut:
    try:
        job = resource_id(job_id) if job_id else ""
        hook = resource_id(webhook_id) if webhook_id else ""
    except NotFound:
        # A filter on an id that cannot exist matches nothing; it is not an error.
        return DeliveryListOut(deliveries=[])
    reply = await down.notification.ListDeliveries(
        notification_pb2.ListDeliveriesRequest(job_id=job, webhook_id=hook, limit=limit or 0), **caller.call
    )
    return DeliveryListOut(deliveries=[translate.delivery(d) for d in reply.deliveries])
