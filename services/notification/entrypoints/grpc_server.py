"""gRPC servicer: translates wire messages to commands and results back. No business branching here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, notification_pb2, notification_pb2_grpc

from shared import scopes
from shared.errors import Unauthenticated
from shared.grpc import Authenticator, bearer, grpc_service, streaming_call, tenant_of
from shared.wire import opt, ts, uuid_arg

from ..domain.model import Delivery, Webhook
from ..service_layer import commands, event_stream, handlers
from ..service_layer.handlers import Dependencies

SERVICE_NAME = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
SERVICE_NAMES = [SERVICE_NAME]
STREAM_EVENTS = "NotificationService/StreamEvents"  # its entry in shared/scopes.py

log = logging.getLogger("gpufleet.notification.grpc")


def bound_project(principal: common_pb2.Principal) -> UUID | None:
    """The project the caller's key is bound to (None: unbound); a malformed one is no credentials
    (fail closed: never read as unbound)."""
    if not principal.project_id:
        return None
    try:
        return UUID(principal.project_id)
    except ValueError as exc:
        raise Unauthenticated("the API key's project is not valid") from exc


def _webhook(w: Webhook) -> notification_pb2.Webhook:
    return notification_pb2.Webhook(
        id=str(w.id),
        url=w.url,
        events=list(w.events),
        status=w.status.value,
        is_active=w.is_active,
        error_rate=w.error_rate,
        consecutive_failures=w.consecutive_failures,
        last_used=ts(w.last_used),
        created_at=ts(w.created_at),
        description=w.description or "",
    )


def _delivery(d: Delivery) -> notification_pb2.Delivery:
    return notification_pb2.Delivery(
        id=str(d.id),
        webhook_id=str(d.webhook_id) if d.webhook_id else "",
        url=d.url,
        event_type=d.event_type,
        job_id=str(d.job_id) if d.job_id else "",
        status=d.status.value,
        attempts=d.attempts,
        next_attempt_at=ts(d.next_attempt_at),
        created_at=ts(d.created_at),
        delivered_at=ts(d.delivered_at),
        event_id=str(d.event_id),
        attempt_log=[
            notification_pb2.DeliveryAttempt(
                attempt=a.attempt,
                at=ts(a.at),
                response_status=a.response_status or 0,
                error=a.error or "",
                duration_ms=a.duration_ms,
            )
            for a in d.attempt_log
        ],
    )


@dataclass(frozen=True)
class StreamSettings:
    heartbeat_seconds: float = 15.0
    reauth_seconds: float = 5.0


HEARTBEAT = notification_pb2.StreamedEvent(heartbeat=True)


def _frame(item: event_stream.StreamItem) -> notification_pb2.StreamedEvent:
    if isinstance(item, event_stream.Heartbeat):
        return HEARTBEAT
    return notification_pb2.StreamedEvent(cursor=item.cursor, type=item.type, cloudevent_json=item.cloudevent)


@grpc_service
class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, deps: Dependencies, auth: Authenticator, stream: StreamSettings | None = None) -> None:
        self.deps, self.auth = deps, auth
        self.stream = stream or StreamSettings()

    async def CreateWebhook(
        self, request: notification_pb2.CreateWebhookRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.CreatedWebhook:
        principal = await self.auth.principal(context, write=True)
        created: handlers.CreatedWebhook = await handlers.handle(
            commands.CreateWebhook(
                organization_id=tenant_of(principal),
                url=request.url,
                events=tuple(request.events),
                description=opt(request.description),
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return notification_pb2.CreatedWebhook(webhook=_webhook(created.webhook), secret=created.secret)

    async def ListWebhooks(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> notification_pb2.ListWebhooksResponse:
        principal = await self.auth.principal(context)
        hooks: list[Webhook] = await handlers.handle(
            commands.ListWebhooks(tenant_of(principal), bound_project=bound_project(principal)), self.deps
        )
        return notification_pb2.ListWebhooksResponse(webhooks=[_webhook(w) for w in hooks])

    async def DeleteWebhook(
        self, request: notification_pb2.DeleteWebhookRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        principal = await self.auth.principal(context, write=True)
        await handlers.handle(
            commands.DeleteWebhook(
                organization_id=tenant_of(principal),
                webhook_id=request.id,
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return common_pb2.Empty()

    async def UpdateWebhook(
        self, request: notification_pb2.UpdateWebhookRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.Webhook:
        principal = await self.auth.principal(context, write=True)
        webhook: Webhook = await handlers.handle(
            commands.UpdateWebhook(
                organization_id=tenant_of(principal),
                webhook_id=request.id,
                url=request.url if request.HasField("url") else None,
                events=tuple(request.events.names) if request.HasField("events") else None,
                description=request.description if request.HasField("description") else None,
                status=request.status if request.HasField("status") else None,
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return _webhook(webhook)

    async def RotateWebhookSecret(
        self, request: notification_pb2.RotateWebhookSecretRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.RotatedWebhookSecret:
        principal = await self.auth.principal(context, write=True)
        rotated: handlers.RotatedSecret = await handlers.handle(
            commands.RotateWebhookSecret(
                organization_id=tenant_of(principal),
                webhook_id=request.id,
                overlap_seconds=request.overlap_seconds if request.HasField("overlap_seconds") else None,
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return notification_pb2.RotatedWebhookSecret(
            webhook=_webhook(rotated.webhook),
            secret=rotated.secret,
            previous_secret_expires_at=ts(rotated.webhook.previous_secret_expires_at),
        )

    async def RedeliverDelivery(
        self, request: notification_pb2.RedeliverDeliveryRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.Delivery:
        principal = await self.auth.principal(context, write=True)
        delivery: Delivery = await handlers.handle(
            commands.RedeliverDelivery(
                organization_id=tenant_of(principal),
                delivery_id=request.id,
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return _delivery(delivery)

    async def ListDeliveries(
        self, request: notification_pb2.ListDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.ListDeliveriesResponse:
        principal = await self.auth.principal(context)
        query = commands.ListDeliveries(
            organization_id=tenant_of(principal),
            webhook_id=uuid_arg(request.webhook_id, "webhook_id") if request.webhook_id else None,
            job_id=uuid_arg(request.job_id, "job_id") if request.job_id else None,
            limit=request.limit or None,
            bound_project=bound_project(principal),
        )
        found: list[Delivery] = await handlers.handle(query, self.deps)
        return notification_pb2.ListDeliveriesResponse(deliveries=[_delivery(d) for d in found])

    async def GetJobWebhookSecret(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> notification_pb2.JobWebhookSecret:
        principal = await self.auth.principal(context)
        secret: str = await handlers.handle(
            commands.GetJobWebhookSecret(
                organization_id=tenant_of(principal),
                role=principal.role,
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return notification_pb2.JobWebhookSecret(secret=secret)

    async def RotateJobWebhookSecret(
        self, request: notification_pb2.RotateJobWebhookSecretRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.JobWebhookSecret:
        principal = await self.auth.principal(context, write=True)
        rotated: handlers.RotatedJobSecret = await handlers.handle(
            commands.RotateJobWebhookSecret(
                organization_id=tenant_of(principal),
                role=principal.role,
                overlap_seconds=request.overlap_seconds if request.HasField("overlap_seconds") else None,
                bound_project=bound_project(principal),
            ),
            self.deps,
        )
        return notification_pb2.JobWebhookSecret(
            secret=rotated.secret, previous_secret_expires_at=ts(rotated.previous_expires_at)
        )

    async def StreamEvents(
        self, request: notification_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[notification_pb2.StreamedEvent]:
        """Server streaming is an async generator (what gRPC's and OpenTelemetry's aio servers
        iterate), which ``grpc_service`` does not wrap: :func:`streaming_call` gives it the same
        scope check, error rendering and metrics."""
        async with streaming_call(context, "NotificationServicer", STREAM_EVENTS.split("/", 1)[1]):
            principal = await self._caller(context)
            start: commands.ReadEvents = await handlers.handle(
                commands.OpenEventStream(
                    organization_id=tenant_of(principal),
                    scopes=tuple(principal.scopes),
                    after=request.after or None,
                    from_start=request.from_start,
                    job_id=uuid_arg(request.job_id, "job_id") if request.job_id else None,
                    types=tuple(request.types),
                    bound_project=bound_project(principal),
                ),
                self.deps,
            )

            async def read(query: commands.ReadEvents) -> event_stream.EventPage:
                page: event_stream.EventPage = await handlers.handle(query, self.deps)
                return page

            async def recheck_key() -> None:
                # A revoked or expired key ends the stream (identity's answer is cached a second at most).
                await self._caller(context)

            async for item in event_stream.stream(
                start,
                read,
                self.deps.events,
                heartbeat_seconds=self.stream.heartbeat_seconds,
                check=recheck_key,
                check_seconds=self.stream.reauth_seconds,
            ):
                yield _frame(item)

    async def _caller(self, context: grpc.aio.ServicerContext) -> common_pb2.Principal:
        principal = await self.auth.authenticate(bearer(context))
        scopes.require(principal.scopes, STREAM_EVENTS)
        return principal
