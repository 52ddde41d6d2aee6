"""NotificationService over gRPC in-process, with a fake identity mapping test keys to principals."""

from __future__ import annotations

import uuid

import grpc
import pytest
from gpufleet.v1 import common_pb2, notification_pb2

from services.notification.entrypoints.consumers import to_command
from services.notification.service_layer import handlers
from shared.contracts import jobs

from .conftest import Api, Harness, job_event, receiving

pytestmark = pytest.mark.integration


async def expect(code: grpc.StatusCode, call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value


async def test_create_list_delete_and_other_organizations_see_nothing(api: Api, harness: Harness) -> None:
    org = uuid.uuid4()
    key = harness.identity.key(org, "member")
    created = await api.stub.CreateWebhook(
        notification_pb2.CreateWebhookRequest(
            url="https://hooks.example.com/gpu",
            events=["job.failed", "job.succeeded", "job.failed"],
            description="ci alerts",
        ),
        metadata=key,
    )
    hook = created.webhook
    assert created.secret.startswith("whsec_")
    assert (list(hook.events), hook.status, hook.is_active, hook.description, hook.consecutive_failures) == (
        ["job.succeeded", "job.failed"],
        "active",
        True,
        "ci alerts",
        0,
    )
    assert hook.created_at.endswith("Z") and hook.last_used == ""

    listed = await api.stub.ListWebhooks(common_pb2.Empty(), metadata=key)
    assert [w.id for w in listed.webhooks] == [hook.id]

    stranger = harness.identity.key(uuid.uuid4(), "owner")
    assert list((await api.stub.ListWebhooks(common_pb2.Empty(), metadata=stranger)).webhooks) == []
    await expect(
        grpc.StatusCode.NOT_FOUND,
        api.stub.DeleteWebhook(notification_pb2.DeleteWebhookRequest(id=hook.id), metadata=stranger),
    )
    await expect(
        grpc.StatusCode.NOT_FOUND,
        api.stub.DeleteWebhook(notification_pb2.DeleteWebhookRequest(id="not-a-uuid"), metadata=key),
    )

    await api.stub.DeleteWebhook(notification_pb2.DeleteWebhookRequest(id=hook.id), metadata=key)
    assert list((await api.stub.ListWebhooks(common_pb2.Empty(), metadata=key)).webhooks) == []
    await expect(
        grpc.StatusCode.NOT_FOUND,
        api.stub.DeleteWebhook(notification_pb2.DeleteWebhookRequest(id=hook.id), metadata=key),
    )


async def test_bad_input_roles_and_credentials(api: Api, harness: Harness) -> None:
    org = uuid.uuid4()
    member = harness.identity.key(org, "member")
    err = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        api.stub.CreateWebhook(
            notification_pb2.CreateWebhookRequest(url="https://x.example/", events=["job.exploded"]),
            metadata=member,
        ),
    )
    assert "job.exploded" in (err.details() or "")
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        api.stub.CreateWebhook(
            notification_pb2.CreateWebhookRequest(url="ftp://x.example/"), metadata=member
        ),
    )
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        api.stub.CreateWebhook(
            notification_pb2.CreateWebhookRequest(url="https://x.example/"),
            metadata=harness.identity.key(org, "viewer"),
        ),
    )
    await expect(grpc.StatusCode.UNAUTHENTICATED, api.stub.ListWebhooks(common_pb2.Empty()))
    await expect(
        grpc.StatusCode.UNAUTHENTICATED,
        api.stub.ListWebhooks(common_pb2.Empty(), metadata=(("authorization", "Bearer nope"),)),
    )


async def test_job_webhook_secret_is_for_owners_and_admins_and_stable(api: Api, harness: Harness) -> None:
    org = uuid.uuid4()
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        api.stub.GetJobWebhookSecret(common_pb2.Empty(), metadata=harness.identity.key(org, "member")),
    )
    first = await api.stub.GetJobWebhookSecret(
        common_pb2.Empty(), metadata=harness.identity.key(org, "admin")
    )
    again = await api.stub.GetJobWebhookSecret(
        common_pb2.Empty(), metadata=harness.identity.key(org, "owner")
    )
    other = await api.stub.GetJobWebhookSecret(
        common_pb2.Empty(), metadata=harness.identity.key(uuid.uuid4(), "owner")
    )
    assert first.secret.startswith("whsec_") and again.secret == first.secret and other.secret != first.secret


async def test_list_deliveries_filters_and_attempt_log(api: Api, harness: Harness) -> None:
    org = uuid.uuid4()
    key = harness.identity.key(org, "viewer")  # reading is open to viewers
    writer = harness.identity.key(org, "member")
    async with receiving(204) as rx:
        only_succeeded = (
            await api.stub.CreateWebhook(
                notification_pb2.CreateWebhookRequest(url=rx.url + "/a", events=["job.succeeded"]),
                metadata=writer,
            )
        ).webhook
        every = (
            await api.stub.CreateWebhook(
                notification_pb2.CreateWebhookRequest(url=rx.url + "/b"), metadata=writer
            )
        ).webhook
        succeeded, failed = job_event(org, jobs.JOB_SUCCEEDED), job_event(org, jobs.JOB_FAILED)
        for env in (succeeded, failed):
            await handlers.notify_job_event(to_command(env), api.app.deps)
        while len(rx.requests) < 3:  # other tests' leftovers may be claimed too: go until ours arrived
            await api.app.worker.run_once()

    everything = (
        await api.stub.ListDeliveries(notification_pb2.ListDeliveriesRequest(), metadata=key)
    ).deliveries
    assert len(everything) == 3
    by_hook = await api.stub.ListDeliveries(
        notification_pb2.ListDeliveriesRequest(webhook_id=only_succeeded.id), metadata=key
    )
    (d,) = by_hook.deliveries
    assert (d.webhook_id, d.event_type, d.job_id, d.status, d.attempts) == (
        only_succeeded.id,
        "job.succeeded",
        str(succeeded.data.job.job_id),
        "delivered",
        1,
    )
    assert d.delivered_at and d.next_attempt_at == "" and d.url == rx.url + "/a"
    assert [(a.attempt, a.response_status, a.error) for a in d.attempt_log] == [(1, 204, "")]
    by_job = await api.stub.ListDeliveries(
        notification_pb2.ListDeliveriesRequest(job_id=str(failed.data.job.job_id)), metadata=key
    )
    assert [x.webhook_id for x in by_job.deliveries] == [every.id]
    assert (
        len(
            (
                await api.stub.ListDeliveries(notification_pb2.ListDeliveriesRequest(limit=1), metadata=key)
            ).deliveries
        )
        == 1
    )
    stranger = harness.identity.key(uuid.uuid4(), "owner")
    assert (
        list(
            (
                await api.stub.ListDeliveries(
                    notification_pb2.ListDeliveriesRequest(webhook_id=every.id), metadata=stranger
                )
            ).deliveries
        )
        == []
    )
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        api.stub.ListDeliveries(notification_pb2.ListDeliveriesRequest(job_id="nope"), metadata=key),
    )
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        api.stub.ListDeliveries(notification_pb2.ListDeliveriesRequest(limit=-5), metadata=key),
    )
