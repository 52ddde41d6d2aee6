"""Use cases: webhook management for tenants, fan-out of job and cost events (to webhooks and to the
organization's event log), the event stream's reads, and the delivery bookkeeping.

Every handler is ``async def x(cmd, deps) -> result``, registered in :data:`HANDLERS`; entrypoints and
the delivery worker call :func:`handle`.
"""

from __future__ import annotations

import copy
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from shared import scopes
from shared.contracts.limits import DEFAULT_PAGE, MAX_DESCRIPTION, MAX_PAGE
from shared.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from shared.handlers import dispatch

from ..domain import event_log, events, projects, signing, targets
from ..domain.model import (
    AlreadyPending,
    Delivery,
    Outcome,
    RecordedAttempt,
    Webhook,
    WebhookStatus,
    abandon_reason,
    may_read_job_webhook_secret,
    secret_overlap,
)
from ..domain.retry import RetryPolicy
from . import audit, commands
from .event_stream import PAGE, EventSignal
from .unit_of_work import (
    DeliveryMetrics,
    DueDelivery,
    EventPage,
    NoMetrics,
    PendingSummary,
    UnitOfWorkFactory,
)
from .wakeup import Wakeup

log = logging.getLogger("gpufleet.notification")

JOB_CONSUMER = "notification.job-webhooks"
COST_CONSUMER = "notification.cost-events"
# What the metrics call a delivery closed unsent because its webhook was switched off.
DISABLED = "disabled"


@dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    wakeup: Wakeup = field(default_factory=Wakeup)
    allow_private_targets: bool = False
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    metrics: DeliveryMetrics = field(default_factory=NoMetrics)
    rand: Callable[[], float] = random.random  # the retry jitter
    events: EventSignal = field(default_factory=EventSignal)  # wakes this process's event streams


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str


@dataclass(frozen=True)
class RotatedSecret:
    webhook: Webhook  # previous_secret_expires_at: until when the replaced secret still signs
    secret: str  # the new one, shown once


def _parse_id(value: str, what: str) -> UUID:
    """A malformed id names nothing: NOT_FOUND, the answer for a missing (or another
    organization's) object."""
    try:
        return UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise NotFound(f"{what} not found") from exc


def _description(value: str | None) -> str | None:
    description = (value or "").strip() or None
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"description is longer than {MAX_DESCRIPTION} characters", field="description")
    return description


# --- tenants ---------------------------------------------------------------------------------------


async def create_webhook(cmd: commands.CreateWebhook, deps: Dependencies) -> CreatedWebhook:
    projects.refuse_bound_key(cmd.bound_project, "create the organization's webhooks")
    url = targets.webhook_url(cmd.url, allow_private=deps.allow_private_targets)
    names = events.event_filter(cmd.events)
    description = _description(cmd.description)
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
        await uow.record_audit(audit.webhook_change("webhook.create", webhook, before=None, after=webhook))
    return CreatedWebhook(webhook=webhook, secret=secret)


async def list_webhooks(cmd: commands.ListWebhooks, deps: Dependencies) -> list[Webhook]:
    projects.refuse_bound_key(cmd.bound_project, "list the organization's webhooks")
    async with deps.uow(org_id=cmd.organization_id) as uow:
        return await uow.webhooks()


async def delete_webhook(cmd: commands.DeleteWebhook, deps: Dependencies) -> None:
    projects.refuse_bound_key(cmd.bound_project, "delete the organization's webhooks")
    webhook_id = _parse_id(cmd.webhook_id, "webhook")
    async with deps.uow(org_id=cmd.organization_id) as uow:
        gone = next((w for w in await uow.webhooks() if w.id == webhook_id), None)  # for the audit record
        if not await uow.delete_webhook(webhook_id):
            raise NotFound("webhook not found")
        if gone is not None:
            await uow.record_audit(audit.webhook_change("webhook.delete", gone, before=gone, after=None))


