"""The unit of work over PostgreSQL: one ``Database.transaction`` per unit, rows <-> domain objects.

Tenant units run with ``org_id`` (row-level security hides other organizations' rows); the consumer and
the delivery worker run with ``system=True``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit as shared_audit
from shared import consumers
from shared.contracts.audit import AuditRecordedV1
from shared.db import Database
from shared.events import Envelope

from ..domain.event_log import LoggedEvent, NewEvent
from ..domain.model import Delivery, DeliveryAttempt, DeliveryStatus, Webhook, WebhookStatus
from ..service_layer.unit_of_work import (
    DueDelivery,
    EventPage,
    NotificationUnitOfWork,
    PendingSummary,
    UnitOfWorkFactory,
)
from .orm import AttemptRow, DeliveryRow, EventLogHeadRow, EventLogRow, JobWebhookSecretRow, WebhookRow

WEBHOOKS: Table = WebhookRow.__table__  # type: ignore[attr-defined]
SECRETS: Table = JobWebhookSecretRow.__table__  # type: ignore[attr-defined]
DELIVERIES: Table = DeliveryRow.__table__  # type: ignore[attr-defined]
ATTEMPTS: Table = AttemptRow.__table__  # type: ignore[attr-defined]
EVENT_LOG: Table = EventLogRow.__table__  # type: ignore[attr-defined]
EVENT_HEADS: Table = EventLogHeadRow.__table__  # type: ignore[attr-defined]
# NOTIFY channel of appended events (payload: the organization id); delivered only on commit.
EVENT_CHANNEL = "gpufleet_notification_event_log"
# Rows one retention statement deletes at most (each batch is its own short statement).
PRUNE_BATCH = 5000
_EPOCH = datetime.min.replace(tzinfo=UTC)


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        organization_id=row.organization_id,
        url=row.url,
        events=tuple(row.events),
        signing_secret=row.signing_secret,
        description=row.description,
        status=WebhookStatus(row.status),
        error_rate=row.error_rate,
        consecutive_failures=row.consecutive_failures,
        last_used=row.last_used,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        organization_id=row.organization_id,
        webhook_id=row.webhook_id,
        url=row.url,
        event_id=row.event_id,
        event_type=row.event_type,
        job_id=row.job_id,
        project_id=row.project_id,
        payload=bytes(row.payload),
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


def _attempt(row: Any) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=row.delivery_id,
        organization_id=row.organization_id,
        attempt=row.attempt,
        at=row.at,
        response_status=row.response_status,
        error=row.error,
        duration_ms=row.duration_ms,
    )


class SqlUnitOfWork(NotificationUnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record_audit(self, envelope: Envelope[AuditRecordedV1]) -> None:
        await shared_audit.write(self.session, envelope)  # in this unit's transaction (docs/audit.md)

    async def now(self) -> datetime:
        return (await self.session.execute(select(func.now()))).scalar_one()

    async def claim(self, consumer: str, event_id: UUID) -> bool:
        return await consumers.claim(self.session, consumer, event_id)

    # --- webhooks ---

    async def add_webhook(self, webhook: Webhook) -> Webhook:
        row = (
            await self.session.execute(
                insert(WEBHOOKS)
                .values(
                    id=webhook.id,
                    organization_id=webhook.organization_id,
                    url=webhook.url,
                    events=list(webhook.events),
                    status=webhook.status.value,
                    is_active=webhook.is_active,
                    signing_secret=webhook.signing_secret,
                    description=webhook.description,
                )
                .returning(*WEBHOOKS.c)
            )
        ).one()
        return _webhook(row)

    async def webhooks(self) -> list[Webhook]:
        rows = await self.session.execute(select(WEBHOOKS).order_by(WEBHOOKS.c.created_at, WEBHOOKS.c.id))
        return [_webhook(r) for r in rows]

    async def active_webhooks(self, organization_id: UUID) -> list[Webhook]:
        rows = await self.session.execute(
            select(WEBHOOKS)
            .where(
                WEBHOOKS.c.organization_id == organization_id, WEBHOOKS.c.status == WebhookStatus.ACTIVE.value
            )
            .order_by(WEBHOOKS.c.created_at, WEBHOOKS.c.id)
        )
        return [_webhook(r) for r in rows]

    async def webhook(self, webhook_id: UUID, *, for_update: bool = False) -> Webhook | None:
        stmt = select(WEBHOOKS).where(WEBHOOKS.c.id == webhook_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).one_or_none()
        return _webhook(row) if row else None

    async def save_webhook(self, webhook: Webhook) -> None:
        await self.session.execute(
            update(WEBHOOKS)
            .where(WEBHOOKS.c.id == webhook.id)
            .values(
                status=webhook.status.value,
                is_active=webhook.is_active,
                error_rate=webhook.error_rate,
                consecutive_failures=webhook.consecutive_failures,
                last_used=webhook.last_used,
                disabled_at=webhook.disabled_at,
                disabled_reason=webhook.disabled_reason,
                updated_at=func.now(),
            )
        )

    async def delete_webhook(self, webhook_id: UUID) -> bool:
        result = await self.session.execute(
            delete(WEBHOOKS).where(WEBHOOKS.c.id == webhook_id).returning(WEBHOOKS.c.id)
        )
        return result.first() is not None

    async def job_webhook_secret(self, organization_id: UUID, candidate: str) -> str:
        # Two first uses at once: one insert wins, both read the winner.
        await self.session.execute(
            insert(SECRETS)
            .values(organization_id=organization_id, secret=candidate)
            .on_conflict_do_nothing(index_elements=[SECRETS.c.organization_id])
        )
        return (
            await self.session.execute(
                select(SECRETS.c.secret).where(SECRETS.c.organization_id == organization_id)
            )
        ).scalar_one()

    # --- deliveries ---

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        stmt = (
            insert(DELIVERIES)
            .values(
                [
                    {
                        "id": d.id,
                        "organization_id": d.organization_id,
                        "webhook_id": d.webhook_id,
                        "url": d.url,
                        "event_id": d.event_id,
                        "event_type": d.event_type,
                        "job_id": d.job_id,
                        "project_id": d.project_id,
                        "payload": d.payload,
                        "status": d.status.value,
                        "attempts": d.attempts,
                        "next_attempt_at": d.next_attempt_at,
                    }
                    for d in deliveries
                ]
            )
            .on_conflict_do_nothing(index_elements=[DELIVERIES.c.event_id, DELIVERIES.c.url])
            .returning(DELIVERIES.c.id)
        )
        return len((await self.session.execute(stmt)).all())

    async def deliveries(
        self, webhook_id: UUID | None, job_id: UUID | None, limit: int, *, project: UUID | None = None
    ) -> list[Delivery]:
        stmt = select(DELIVERIES).order_by(DELIVERIES.c.created_at.desc(), DELIVERIES.c.id).limit(limit)
        if project is not None:  # a project-bound key: its project's jobs' own webhook_url only
            stmt = stmt.where(DELIVERIES.c.project_id == project, DELIVERIES.c.webhook_id.is_(None))
        if webhook_id is not None:
            stmt = stmt.where(DELIVERIES.c.webhook_id == webhook_id)
        if job_id is not None:
            stmt = stmt.where(DELIVERIES.c.job_id == job_id)
        found = [_delivery(r) for r in await self.session.execute(stmt)]
        if found:
            logs: dict[UUID, list[DeliveryAttempt]] = defaultdict(list)
            rows = await self.session.execute(
                select(ATTEMPTS)
                .where(ATTEMPTS.c.delivery_id.in_([d.id for d in found]))
                .order_by(ATTEMPTS.c.delivery_id, ATTEMPTS.c.attempt)
            )
            for r in rows:
                logs[r.delivery_id].append(_attempt(r))
            for d in found:
                d.attempt_log = logs.get(d.id, [])
        return found

    async def claim_due(self, limit: int, lease: timedelta) -> list[DueDelivery]:
        due = (
            select(DELIVERIES.c.id)
            .where(
                DELIVERIES.c.status == DeliveryStatus.PENDING.value,
                DELIVERIES.c.next_attempt_at <= func.now(),
            )
            .order_by(DELIVERIES.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (
            await self.session.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_(due.scalar_subquery()))
                .values(next_attempt_at=func.now() + lease)
                .returning(*DELIVERIES.c)
            )
        ).all()
        claimed = [_delivery(r) for r in rows]
        hook_ids = {d.webhook_id for d in claimed if d.webhook_id is not None}
        org_ids = {d.organization_id for d in claimed if d.webhook_id is None}
        hooks: dict[UUID, tuple[str, bool, str | None]] = {}
        if hook_ids:
            for r in await self.session.execute(
                select(
                    WEBHOOKS.c.id, WEBHOOKS.c.signing_secret, WEBHOOKS.c.status, WEBHOOKS.c.disabled_reason
                ).where(WEBHOOKS.c.id.in_(hook_ids))
            ):
                hooks[r.id] = (r.signing_secret, r.status == WebhookStatus.ACTIVE.value, r.disabled_reason)
        job_secrets: dict[UUID, str] = {}
        if org_ids:
            for org, secret in await self.session.execute(
                select(SECRETS.c.organization_id, SECRETS.c.secret).where(
                    SECRETS.c.organization_id.in_(org_ids)
                )
            ):
                job_secrets[org] = secret
        out = []
        for d in sorted(claimed, key=lambda d: (d.created_at or _EPOCH, str(d.id))):
            if d.webhook_id is None:
                out.append(DueDelivery(d, job_secrets.get(d.organization_id), webhook_active=True))
            else:
                secret, active, reason = hooks.get(d.webhook_id, (None, False, None))
                out.append(DueDelivery(d, secret, webhook_active=active, disabled_reason=reason))
        return out

    async def delivery(self, delivery_id: UUID, *, for_update: bool = False) -> Delivery | None:
        stmt = select(DELIVERIES).where(DELIVERIES.c.id == delivery_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).one_or_none()
        return _delivery(row) if row else None

    async def save_delivery(self, delivery: Delivery, attempts: Sequence[DeliveryAttempt] = ()) -> None:
        await self.session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == delivery.id)
            .values(
                status=delivery.status.value,
                attempts=delivery.attempts,
                next_attempt_at=delivery.next_attempt_at,
                last_error=delivery.last_error,
                delivered_at=delivery.delivered_at,
            )
        )
        if attempts:
            await self.session.execute(
                insert(ATTEMPTS).values(
                    [
                        {
                            "delivery_id": a.delivery_id,
                            "organization_id": a.organization_id,
                            "attempt": a.attempt,
                            "at": a.at,
                            "response_status": a.response_status,
                            "error": a.error,
                            "duration_ms": a.duration_ms,
                        }
                        for a in attempts
                    ]
                )
            )

    async def pending_summary(self) -> PendingSummary:
        # One scan of the partial index on pending rows; claimed rows sit a lease ahead, so they are
        # not counted as due.
        pending = DELIVERIES.c.status == DeliveryStatus.PENDING.value
        due, next_in = (
            await self.session.execute(
                select(
                    func.count().filter(DELIVERIES.c.next_attempt_at <= func.now()),
                    func.extract("epoch", func.min(DELIVERIES.c.next_attempt_at) - func.now()),
                ).where(pending)
            )
        ).one()
        return PendingSummary(due=int(due), next_due_in=None if next_in is None else float(next_in))

    # --- the event log ---

    async def append_event(self, event: NewEvent) -> int | None:
        # The cheap check first, so a replay does not take the organization's lock (nor a number).
        seen = await self.session.execute(
            select(EVENT_LOG.c.seq).where(EVENT_LOG.c.event_id == event.event_id)
        )
        if seen.first() is not None:
            return None
        # Taking the next number locks the head row until commit: numbers commit in order.
        seq = (
            await self.session.execute(
                insert(EVENT_HEADS)
                .values(organization_id=event.organization_id, last_seq=1)
                .on_conflict_do_update(
                    index_elements=[EVENT_HEADS.c.organization_id],
                    set_={"last_seq": EVENT_HEADS.c.last_seq + 1},
                )
                .returning(EVENT_HEADS.c.last_seq)
            )
        ).scalar_one()
        stored = (
            await self.session.execute(
                insert(EVENT_LOG)
                .values(
                    organization_id=event.organization_id,
                    seq=seq,
                    event_id=event.event_id,
                    type=event.type,
                    job_id=event.job_id,
                    project_id=event.project_id,
                    occurred_at=event.occurred_at,
                    cloudevent=event.cloudevent,
                )
                # A concurrent append of the same event (two consumers after a rebalance) stores once;
                # the loser leaves a gap in the numbering, which cursors do not mind.
                .on_conflict_do_nothing(index_elements=[EVENT_LOG.c.event_id])
                .returning(EVENT_LOG.c.seq)
            )
        ).scalar_one_or_none()
        if stored is not None:
            await self.session.execute(select(func.pg_notify(EVENT_CHANNEL, str(event.organization_id))))
        return stored

    async def event_log_head(self, organization_id: UUID) -> int:
        head = (
            await self.session.execute(
                select(EVENT_HEADS.c.last_seq).where(EVENT_HEADS.c.organization_id == organization_id)
            )
        ).scalar_one_or_none()
        return int(head or 0)

    async def events_after(
        self,
        organization_id: UUID,
        after: int,
        types: Sequence[str],
        job_id: UUID | None,
        limit: int,
        *,
        project: UUID | None = None,
    ) -> EventPage:
        # The head first: the events read next (a later snapshot) include every number up to it.
        head = await self.event_log_head(organization_id)
        if head <= after:
            return EventPage([], after)
        stmt = (
            select(
                EVENT_LOG.c.seq,
                EVENT_LOG.c.event_id,
                EVENT_LOG.c.type,
                EVENT_LOG.c.job_id,
                EVENT_LOG.c.cloudevent,
            )
            .where(
                EVENT_LOG.c.organization_id == organization_id,
                EVENT_LOG.c.seq > after,
                EVENT_LOG.c.seq <= head,
                EVENT_LOG.c.type.in_(list(types)),
            )
            .order_by(EVENT_LOG.c.seq)
            .limit(limit)
        )
        if job_id is not None:
            stmt = stmt.where(EVENT_LOG.c.job_id == job_id)
        if project is not None:
            stmt = stmt.where(EVENT_LOG.c.project_id == project)
        found = [
            LoggedEvent(seq=r.seq, event_id=r.event_id, type=r.type, job_id=r.job_id, cloudevent=r.cloudevent)
            for r in await self.session.execute(stmt)
        ]
        position = found[-1].seq if len(found) >= limit else head
        return EventPage(found, position)

    async def prune_event_log(self, max_age: timedelta, keep: int) -> int:
        removed = 0
        rules = (
            # By age.
            (
                text(
                    "DELETE FROM event_log WHERE ctid IN (SELECT ctid FROM event_log "
                    "WHERE stored_at < now() - make_interval(secs => :age) LIMIT :batch)"
                ),
                {"age": max_age.total_seconds(), "batch": PRUNE_BATCH},
            ),
            # By count: all but the newest `keep` numbers of each organization.
            (
                text(
                    "DELETE FROM event_log WHERE ctid IN (SELECT e.ctid FROM event_log e "
                    "JOIN event_log_heads h USING (organization_id) WHERE e.seq <= h.last_seq - :keep "
                    "LIMIT :batch)"
                ),
                {"keep": keep, "batch": PRUNE_BATCH},
            ),
        )
        for rule, params in rules:
            while True:
                result: Any = await self.session.execute(rule, params)
                count = int(result.rowcount or 0)
                removed += count
                if count < PRUNE_BATCH:
                    break
        return removed


def sql_unit_of_work(db: Database) -> UnitOfWorkFactory:
    return db.unit_of_work(SqlUnitOfWork)  # type: ignore[return-value]
