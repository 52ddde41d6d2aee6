"""Set-based batches against real PostgreSQL: a batch of job events leaves what the same events leave
one by one (deliveries, the job webhook secret, each organization's log numbered in topic order), and
a batch of attempts' results is accounted in the order given, as one transaction per result would."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from services.notification.domain.model import Outcome, SendResult
from services.notification.entrypoints import consumers
from services.notification.service_layer import commands, handlers
from shared.contracts import jobs
from shared.events import Envelope

from .conftest import Harness, job_event

pytestmark = pytest.mark.integration

TYPES = (jobs.JOB_SUBMITTED, jobs.JOB_SCHEDULED, jobs.JOB_STARTED, jobs.JOB_SUCCEEDED)


async def world(harness: Harness) -> tuple[list[uuid.UUID], list[Envelope]]:
    """Three organizations: the first with a webhook for every job event, the second with one for
    failures only; the third with none. Two jobs each (one with its own webhook_url), four events per
    job, interleaved across organizations, plus one event delivered twice in the same batch."""
    app = harness.app()
    orgs = [uuid.uuid4() for _ in range(3)]
    await handlers.create_webhook(commands.CreateWebhook(orgs[0], "http://127.0.0.1:9/all"), app.deps)
    await handlers.create_webhook(
        commands.CreateWebhook(orgs[1], "http://127.0.0.1:9/failed", ("job.failed",)), app.deps
    )
    jobs_of = [(org, uuid.uuid4(), url) for org in orgs for url in (None, "http://127.0.0.1:9/own")]
    events = [job_event(org, t, webhook_url=url, job_id=job) for t in TYPES for org, job, url in jobs_of]
    return orgs, [*events[:5], events[2], *events[5:]]


async def state(harness: Harness, org: uuid.UUID) -> dict[str, Any]:
    async with harness.db.transaction(org_id=org) as s:
        log = (await s.execute(text("SELECT seq, type, cloudevent FROM event_log ORDER BY seq"))).all()
        deliveries = (
            await s.execute(
                text(
                    "SELECT url, event_type, status, attempts, payload, webhook_id IS NULL AS own "
                    "FROM webhook_deliveries ORDER BY created_at, url, event_type"
                )
            )
        ).all()
        secret = (await s.execute(text("SELECT count(*) FROM job_webhook_secrets"))).scalar_one()
        head = (await s.execute(text("SELECT last_seq FROM event_log_heads"))).scalar()
    return {
        # Ids differ between the two worlds: what is compared is the shape, in order.
        "log": [(r.seq, r.type, json.loads(r.cloudevent)["data"]["job"]["status"]) for r in log],
        "head": head,
        "deliveries": sorted(
            (r.url, r.event_type, r.status, r.attempts, json.loads(r.payload)["type"], r.own)
            for r in deliveries
        ),
        "secrets": secret,
    }


async def test_a_batch_of_job_events_leaves_what_one_by_one_leaves(harness: Harness) -> None:
    app = harness.app()
    sink = consumers.job_event_handler(app.deps)
    one_orgs, one_events = await world(harness)
    for env in one_events:
        await sink([env])
    batch_orgs, batch_events = await world(harness)
    await sink(batch_events)

    for one, batch in zip(one_orgs, batch_orgs, strict=True):
        expected = await state(harness, one)
        assert await state(harness, batch) == expected
        # Eight events, each logged once, numbered 1..8 in topic order.
        assert [seq for seq, _, _ in expected["log"]] == list(range(1, 9)) and expected["head"] == 8
        assert [t for _, t, _ in expected["log"]] == [t for t in TYPES for _ in range(2)]
    first, second, third = [await state(harness, o) for o in batch_orgs]
    assert len(first["deliveries"]) == 8 + 4  # the webhook gets all 8, the own URL its job's 4
    assert [d[5] for d in second["deliveries"]] == [True] * 4  # failures only: none of these
    assert third["secrets"] == 1

    await sink(batch_events)  # redelivered whole: nothing new
    for one, batch in zip(one_orgs, batch_orgs, strict=True):
        assert await state(harness, batch) == await state(harness, one)


async def test_a_batch_of_results_is_accounted_in_the_order_given(harness: Harness) -> None:
    app = harness.app(notification_retry_base_seconds=3600)
    org = uuid.uuid4()
    hook = await handlers.create_webhook(commands.CreateWebhook(org, "http://127.0.0.1:9/h"), app.deps)
    for _ in range(3):
        await handlers.notify_job_event(consumers.to_command(job_event(org)), app.deps)
    claimed = await handlers.handle(commands.ClaimDueDeliveries(1000, handlers_lease()), app.deps)
    a, b, c = [due for due in claimed if due.delivery.organization_id == org]
    now = datetime.now(UTC)
    ok, fail = SendResult(200, None, 3), SendResult(500, "HTTP 500", 4)
    gone = uuid.uuid4()  # a delivery that does not exist (its webhook deleted meanwhile)
    outcomes = await handlers.handle(
        commands.RecordDeliveryResults(
            (
                commands.RecordDeliveryResult(c.delivery.id, fail, now),
                commands.RecordDeliveryResult(gone, ok, now),
                commands.RecordDeliveryResult(a.delivery.id, ok, now),
                commands.RecordDeliveryResult(b.delivery.id, fail, now),
                commands.RecordDeliveryResult(a.delivery.id, fail, now),  # a late one: already delivered
            )
        ),
        app.deps,
    )
    assert outcomes == [Outcome.RETRYING, None, Outcome.DELIVERED, Outcome.RETRYING, Outcome.LATE]
    async with harness.db.transaction(org_id=org) as s:
        webhook = (
            await s.execute(
                text("SELECT consecutive_failures, status FROM webhooks WHERE id = :i"),
                {"i": hook.webhook.id},
            )
        ).one()
        rows = {
            r.id: r
            for r in await s.execute(text("SELECT id, status, attempts, last_error FROM webhook_deliveries"))
        }
        attempts = (
            await s.execute(
                text(
                    "SELECT delivery_id, attempt, response_status FROM webhook_attempts "
                    "ORDER BY delivery_id, attempt"
                )
            )
        ).all()
    # c failed, a succeeded (back to 0), b failed; a's late failure does not count.
    assert (webhook.consecutive_failures, webhook.status) == (1, "active")
    assert (rows[a.delivery.id].status, rows[a.delivery.id].attempts) == ("delivered", 2)
    assert (rows[b.delivery.id].status, rows[b.delivery.id].last_error) == ("pending", "HTTP 500")
    assert sorted((r.delivery_id, r.attempt, r.response_status) for r in attempts) == sorted(
        [(a.delivery.id, 1, 200), (a.delivery.id, 2, 500), (b.delivery.id, 1, 500), (c.delivery.id, 1, 500)]
    )


def handlers_lease():  # type: ignore[no-untyped-def]
    from services.notification.bootstrap import LEASE

    return LEASE