async def update_webhook(cmd: commands.UpdateWebhook, deps: Dependencies) -> Webhook:
    """Change what was given, checked as at creation (the URL by the same SSRF rules); one
    ``webhook.update`` audit record when anything changed. A new URL also takes the webhook's pending
    deliveries (the next attempt goes there)."""
    projects.refuse_bound_key(cmd.bound_project, "change the organization's webhooks")
    webhook_id = _parse_id(cmd.webhook_id, "webhook")
    url = (
        targets.webhook_url(cmd.url, allow_private=deps.allow_private_targets)
        if cmd.url is not None
        else None
    )
    names = events.event_filter(cmd.events) if cmd.events is not None else None
    status = None
    if cmd.status is not None:
        try:
            status = WebhookStatus(cmd.status)
        except ValueError as exc:
            raise InvalidArgument("status is active or disabled", field="status") from exc
    async with deps.uow(org_id=cmd.organization_id) as uow:
        webhook = await uow.webhook(webhook_id, for_update=True)  # row-level security: only the caller's
        if webhook is None:
            raise NotFound("webhook not found")
        before = copy.deepcopy(webhook)
        if url is not None:
            webhook.url = url
        if names is not None:
            webhook.events = names
        if cmd.description is not None:
            webhook.description = _description(cmd.description)
        if status is not None:
            webhook.set_status(status, await uow.now())
        if webhook != before:
            await uow.update_webhook(webhook)
            if webhook.url != before.url:
                await uow.repoint_pending_deliveries(webhook.id, webhook.url)
            await uow.record_audit(
                audit.webhook_change("webhook.update", webhook, before=before, after=webhook)
            )
    return webhook


async def rotate_webhook_secret(cmd: commands.RotateWebhookSecret, deps: Dependencies) -> RotatedSecret:
    """A new signing secret, answered once; the replaced one keeps signing beside it for the overlap,
    so receivers switch without a delivery they cannot verify."""
    projects.refuse_bound_key(cmd.bound_project, "rotate the organization's webhook secrets")
    webhook_id = _parse_id(cmd.webhook_id, "webhook")
    try:
        overlap = secret_overlap(cmd.overlap_seconds)
    except ValueError as exc:
        raise InvalidArgument(str(exc), field="overlap_seconds") from exc
    secret = signing.generate_secret()
    async with deps.uow(org_id=cmd.organization_id) as uow:
        webhook = await uow.webhook(webhook_id, for_update=True)
        if webhook is None:
            raise NotFound("webhook not found")
        before = copy.deepcopy(webhook)
        webhook.rotate_secret(secret, overlap, await uow.now())
        await uow.save_webhook_secret(webhook)
        await uow.record_audit(audit.secret_rotation(before, webhook))
    return RotatedSecret(webhook=webhook, secret=secret)


async def redeliver_delivery(cmd: commands.RedeliverDelivery, deps: Dependencies) -> Delivery:
    """Send a settled delivery again from now, as a fresh retry schedule, with the same event id
    (the ``webhook-id`` the receiver de-duplicates on) and body, to its webhook's current URL.
    CONFLICT while it is still pending (one redelivery at a time); FAILED_PRECONDITION when its
    webhook is disabled (re-enable it first)."""
    projects.refuse_bound_key(cmd.bound_project, "redeliver webhook deliveries")
    delivery_id = _parse_id(cmd.delivery_id, "delivery")
    async with deps.uow(org_id=cmd.organization_id) as uow:
        peek = await uow.delivery(delivery_id)
        if peek is None:
            raise NotFound("delivery not found")
        # Lock order webhook -> delivery, as the worker's recording and a webhook's deletion take them.
        webhook = await uow.webhook(peek.webhook_id, for_update=True) if peek.webhook_id else None
        delivery = await uow.delivery(delivery_id, for_update=True)
        if delivery is None or (peek.webhook_id is not None and webhook is None):
            raise NotFound("delivery not found")
        if webhook is not None and not webhook.is_active:
            raise FailedPrecondition("the delivery's webhook is disabled: re-enable it first")
        before = copy.deepcopy(delivery)
        try:
            delivery.redeliver(await uow.now())
        except AlreadyPending as exc:
            raise Conflict(str(exc)) from exc
        delivery = await uow.restart_delivery(delivery, webhook.url if webhook is not None else None)
        await uow.record_audit(audit.redelivery(before, delivery))
    deps.wakeup.set()
    return delivery


async def list_deliveries(cmd: commands.ListDeliveries, deps: Dependencies) -> list[Delivery]:
    if cmd.limit is not None and cmd.limit < 0:
        raise InvalidArgument("limit must not be negative", field="limit")
    if cmd.webhook_id is not None:
        projects.refuse_bound_key(cmd.bound_project, "read an organization webhook's deliveries")
    limit = min(cmd.limit or DEFAULT_PAGE, MAX_PAGE)
    async with deps.uow(org_id=cmd.organization_id) as uow:
        return await uow.deliveries(cmd.webhook_id, cmd.job_id, limit, project=cmd.bound_project)


