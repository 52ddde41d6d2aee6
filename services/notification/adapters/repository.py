"""The unit of work over PostgreSQL: one ``Database.transaction`` per unit, rows <-> domain objects.

Tenant units run with ``org_id`` (row-level security hides other organizations' rows); the consumer and
the delivery worker run with ``system=True``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Table, case, delete, func, select, text, update
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

# The consumers' hot path, set-based: one statement per batch of events, not one per event (text over
# unnest arrays: a fixed statement that asyncpg prepares once, whatever the batch's size).
_ENSURE_SECRETS = text(
    "INSERT INTO job_webhook_secrets (organization_id, secret) "
    "SELECT * FROM unnest(CAST(:orgs AS uuid[]), CAST(:secrets AS text[])) "
    "ON CONFLICT (organization_id) DO NOTHING"
)
_ADD_DELIVERIES = text(
    "INSERT INTO webhook_deliveries (id, organization_id, webhook_id, url, event_id, event_type, job_id, "
    "project_id, payload, status, attempts, next_attempt_at) "
    "SELECT i, o, w, u, e, t, j, p, b, s, a, coalesce(n, now()) FROM unnest("
    "CAST(:ids AS uuid[]), CAST(:orgs AS uuid[]), CAST(:hooks AS uuid[]), CAST(:urls AS text[]), "
    "CAST(:events AS uuid[]), CAST(:types AS text[]), CAST(:jobs AS uuid[]), CAST(:projects AS uuid[]), "
    "CAST(:payloads AS bytea[]), CAST(:statuses AS text[]), CAST(:attempts AS integer[]), "
    "CAST(:due AS timestamptz[])) AS r(i, o, w, u, e, t, j, p, b, s, a, n) "
    "ON CONFLICT (event_id, url) DO NOTHING RETURNING 1"
)
# The delivery worker's results, a batch of them per transaction.
_DELIVERY_WEBHOOKS = text(
    "SELECT id, webhook_id FROM webhook_deliveries WHERE id = ANY(CAST(:ids AS uuid[]))"
)
_SAVE_DELIVERIES = text(
    "UPDATE webhook_deliveries AS d SET status = v.status, attempts = v.attempts, "
    "next_attempt_at = v.next_attempt_at, last_error = v.last_error, delivered_at = v.delivered_at "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:attempts AS integer[]), "
    "CAST(:next AS timestamptz[]), CAST(:errors AS text[]), CAST(:delivered AS timestamptz[])) "
    "AS v(id, status, attempts, next_attempt_at, last_error, delivered_at) WHERE d.id = v.id"
)
_ADD_ATTEMPTS = text(
    "INSERT INTO webhook_attempts (delivery_id, organization_id, attempt, at, response_status, error, "
    "duration_ms) SELECT * FROM unnest(CAST(:deliveries AS uuid[]), CAST(:orgs AS uuid[]), "
    "CAST(:attempts AS integer[]), CAST(:ats AS timestamptz[]), CAST(:statuses AS integer[]), "
    "CAST(:errors AS text[]), CAST(:durations AS integer[]))"
)
_SAVE_WEBHOOKS = text(
    "UPDATE webhooks AS w SET status = v.status, is_active = v.is_active, error_rate = v.error_rate, "
    "consecutive_failures = v.failures, last_used = v.last_used, disabled_at = v.disabled_at, "
    "disabled_reason = v.reason, updated_at = now() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:active AS boolean[]), "
    "CAST(:rates AS double precision[]), CAST(:failures AS integer[]), CAST(:used AS timestamptz[]), "
    "CAST(:disabled AS timestamptz[]), CAST(:reasons AS text[])) "
    "AS v(id, status, is_active, error_rate, failures, last_used, disabled_at, reason) WHERE w.id = v.id"
)
# A webhook's pending deliveries follow its new URL, except where the event already has a delivery
# to that URL (one delivery per event and URL).
_REPOINT_PENDING = text(
    "UPDATE webhook_deliveries AS d SET url = :url WHERE d.webhook_id = :hook AND d.status = 'pending' "
    "AND d.url <> :url AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS o "
    "WHERE o.event_id = d.event_id AND o.url = :url)"
)
_RESTART_DELIVERY = text(
    "UPDATE webhook_deliveries AS d SET status = 'pending', next_attempt_at = now(), delivered_at = NULL, "
    "schedule_start = :start, url = CASE WHEN CAST(:url AS text) IS NULL OR d.url = :url OR EXISTS "
    "(SELECT 1 FROM webhook_deliveries AS o WHERE o.event_id = d.event_id AND o.url = :url) "
    "THEN d.url ELSE :url END WHERE d.id = :id"
)
# The replaced secret signs on for the overlap; with none (0), or no secret before, nothing overlaps.
_ROTATE_JOB_SECRET = text(
    "INSERT INTO job_webhook_secrets AS s (organization_id, secret) VALUES (:org, :secret) "
    "ON CONFLICT (organization_id) DO UPDATE SET secret = EXCLUDED.secret, "
    "previous_secret = CASE WHEN :overlap > 0 THEN s.secret END, "
    "previous_expires_at = CASE WHEN :overlap > 0 THEN now() + make_interval(secs => :overlap) END "
    "RETURNING previous_expires_at"
)
_LOGGED = text("SELECT event_id FROM event_log WHERE event_id = ANY(CAST(:ids AS uuid[]))")
# Numbers for n events of each organization: the head rows are locked in the order of the ids (the
# SELECT's order is the order the rows are inserted or updated in), so batches never deadlock.
_TAKE_NUMBERS = text(
    "INSERT INTO event_log_heads AS h (organization_id, last_seq) "
    "SELECT o, n FROM unnest(CAST(:orgs AS uuid[]), CAST(:counts AS bigint[])) AS t(o, n) ORDER BY o "
    "ON CONFLICT (organization_id) DO UPDATE SET last_seq = h.last_seq + EXCLUDED.last_seq "
    "RETURNING organization_id, last_seq"
)
# A concurrent append of the same event (two consumers after a rebalance) stores once; the loser leaves
# a gap in the numbering, which cursors do not mind. One NOTIFY per organization that got an event.
_STORE_EVENTS = text(
    "WITH stored AS (INSERT INTO event_log "
    "(organization_id, seq, event_id, type, job_id, project_id, occurred_at, cloudevent) "
    "SELECT * FROM unnest(CAST(:orgs AS uuid[]), CAST(:seqs AS bigint[]), CAST(:ids AS uuid[]), "
    "CAST(:types AS text[]), CAST(:jobs AS uuid[]), CAST(:projects AS uuid[]), "
    "CAST(:times AS timestamptz[]), CAST(:events AS text[])) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING organization_id) "
    "SELECT o, pg_notify(:channel, o::text) FROM (SELECT DISTINCT organization_id AS o FROM stored) AS s"
)


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
        previous_signing_secret=row.previous_signing_secret,
        previous_secret_expires_at=row.previous_secret_expires_at,
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
        schedule_start=row.schedule_start,
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

    async def claim_many(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        return await consumers.claim_many(self.session, consumer, list(event_ids))

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

    async def active_webhooks_of(self, organization_ids: Sequence[UUID]) -> dict[UUID, list[Webhook]]:
        if not organization_ids:
            return {}
        rows = await self.session.execute(
            select(WEBHOOKS)
            .where(
                WEBHOOKS.c.organization_id.in_(list(organization_ids)),
                WEBHOOKS.c.status == WebhookStatus.ACTIVE.value,
            )
            .order_by(WEBHOOKS.c.created_at, WEBHOOKS.c.id)
        )
        found: dict[UUID, list[Webhook]] = {}
        for r in rows:
            found.setdefault(r.organization_id, []).append(_webhook(r))
        return found

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

    async def update_webhook(self, webhook: Webhook) -> None:
        await self.session.execute(
            update(WEBHOOKS)
            .where(WEBHOOKS.c.id == webhook.id)
            .values(
                url=webhook.url,
                events=list(webhook.events),
                description=webhook.description,
                status=webhook.status.value,
                is_active=webhook.is_active,
                error_rate=webhook.error_rate,
                consecutive_failures=webhook.consecutive_failures,
                disabled_at=webhook.disabled_at,
                disabled_reason=webhook.disabled_reason,
                updated_at=func.now(),
            )
        )

    async def repoint_pending_deliveries(self, webhook_id: UUID, url: str) -> None:
        await self.session.execute(_REPOINT_PENDING, {"hook": webhook_id, "url": url})

    async def save_webhook_secret(self, webhook: Webhook) -> None:
        await self.session.execute(
            update(WEBHOOKS)
            .where(WEBHOOKS.c.id == webhook.id)
            .values(
                signing_secret=webhook.signing_secret,
                previous_signing_secret=webhook.previous_signing_secret,
                previous_secret_expires_at=webhook.previous_secret_expires_at,
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

    async def rotate_job_webhook_secret(
        self, organization_id: UUID, secret: str, overlap: timedelta
    ) -> datetime | None:
        result = await self.session.execute(
            _ROTATE_JOB_SECRET,
            {"org": organization_id, "secret": secret, "overlap": overlap.total_seconds()},
        )
        until: datetime | None = result.scalar_one()
        return until

    async def ensure_job_webhook_secrets(self, candidates: Mapping[UUID, str]) -> None:
        if candidates:
            orgs = list(candidates)
            await self.session.execute(
                _ENSURE_SECRETS, {"orgs": orgs, "secrets": [candidates[o] for o in orgs]}
            )

    # --- deliveries ---

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        params = {
            "ids": [d.id for d in deliveries],
            "orgs": [d.organization_id for d in deliveries],
            "hooks": [d.webhook_id for d in deliveries],
            "urls": [d.url for d in deliveries],
            "events": [d.event_id for d in deliveries],
            "types": [d.event_type for d in deliveries],
            "jobs": [d.job_id for d in deliveries],
            "projects": [d.project_id for d in deliveries],
            "payloads": [d.payload for d in deliveries],
            "statuses": [d.status.value for d in deliveries],
            "attempts": [d.attempts for d in deliveries],
            "due": [d.next_attempt_at for d in deliveries],
        }
        return len((await self.session.execute(_ADD_DELIVERIES, params)).all())

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
        hooks: dict[UUID, tuple[str, bool, str | None, str | None]] = {}
        if hook_ids:
            # A rotated-out secret signs too until its overlap ends (the database's clock decides).
            previous = case(
                (WEBHOOKS.c.previous_secret_expires_at > func.now(), WEBHOOKS.c.previous_signing_secret),
                else_=None,
            ).label("previous")
            for r in await self.session.execute(
                select(
                    WEBHOOKS.c.id,
                    WEBHOOKS.c.signing_secret,
                    WEBHOOKS.c.status,
                    WEBHOOKS.c.disabled_reason,
                    previous,
                ).where(WEBHOOKS.c.id.in_(hook_ids))
            ):
                hooks[r.id] = (
                    r.signing_secret,
                    r.status == WebhookStatus.ACTIVE.value,
                    r.disabled_reason,
                    r.previous,
                )
        job_secrets: dict[UUID, tuple[str, str | None]] = {}
        if org_ids:
            previous_job = case(
                (SECRETS.c.previous_expires_at > func.now(), SECRETS.c.previous_secret), else_=None
            )
            for org, secret, old in await self.session.execute(
                select(SECRETS.c.organization_id, SECRETS.c.secret, previous_job).where(
                    SECRETS.c.organization_id.in_(org_ids)
                )
            ):
                job_secrets[org] = (secret, old)
        out = []
        for d in sorted(claimed, key=lambda d: (d.created_at or _EPOCH, str(d.id))):
            if d.webhook_id is None:
                secret, old = job_secrets.get(d.organization_id, (None, None))
                out.append(DueDelivery(d, secret, webhook_active=True, previous_secret=old))
            else:
                secret, active, reason, old = hooks.get(d.webhook_id, (None, False, None, None))
                out.append(
                    DueDelivery(d, secret, webhook_active=active, disabled_reason=reason, previous_secret=old)
                )
        return out

    async def delivery(self, delivery_id: UUID, *, for_update: bool = False) -> Delivery | None:
        stmt = select(DELIVERIES).where(DELIVERIES.c.id == delivery_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).one_or_none()
        return _delivery(row) if row else None

    async def restart_delivery(self, delivery: Delivery, url: str | None) -> Delivery:
        await self.session.execute(
            _RESTART_DELIVERY, {"id": delivery.id, "start": delivery.schedule_start, "url": url}
        )
        stored = await self.delivery(delivery.id)
        assert stored is not None, "a locked delivery cannot vanish"
        rows = await self.session.execute(
            select(ATTEMPTS).where(ATTEMPTS.c.delivery_id == delivery.id).order_by(ATTEMPTS.c.attempt)
        )
        stored.attempt_log = [_attempt(r) for r in rows]
        return stored

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

    async def delivery_webhooks(self, delivery_ids: Sequence[UUID]) -> dict[UUID, UUID | None]:
        if not delivery_ids:
            return {}
        rows = await self.session.execute(_DELIVERY_WEBHOOKS, {"ids": list(delivery_ids)})
        return {r.id: r.webhook_id for r in rows}

    async def webhooks_for_update(self, webhook_ids: Sequence[UUID]) -> dict[UUID, Webhook]:
        return {r.id: _webhook(r) for r in await self._locked(WEBHOOKS, webhook_ids)}

    async def deliveries_for_update(self, delivery_ids: Sequence[UUID]) -> dict[UUID, Delivery]:
        return {r.id: _delivery(r) for r in await self._locked(DELIVERIES, delivery_ids)}

    async def _locked(self, table: Any, ids: Sequence[UUID]) -> list[Any]:
        """The rows of ``table`` with these ids, locked FOR UPDATE in id order (the order every batch
        locks them in, so two batches never deadlock)."""
        if not ids:
            return []
        stmt = select(table).where(table.c.id.in_(list(ids))).order_by(table.c.id).with_for_update()
        return list(await self.session.execute(stmt))

    async def save_deliveries(
        self, deliveries: Sequence[Delivery], attempts: Sequence[DeliveryAttempt] = ()
    ) -> None:
        if deliveries:
            await self.session.execute(
                _SAVE_DELIVERIES,
                {
                    "ids": [d.id for d in deliveries],
                    "statuses": [d.status.value for d in deliveries],
                    "attempts": [d.attempts for d in deliveries],
                    "next": [d.next_attempt_at for d in deliveries],
                    "errors": [d.last_error for d in deliveries],
                    "delivered": [d.delivered_at for d in deliveries],
                },
            )
        if attempts:
            await self.session.execute(
                _ADD_ATTEMPTS,
                {
                    "deliveries": [a.delivery_id for a in attempts],
                    "orgs": [a.organization_id for a in attempts],
                    "attempts": [a.attempt for a in attempts],
                    "ats": [a.at for a in attempts],
                    "statuses": [a.response_status for a in attempts],
                    "errors": [a.error for a in attempts],
                    "durations": [a.duration_ms for a in attempts],
                },
            )

    async def save_webhooks(self, webhooks: Sequence[Webhook]) -> None:
        if webhooks:
            await self.session.execute(
                _SAVE_WEBHOOKS,
                {
                    "ids": [w.id for w in webhooks],
                    "statuses": [w.status.value for w in webhooks],
                    "active": [w.is_active for w in webhooks],
                    "rates": [w.error_rate for w in webhooks],
                    "failures": [w.consecutive_failures for w in webhooks],
                    "used": [w.last_used for w in webhooks],
                    "disabled": [w.disabled_at for w in webhooks],
                    "reasons": [w.disabled_reason for w in webhooks],
                },
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

    async def append_events(self, events: Sequence[NewEvent]) -> set[UUID]:
        if not events:
            return set()
        # The cheap check first, so a replay does not take an organization's lock (nor numbers).
        taken = {r[0] for r in await self.session.execute(_LOGGED, {"ids": [e.event_id for e in events]})}
        by_org: dict[UUID, list[NewEvent]] = {}
        for e in events:
            if e.event_id not in taken:
                taken.add(e.event_id)
                by_org.setdefault(e.organization_id, []).append(e)
        if not by_org:
            return set()
        orgs = sorted(by_org, key=lambda o: o.bytes)  # the order PostgreSQL sorts uuids in
        heads: dict[UUID, int] = dict(
            (
                await self.session.execute(
                    _TAKE_NUMBERS, {"orgs": orgs, "counts": [len(by_org[o]) for o in orgs]}
                )
            ).all()
        )
        fresh = [e for o in orgs for e in by_org[o]]
        seqs = [heads[o] - len(by_org[o]) + 1 + i for o in orgs for i in range(len(by_org[o]))]
        stored = await self.session.execute(
            _STORE_EVENTS,
            {
                "orgs": [e.organization_id for e in fresh],
                "seqs": seqs,
                "ids": [e.event_id for e in fresh],
                "types": [e.type for e in fresh],
                "jobs": [e.job_id for e in fresh],
                "projects": [e.project_id for e in fresh],
                "times": [e.occurred_at for e in fresh],
                "events": [e.cloudevent for e in fresh],
                "channel": EVENT_CHANNEL,
            },
        )
        return {r[0] for r in stored}

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
