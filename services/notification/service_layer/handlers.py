"""Use cases: webhook management for tenants, fan-out of job events, and the delivery bookkeeping."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from shared.errors import InvalidArgument, NotFound, PermissionDenied

from ..domain import events, signing, targets
from ..domain.model import Delivery, SendResult, Webhook, may_read_job_webhook_secret
from ..domain.retry import RetryPolicy
from . import commands
from .unit_of_work import DueDelivery, UnitOfWorkFactory
from .wakeup import Wakeup

log = logging.getLogger("gpufleet.notification")

JOB_CONSUMER = "notification.job-webhooks"
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_DESCRIPTION = 500
WEBHOOK_DISABLED = "webhook disabled after repeated failures"


@dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    wakeup: Wakeup
    allow_private_targets: bool


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str


# --- tenants ---------------------------------------------------------------------------------------


async def create_webhook(cmd: commands.CreateWebhook, deps: Dependencies) -> CreatedWebhook:
    url = targets.webhook_url(cmd.url, allow_private=deps.allow_private_targets)
    names = events.event_filter(cmd.events)
    description = (cmd.description or "").strip() or None
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"description is longer than {MAX_DESCRIPTION} characters", field="description")
    secret = signing.generate_secret()
    webhook = Webhook(
        id=uuid.uuid4(),
        organization_id=cmd.organization_id,
        url=url,
        events=names,
        signing_secret=secret,
        description=description,
    )
    async with deps.uow(org_id=cmd.organization_id) as uow:
        webhook = await uow.add_webhook(webhook)
    return CreatedWebhook(webhook=webhook, secret=secret)


async def list_webhooks(organization_id: UUID, deps: Dependencies) -> list[Webhook]:
    async with deps.uow(org_id=organization_id) as uow:
        return await uow.webhooks()


async def delete_webhook(cmd: commands.DeleteWebhook, deps: Dependencies) -> None:
    try:
        webhook_id = UUID(cmd.webhook_id)
    except (ValueError, AttributeError, TypeError) as exc:
        raise NotFound("webhook not found") from exc
    async with deps.uow(org_id=cmd.organization_id) as uow:
        if not await uow.delete_webhook(webhook_id):
            raise NotFound("webhook not found")


async def list_deliveries(cmd: commands.ListDeliveries, deps: Dependencies) -> list[Delivery]:
    if cmd.limit is not None and cmd.limit < 0:
        raise InvalidArgument("limit must not be negative", field="limit")
    limit = min(cmd.limit or DEFAULT_PAGE, MAX_PAGE)
    async with deps.uow(org_id=cmd.organization_id) as uow:
        return await uow.deliveries(cmd.webhook_id, cmd.job_id, limit)


async def get_job_webhook_secret(cmd: commands.GetJobWebhookSecret, deps: Dependencies) -> str:
    if not may_read_job_webhook_secret(cmd.role):
        raise PermissionDenied("only owners and admins may read the job webhook secret")
    async with deps.uow(org_id=cmd.organization_id) as uow:
        return await uow.job_webhook_secret(cmd.organization_id, signing.generate_secret())


# --- the job event consumer ------------------------------------------------------------------------


def plan_deliveries(cmd: commands.NotifyJobEvent, hooks: list[Webhook]) -> list[Delivery]:
    """One delivery per subscribed active webhook, plus the job's own URL; at most one per URL."""
    name = events.public_name(cmd.event_type)
    if name is None:
        return []
    body = events.webhook_body(name, cmd.occurred_at, cmd.job)
    urls: list[tuple[UUID | None, str]] = [
        (h.id, h.url) for h in hooks if h.is_active and events.subscribes_to(h.events, name)
    ]
    if cmd.webhook_url:
        urls.append((None, cmd.webhook_url))
    planned: dict[str, Delivery] = {}
    for webhook_id, url in urls:
        planned.setdefault(
            url,
            Delivery(
                id=uuid.uuid4(),
                organization_id=cmd.organization_id,
                webhook_id=webhook_id,
                url=url,
                event_id=cmd.event_id,
                event_type=name,
                job_id=cmd.job_id,
                payload=body,
            ),
        )
    return list(planned.values())


async def notify_job_event(cmd: commands.NotifyJobEvent, deps: Dependencies) -> int:
    """Record the deliveries an event asks for (once per event, however often it arrives)."""
    async with deps.uow(system=True) as uow:
        if not await uow.claim(JOB_CONSUMER, cmd.event_id):
            return 0
        planned = plan_deliveries(cmd, await uow.active_webhooks(cmd.organization_id))
        if any(d.webhook_id is None for d in planned):
            await uow.job_webhook_secret(cmd.organization_id, signing.generate_secret())
        now = await uow.now()
        for d in planned:
            d.next_attempt_at = now
        created = await uow.add_deliveries(planned)
    if created:
        deps.wakeup.set()
    return created


# --- the delivery worker's bookkeeping ------------------------------------------------------------


async def claim_due_deliveries(
    uow_factory: UnitOfWorkFactory, limit: int, lease: timedelta
) -> list[DueDelivery]:
    """Due deliveries to send now; those whose webhook was switched off are closed instead."""
    async with uow_factory(system=True) as uow:
        claimed = await uow.claim_due(limit, lease)
        ready = []
        for due in claimed:
            if due.webhook_active:
                ready.append(due)
            else:
                due.delivery.abandon(WEBHOOK_DISABLED)
                await uow.save_delivery(due.delivery)
        return ready


async def record_delivery_result(
    uow_factory: UnitOfWorkFactory,
    delivery_id: UUID,
    result: SendResult,
    started_at: datetime,
    policy: RetryPolicy,
    rand: Callable[[], float],
) -> None:
    async with uow_factory(system=True) as uow:
        peek = await uow.delivery(delivery_id)
        if peek is None:
            return  # its webhook was deleted meanwhile (deliveries go with it)
        # Lock order webhook -> delivery, the same as deleting a webhook (which cascades).
        webhook = await uow.webhook(peek.webhook_id, for_update=True) if peek.webhook_id else None
        delivery = await uow.delivery(delivery_id, for_update=True)
        if delivery is None:
            return
        now = await uow.now()
        attempt = delivery.record_attempt(result, started_at, now, policy, rand)
        await uow.save_delivery(delivery, [attempt])
        if webhook is not None:
            if webhook.record_attempt(result.ok, now):
                log.warning(
                    "webhook disabled after consecutive failures",
                    extra={"webhook_id": str(webhook.id), "failures": webhook.consecutive_failures},
                )
            await uow.save_webhook(webhook)


async def seconds_until_next_due(uow_factory: UnitOfWorkFactory) -> float | None:
    async with uow_factory(system=True) as uow:
        return await uow.seconds_until_next_due()