async def get_job_webhook_secret(cmd: commands.GetJobWebhookSecret, deps: Dependencies) -> str:
    projects.refuse_bound_key(cmd.bound_project, "read the job webhook secret")
    if not may_read_job_webhook_secret(cmd.role):
        raise PermissionDenied("only owners and admins may read the job webhook secret")
    async with deps.uow(org_id=cmd.organization_id) as uow:
        return await uow.job_webhook_secret(cmd.organization_id, signing.generate_secret())


@dataclass(frozen=True)
class RotatedJobSecret:
    secret: str  # the new one
    previous_expires_at: datetime | None  # until when the replaced one signs too (None: it does not)


async def rotate_job_webhook_secret(
    cmd: commands.RotateJobWebhookSecret, deps: Dependencies
) -> RotatedJobSecret:
    """The organization's job webhook secret replaced, the old one signing beside it for the overlap
    (as for a webhook's secret); owners and admins, as for reading it."""
    projects.refuse_bound_key(cmd.bound_project, "rotate the job webhook secret")
    if not may_read_job_webhook_secret(cmd.role):
        raise PermissionDenied("only owners and admins may rotate the job webhook secret")
    try:
        overlap = secret_overlap(cmd.overlap_seconds)
    except ValueError as exc:
        raise InvalidArgument(str(exc), field="overlap_seconds") from exc
    secret = signing.generate_secret()
    async with deps.uow(org_id=cmd.organization_id) as uow:
        until = await uow.rotate_job_webhook_secret(cmd.organization_id, secret, overlap)
        await uow.record_audit(audit.job_secret_rotation(cmd.organization_id, until))
    return RotatedJobSecret(secret=secret, previous_expires_at=until)


# --- the job and cost event consumers -----------------------------------------------------------

TenantEvent = commands.NotifyJobEvent | commands.NotifyCostEvent


def plan_deliveries(cmd: TenantEvent, hooks: list[Webhook]) -> list[Delivery]:
    """One delivery per subscribed active webhook, plus a job event's own URL; at most one per URL.
    Every delivery of one event carries the event's CloudEvent id (the ``webhook-id``) and one body."""
    name = events.public_name(cmd.event_type)
    if name is None:
        return []
    data = cmd.job if isinstance(cmd, commands.NotifyJobEvent) else cmd.payload
    body = events.webhook_body(cmd.event_id, name, cmd.occurred_at, data)
    urls: list[tuple[UUID | None, str]] = [
        (h.id, h.url) for h in hooks if h.is_active and events.subscribes_to(h.events, name)
    ]
    if isinstance(cmd, commands.NotifyJobEvent) and cmd.webhook_url:
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
                project_id=cmd.project_id,
            ),
        )
    return list(planned.values())


def logged_event(cmd: TenantEvent) -> event_log.NewEvent:
    """The event as the organization's log keeps it: the CloudEvent the topic carried."""
    return event_log.NewEvent(
        organization_id=cmd.organization_id,
        event_id=cmd.event_id,
        type=cmd.event_type,
        job_id=cmd.job_id,
        occurred_at=cmd.occurred_at,
        project_id=cmd.project_id,
        cloudevent=event_log.cloudevent_json(
            event_id=cmd.event_id,
            source=cmd.source,
            type=cmd.event_type,
            time=cmd.occurred_at,
            subject=cmd.subject,
            organization_id=cmd.organization_id,
            data=cmd.payload,
        ),
    )


async def _fan_out(cmds: Sequence[TenantEvent], consumer: str, deps: Dependencies) -> int:
    """Record the deliveries events ask for and append them to their organizations' logs, in the
    transaction that claims them: once per event, however often it arrives. A batch is one transaction
    and a few statements whatever its size (one claim of every id, one read of the organizations'
    active webhooks, one insert of every delivery, one append of every event), not statements per
    event. The logs are appended last (each organization's events keep their topic order): an append
    holds the organizations' log locks until the commit, taken in a fixed order so that two replicas'
    batches never deadlock."""
    if not cmds:
        return 0
    created = 0
    logged: set[UUID] = set()
    async with deps.uow(system=True) as uow:
        fresh = await uow.claim_many(consumer, [c.event_id for c in cmds])
        todo: list[TenantEvent] = []
        for cmd in cmds:
            if cmd.event_id in fresh:
                fresh.discard(cmd.event_id)  # a record twice in one batch counts once, like one after it
                todo.append(cmd)
        if todo:
            hooks = await uow.active_webhooks_of(list(dict.fromkeys(c.organization_id for c in todo)))
            planned = [d for cmd in todo for d in plan_deliveries(cmd, hooks.get(cmd.organization_id, []))]
            if planned:
                # A job's own webhook_url is signed with its organization's job webhook secret.
                own = {d.organization_id for d in planned if d.webhook_id is None}
                await uow.ensure_job_webhook_secrets({org: signing.generate_secret() for org in own})
                created = await uow.add_deliveries(planned)  # due at once: next_attempt_at unset
            logged = await uow.append_events([logged_event(cmd) for cmd in todo])
    if created:
        deps.wakeup.set()
    for org in logged:
        deps.events.notify(org)
    return created


