"""The job event consumer against real PostgreSQL: deliveries per subscribed webhook, once per event."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid

import pytest
from sqlalchemy import text

from services.notification.entrypoints import consumers
from services.notification.service_layer import commands, handlers
from shared.contracts import jobs
from shared.events import header_map
from shared.kafka import make_broker

from .conftest import Harness, job_event

pytestmark = pytest.mark.integration


async def deliveries_of(harness: Harness, org: uuid.UUID) -> list:
    async with harness.db.transaction(org_id=org) as s:
        return (
            await s.execute(
                text(
                    "SELECT webhook_id, url, event_type, status, attempts, payload, job_id FROM webhook_deliveries "
                    "ORDER BY url"
                )
            )
        ).all()


async def test_job_event_creates_deliveries_and_a_duplicate_creates_none(harness: Harness) -> None:
    app = harness.app()
    org = uuid.uuid4()
    every = await handlers.create_webhook(commands.CreateWebhook(org, "http://127.0.0.1:9/all"), app.deps)
    await handlers.create_webhook(
        commands.CreateWebhook(org, "http://127.0.0.1:9/failed", ("job.failed",)), app.deps
    )
    env = job_event(org, jobs.JOB_SUCCEEDED, webhook_url="http://127.0.0.1:9/job")
    handle = consumers.job_event_handler(app.deps)

    await handle([env])
    assert app.deps.wakeup.is_set()
    await handle([env])  # redelivered

    rows = await deliveries_of(harness, org)
    assert [(r.webhook_id, r.url, r.event_type, r.status, r.attempts) for r in rows] == [
        (every.webhook.id, "http://127.0.0.1:9/all", "job.succeeded", "pending", 0),
        (None, "http://127.0.0.1:9/job", "job.succeeded", "pending", 0),
    ]
    assert rows[0].payload == rows[1].payload  # one body, signed per target
    body = json.loads(rows[0].payload)
    assert body["type"] == "job.succeeded" and body["data"] == env.data.job.model_dump(mode="json")
    assert rows[0].job_id == env.data.job.job_id
    # The job's own URL made the organization's job webhook secret exist.
    assert (
        await harness.scalar("SELECT secret FROM job_webhook_secrets WHERE organization_id = :o", o=org)
    ).startswith("whsec_")
    assert await deliveries_of(harness, uuid.uuid4()) == []  # row-level security: other tenants see none


async def test_a_time_limit_warning_reaches_the_webhooks_that_name_it_and_the_jobs_own(
    harness: Harness,
) -> None:
    app = harness.app()
    org = uuid.uuid4()
    named = await handlers.create_webhook(  # the stored subscription list accepts the new name (006)
        commands.CreateWebhook(org, "http://127.0.0.1:9/warned", ("job.time_limit_warning", "job.timed_out")),
        app.deps,
    )
    await handlers.create_webhook(
        commands.CreateWebhook(org, "http://127.0.0.1:9/failed", ("job.failed",)), app.deps
    )
    running = job_event(org, jobs.JOB_STARTED, webhook_url="http://127.0.0.1:9/job")
    await consumers.job_event_handler(app.deps)(
        [dataclasses.replace(running, type=jobs.JOB_TIME_LIMIT_WARNING)]
    )
    rows = await deliveries_of(harness, org)
    assert [(r.webhook_id, r.url, r.event_type) for r in rows] == [
        (None, "http://127.0.0.1:9/job", "job.time_limit_warning"),
        (named.webhook.id, "http://127.0.0.1:9/warned", "job.time_limit_warning"),
    ]
    assert json.loads(rows[0].payload)["data"]["status"] == "running"


async def test_events_no_webhook_wants_create_nothing(harness: Harness) -> None:
    app = harness.app()
    org = uuid.uuid4()
    await handlers.create_webhook(
        commands.CreateWebhook(org, "http://127.0.0.1:9/x", ("job.failed",)), app.deps
    )
    assert (
        await handlers.notify_job_event(consumers.to_command(job_event(org, jobs.JOB_STARTED)), app.deps) == 0
    )
    assert await deliveries_of(harness, org) == []


async def test_consumer_through_the_broker_applies_each_event_once(harness: Harness, kafka) -> None:
    settings = harness.settings(kafka_bootstrap_servers=kafka.bootstrap, kafka_idempotent_producer=False)
    app = harness.app(kafka_bootstrap_servers=kafka.bootstrap, kafka_idempotent_producer=False)
    org = uuid.uuid4()
    topic = f"test.notification.jobs.{uuid.uuid4().hex[:8]}"
    job_id = uuid.uuid4()
    first = job_event(org, jobs.JOB_SUBMITTED, webhook_url="http://127.0.0.1:9/job", job_id=job_id)
    second = job_event(org, jobs.JOB_SCHEDULED, webhook_url="http://127.0.0.1:9/job", job_id=job_id)
    broker = make_broker(settings, "notification-test")
    consumers.register(broker, app.deps, topic=topic, group_id=f"test-{topic}")
    await broker.start()
    try:
        for env in (first, first, second):  # one key: in order, so the duplicate is handled before `second`
            await broker.publish(
                env.value(), topic=topic, key=str(job_id).encode(), headers=header_map(env.headers())
            )

        async def both_arrived() -> bool:
            return len(await deliveries_of(harness, org)) == 2

        await harness.wait_until(both_arrived)
        await asyncio.sleep(0.2)
    finally:
        await broker.stop()
    rows = await deliveries_of(harness, org)
    assert sorted(r.event_type for r in rows) == ["job.scheduled", "job.submitted"]
    assert (
        await harness.scalar(
            "SELECT count(*) FROM processed_events WHERE consumer = :c AND event_id IN (:a, :b)",
            c=handlers.JOB_CONSUMER,
            a=first.id,
            b=second.id,
        )
        == 2
    )
