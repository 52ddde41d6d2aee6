"""In-memory unit of work and sender for handler and worker tests (row-level security imitated)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.notification.domain.event_log import LoggedEvent, NewEvent
from services.notification.domain.model import Delivery, DeliveryAttempt, DeliveryStatus, SendResult, Webhook
from services.notification.service_layer.unit_of_work import DueDelivery, EventPage, PendingSummary


class Store:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)
        self.webhooks: dict[UUID, Webhook] = {}
        self.audits: list[object] = []  # audit CloudEvents written with the change
        self.secrets: dict[UUID, str] = {}
        self.previous_secrets: dict[UUID, tuple[str, datetime]] = {}  # rotated-out job secret, until
        self.deliveries: dict[UUID, Delivery] = {}
        self.claims: set[tuple[str, UUID]] = set()
        self.commits = 0
        self.heads: dict[UUID, int] = {}
        self.log: list[tuple[UUID, LoggedEvent, datetime]] = []  # (organization, event, stored at)
        self.projects: dict[UUID, UUID | None] = {}  # event id -> the project its event was logged in


class FakeUnitOfWork:
    def __init__(self, store: Store, org_id: UUID | None, system: bool) -> None:
        self.store, self.org_id, self.system = store, org_id, system
        self.pending_claims: set[tuple[str, UUID]] = set()

    def _visible(self, org: UUID) -> bool:
        return self.system or org == self.org_id

    async def now(self) -> datetime:
        return self.store.now

    async def record_audit(self, envelope: object) -> None:
        self.store.audits.append(envelope)

    async def claim(self, consumer: str, event_id: UUID) -> bool:
        key = (consumer, event_id)
        if key in self.store.claims:
            return False
        self.store.claims.add(key)
        return True

    async def claim_many(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        return {e for e in dict.fromkeys(event_ids) if await self.claim(consumer, e)}

    async def add_webhook(self, webhook: Webhook) -> Webhook:
        assert self._visible(webhook.organization_id)
        webhook.created_at = self.store.now
        self.store.webhooks[webhook.id] = copy.deepcopy(webhook)
        return webhook

    async def webhooks(self) -> list[Webhook]:
        return [copy.deepcopy(w) for w in self.store.webhooks.values() if self._visible(w.organization_id)]

    async def active_webhooks(self, organization_id: UUID) -> list[Webhook]:
        return [w for w in await self.webhooks() if w.organization_id == organization_id and w.is_active]

    async def active_webhooks_of(self, organization_ids: Sequence[UUID]) -> dict[UUID, list[Webhook]]:
        found = {org: await self.active_webhooks(org) for org in organization_ids}
        return {org: hooks for org, hooks in found.items() if hooks}

    async def webhook(self, webhook_id: UUID, *, for_update: bool = False) -> Webhook | None:
        w = self.store.webhooks.get(webhook_id)
        return copy.deepcopy(w) if w and self._visible(w.organization_id) else None

    async def save_webhook(self, webhook: Webhook) -> None:
        self.store.webhooks[webhook.id] = copy.deepcopy(webhook)

    async def update_webhook(self, webhook: Webhook) -> None:
        assert self._visible(webhook.organization_id)
        self.store.webhooks[webhook.id] = copy.deepcopy(webhook)

    async def repoint_pending_deliveries(self, webhook_id: UUID, url: str) -> None:
        taken = {(d.event_id, d.url) for d in self.store.deliveries.values()}
        for d in self.store.deliveries.values():
            if (
                d.webhook_id == webhook_id
                and d.status is DeliveryStatus.PENDING
                and (d.event_id, url) not in taken
            ):
                d.url = url

    async def save_webhook_secret(self, webhook: Webhook) -> None:
        assert self._visible(webhook.organization_id)
        self.store.webhooks[webhook.id] = copy.deepcopy(webhook)

    async def delete_webhook(self, webhook_id: UUID) -> bool:
        if await self.webhook(webhook_id) is None:
            return False
        del self.store.webhooks[webhook_id]
        self.store.deliveries = {k: d for k, d in self.store.deliveries.items() if d.webhook_id != webhook_id}
        return True

    async def job_webhook_secret(self, organization_id: UUID, candidate: str) -> str:
        assert self._visible(organization_id)
        return self.store.secrets.setdefault(organization_id, candidate)

    async def rotate_job_webhook_secret(
        self, organization_id: UUID, secret: str, overlap: timedelta
    ) -> datetime | None:
        assert self._visible(organization_id)
        old = self.store.secrets.get(organization_id)
        self.store.secrets[organization_id] = secret
        self.store.previous_secrets.pop(organization_id, None)
        if old is None or overlap <= timedelta(0):
            return None
        until = self.store.now + overlap
        self.store.previous_secrets[organization_id] = (old, until)
        return until

    async def ensure_job_webhook_secrets(self, candidates: Mapping[UUID, str]) -> None:
        for org, candidate in candidates.items():
            await self.job_webhook_secret(org, candidate)

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        taken = {(d.event_id, d.url) for d in self.store.deliveries.values()}
        new = [d for d in deliveries if (d.event_id, d.url) not in taken]
        for d in new:
            d.created_at = self.store.now
            d.next_attempt_at = d.next_attempt_at or self.store.now  # the database's now()
            self.store.deliveries[d.id] = copy.deepcopy(d)
        return len(new)

    async def deliveries(
        self, webhook_id: UUID | None, job_id: UUID | None, limit: int, *, project: UUID | None = None
    ) -> list[Delivery]:
        found = [
            copy.deepcopy(d)
            for d in self.store.deliveries.values()
            if self._visible(d.organization_id)
            and (webhook_id is None or d.webhook_id == webhook_id)
            and (job_id is None or d.job_id == job_id)
            and (project is None or (d.project_id == project and d.webhook_id is None))
        ]
        return found[:limit]

    async def claim_due(self, limit: int, lease: timedelta) -> list[DueDelivery]:
        due = sorted(
            (
                d
                for d in self.store.deliveries.values()
                if d.status is DeliveryStatus.PENDING
                and d.next_attempt_at is not None
                and d.next_attempt_at <= self.store.now
            ),
            key=lambda d: d.next_attempt_at or self.store.now,
        )[:limit]
        out = []
        for d in due:
            d.next_attempt_at = self.store.now + lease
            if d.webhook_id is None:
                old, until = self.store.previous_secrets.get(d.organization_id, (None, None))
                live = old if until is not None and self.store.now < until else None
                out.append(
                    DueDelivery(copy.deepcopy(d), self.store.secrets.get(d.organization_id), True, None, live)
                )
            else:
                hook = self.store.webhooks.get(d.webhook_id)
                out.append(
                    DueDelivery(
                        copy.deepcopy(d),
                        hook.signing_secret if hook else None,
                        bool(hook and hook.is_active),
                        hook.disabled_reason if hook else None,
                        hook.previous_secret(self.store.now) if hook else None,
                    )
                )
        return out

    async def delivery(self, delivery_id: UUID, *, for_update: bool = False) -> Delivery | None:
        d = self.store.deliveries.get(delivery_id)
        return copy.deepcopy(d) if d and self._visible(d.organization_id) else None

    async def restart_delivery(self, delivery: Delivery, url: str | None) -> Delivery:
        assert self._visible(delivery.organization_id)
        taken = {(d.event_id, d.url) for d in self.store.deliveries.values()}
        stored = copy.deepcopy(delivery)
        stored.next_attempt_at = self.store.now  # the database's now()
        if url is not None and (delivery.event_id, url) not in taken:
            stored.url = url
        self.store.deliveries[delivery.id] = stored
        return copy.deepcopy(stored)

    async def save_delivery(self, delivery: Delivery, attempts: Sequence[DeliveryAttempt] = ()) -> None:
        self.store.deliveries[delivery.id] = copy.deepcopy(delivery)

    async def delivery_webhooks(self, delivery_ids: Sequence[UUID]) -> dict[UUID, UUID | None]:
        return {i: d.webhook_id for i in delivery_ids if (d := await self.delivery(i)) is not None}

    async def webhooks_for_update(self, webhook_ids: Sequence[UUID]) -> dict[UUID, Webhook]:
        assert list(webhook_ids) == sorted(webhook_ids), "locked in the order of their ids"
        return {i: w for i in webhook_ids if (w := await self.webhook(i, for_update=True)) is not None}

    async def deliveries_for_update(self, delivery_ids: Sequence[UUID]) -> dict[UUID, Delivery]:
        assert list(delivery_ids) == sorted(delivery_ids), "locked in the order of their ids"
        return {i: d for i in delivery_ids if (d := await self.delivery(i, for_update=True)) is not None}

    async def save_deliveries(
        self, deliveries: Sequence[Delivery], attempts: Sequence[DeliveryAttempt] = ()
    ) -> None:
        assert len({d.id for d in deliveries}) == len(deliveries)
        for d in deliveries:
            await self.save_delivery(d)

    async def save_webhooks(self, webhooks: Sequence[Webhook]) -> None:
        assert len({w.id for w in webhooks}) == len(webhooks)
        for w in webhooks:
            await self.save_webhook(w)

    async def pending_summary(self) -> PendingSummary:
        times = [
            d.next_attempt_at
            for d in self.store.deliveries.values()
            if d.status is DeliveryStatus.PENDING and d.next_attempt_at
        ]
        return PendingSummary(
            due=sum(1 for t in times if t <= self.store.now),
            next_due_in=(min(times) - self.store.now).total_seconds() if times else None,
        )

    async def append_event(self, event: NewEvent) -> int | None:
        if any(e.event_id == event.event_id for _, e, _ in self.store.log):
            return None
        seq = self.store.heads.get(event.organization_id, 0) + 1
        self.store.heads[event.organization_id] = seq
        logged = LoggedEvent(seq, event.event_id, event.type, event.job_id, event.cloudevent)
        self.store.log.append((event.organization_id, logged, self.store.now))
        self.store.projects[event.event_id] = event.project_id
        return seq

    async def append_events(self, events: Sequence[NewEvent]) -> set[UUID]:
        ordered = sorted(events, key=lambda e: e.organization_id.bytes)  # stable: each org's order kept
        return {e.organization_id for e in ordered if await self.append_event(e) is not None}

    async def event_log_head(self, organization_id: UUID) -> int:
        return self.store.heads.get(organization_id, 0) if self._visible(organization_id) else 0

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
        head = await self.event_log_head(organization_id)
        found = [
            e
            for org, e, _ in self.store.log
            if org == organization_id
            and self._visible(org)
            and after < e.seq <= head
            and e.type in types
            and (job_id is None or e.job_id == job_id)
            and (project is None or self.store.projects.get(e.event_id) == project)
        ][:limit]
        return EventPage(found, found[-1].seq if len(found) >= limit else max(head, after))

    async def prune_event_log(self, max_age: timedelta, keep: int) -> int:
        before = len(self.store.log)
        self.store.log = [
            (org, e, at)
            for org, e, at in self.store.log
            if at >= self.store.now - max_age and e.seq > self.store.heads[org] - keep
        ]
        return before - len(self.store.log)


class FakeUnitOfWorkFactory:
    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()

    @asynccontextmanager
    async def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[FakeUnitOfWork]:
        assert org_id is not None or system
        yield FakeUnitOfWork(self.store, org_id, system)
        self.store.commits += 1


class FakeSender:
    """Answers with the next scripted result (default 200) and remembers what it was given."""

    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> SendResult:
        self.sent.append((url, dict(headers), body))
        return self.results.pop(0) if self.results else SendResult(200, None, 1)


class RecordingMetrics:
    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.latencies: list[float] = []
        self.due_counts: list[int] = []

    def outcome(self, outcome: str) -> None:
        self.outcomes.append(outcome)

    def attempt_seconds(self, seconds: float) -> None:
        self.latencies.append(seconds)

    def due(self, count: int) -> None:
        self.due_counts.append(count)