async def notify_job_event(cmd: commands.NotifyJobEvent, deps: Dependencies) -> int:
    """Deliveries for a job event (and its log entry); returns how many deliveries were new."""
    return await _fan_out([cmd], JOB_CONSUMER, deps)


async def notify_cost_event(cmd: commands.NotifyCostEvent, deps: Dependencies) -> int:
    """Deliveries for a cost event to the webhooks subscribed to it (and its log entry)."""
    return await _fan_out([cmd], COST_CONSUMER, deps)


async def notify_events(cmd: commands.NotifyEvents, deps: Dependencies) -> int:
    """A batch of one topic's events (all job events or all cost events) in one transaction."""
    if not cmd.events:
        return 0
    consumer = JOB_CONSUMER if isinstance(cmd.events[0], commands.NotifyJobEvent) else COST_CONSUMER
    return await _fan_out(cmd.events, consumer, deps)


# --- the event stream ------------------------------------------------------------------------------


async def open_event_stream(cmd: commands.OpenEventStream, deps: Dependencies) -> commands.ReadEvents:
    """Check the request against the caller's scopes and the log, and say where the stream starts."""
    types = event_log.readable_types(scopes.granted(cmd.scopes), cmd.types)
    after = event_log.decode_cursor(cmd.after) if cmd.after else None
    async with deps.uow(org_id=cmd.organization_id) as uow:
        head = await uow.event_log_head(cmd.organization_id)
    if after is not None:
        # A cursor older than what retention kept simply resumes at the oldest kept event.
        event_log.check_position(after, head)
        start = after
    elif cmd.from_start:
        start = 0
    else:
        start = head
    return commands.ReadEvents(cmd.organization_id, start, types, cmd.job_id, PAGE, cmd.bound_project)


async def read_events(cmd: commands.ReadEvents, deps: Dependencies) -> EventPage:
    async with deps.uow(org_id=cmd.organization_id) as uow:
        return await uow.events_after(
            cmd.organization_id, cmd.after, cmd.types, cmd.job_id, cmd.limit, project=cmd.project_id
        )


async def prune_event_log(cmd: commands.PruneEventLog, deps: Dependencies) -> int:
    async with deps.uow(system=True) as uow:
        removed = await uow.prune_event_log(cmd.max_age, cmd.keep)
    if removed:
        log.info("event log pruned", extra={"events": removed})
    return removed


# --- the delivery worker's bookkeeping ------------------------------------------------------------


async def claim_due_deliveries(cmd: commands.ClaimDueDeliveries, deps: Dependencies) -> list[DueDelivery]:
    """Due deliveries to send now; those whose webhook was switched off are closed instead."""
    closed = 0
    async with deps.uow(system=True) as uow:
        claimed = await uow.claim_due(cmd.limit, cmd.lease)
        ready = []
        for due in claimed:
            if due.webhook_active:
                ready.append(due)
            elif due.delivery.abandon(abandon_reason(due.disabled_reason)):
                await uow.save_delivery(due.delivery)
                closed += 1
    for _ in range(closed):
        deps.metrics.outcome(DISABLED)
    return ready


async def record_delivery_result(cmd: commands.RecordDeliveryResult, deps: Dependencies) -> Outcome | None:
    """Record one attempt against its delivery and its webhook's health, in one transaction; None when
    the delivery is gone (its webhook was deleted meanwhile, deliveries go with it).

    The webhook row is locked first, so attempts of one webhook are accounted in the order their
    recording commits: that is the "completion order" ``Webhook.consecutive_failures`` is defined in."""
    async with deps.uow(system=True) as uow:
        peek = await uow.delivery(cmd.delivery_id)
        if peek is None:
            return None
        # Lock order webhook -> delivery, the same as deleting a webhook (which cascades).
        webhook = await uow.webhook(peek.webhook_id, for_update=True) if peek.webhook_id else None
        delivery = await uow.delivery(cmd.delivery_id, for_update=True)
        if delivery is None:
            return None
        now = await uow.now()
        recorded = _account(cmd, delivery, webhook, now, deps)
        await uow.save_delivery(delivery, [recorded.attempt])
        if webhook is not None:
            await uow.save_webhook(webhook)
    deps.metrics.outcome(recorded.outcome.value)
    return recorded.outcome


async def record_delivery_results(
    cmd: commands.RecordDeliveryResults, deps: Dependencies
) -> list[Outcome | None]:
    """:func:`record_delivery_result` for several attempts, in the order given (their completion
    order), in one transaction and a few statements; the outcome of each (None: its delivery is gone).

    Locks as the single form does, webhooks before deliveries, each kind in the order of their ids, so
    batches of two replicas (or a batch and a webhook's deletion) never deadlock."""
    if not cmd.results:
        return []
    outcomes: list[Outcome | None] = []
    async with deps.uow(system=True) as uow:
        ids = list(dict.fromkeys(r.delivery_id for r in cmd.results))
        hook_of = await uow.delivery_webhooks(ids)
        hooks = await uow.webhooks_for_update(sorted({w for w in hook_of.values() if w is not None}))
        found = await uow.deliveries_for_update(sorted(hook_of))
        now = await uow.now() if found else None
        attempts = []
        changed: dict[UUID, Delivery] = {}
        touched: dict[UUID, Webhook] = {}
        for result in cmd.results:
            delivery = found.get(result.delivery_id)
            if delivery is None or now is None:
                outcomes.append(None)
                continue
            webhook = hooks.get(delivery.webhook_id) if delivery.webhook_id else None
            recorded = _account(result, delivery, webhook, now, deps)
            attempts.append(recorded.attempt)
            changed[delivery.id] = delivery
            if webhook is not None:
                touched[webhook.id] = webhook
            outcomes.append(recorded.outcome)
        await uow.save_deliveries(list(changed.values()), attempts)
        await uow.save_webhooks(list(touched.values()))
    for outcome in outcomes:
        if outcome is not None:
            deps.metrics.outcome(outcome.value)
    return outcomes


def _account(
    cmd: commands.RecordDeliveryResult,
    delivery: Delivery,
    webhook: Webhook | None,
    now: datetime,
    deps: Dependencies,
) -> RecordedAttempt:
    """One attempt against its (locked) delivery and webhook, in memory."""
    recorded = delivery.record_attempt(cmd.result, cmd.started_at, now, deps.policy, deps.rand)
    if webhook is not None and webhook.record_attempt(cmd.result, recorded.outcome, now):
        log.warning(
            "webhook disabled",
            extra={
                "webhook_id": str(webhook.id),
                "reason": webhook.disabled_reason,
                "failures": webhook.consecutive_failures,
            },
        )
    return recorded


async def measure_pending(cmd: commands.MeasurePending, deps: Dependencies) -> PendingSummary:
    async with deps.uow(system=True) as uow:
        summary = await uow.pending_summary()
    deps.metrics.due(summary.due)
    return summary


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.CreateWebhook: create_webhook,
    commands.ListWebhooks: list_webhooks,
    commands.DeleteWebhook: delete_webhook,
    commands.UpdateWebhook: update_webhook,
    commands.RotateWebhookSecret: rotate_webhook_secret,
    commands.RedeliverDelivery: redeliver_delivery,
    commands.ListDeliveries: list_deliveries,
    commands.GetJobWebhookSecret: get_job_webhook_secret,
    commands.RotateJobWebhookSecret: rotate_job_webhook_secret,
    commands.NotifyJobEvent: notify_job_event,
    commands.NotifyCostEvent: notify_cost_event,
    commands.NotifyEvents: notify_events,
    commands.OpenEventStream: open_event_stream,
    commands.ReadEvents: read_events,
    commands.PruneEventLog: prune_event_log,
    commands.ClaimDueDeliveries: claim_due_deliveries,
    commands.RecordDeliveryResult: record_delivery_result,
    commands.RecordDeliveryResults: record_delivery_results,
    commands.MeasurePending: measure_pending,
}


async def handle(cmd: object, deps: Dependencies) -> Any:
    """Run the handler registered for ``cmd``'s type."""
    return await dispatch(HANDLERS, cmd, deps)
