"""The one audit log in identity against the real PostgreSQL and broker: a consumed record is stored once
(the same event twice, through the sink and through the broker), identity's own changes land in the same
shape with the request id, owners and admins read their organization's records only (row-level security
backs it), members are refused, and the operator reads every organization's and the fleet-wide ones."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid

import grpc
import pytest
from gpufleet.v1 import identity_pb2, identity_pb2_grpc

from services.identity.entrypoints import consumers
from services.identity.service_layer.audit import prune_audit
from services.identity.service_layer.commands import PruneAudit
from shared import audit
from shared.contracts import audit as contract
from shared.contracts import topics
from shared.events import MalformedEvent
from shared.grpc import channel, with_key
from shared.kafka import ensure_topics, make_broker, make_producer
from shared.settings import KafkaSettings

from .conftest import ADMIN_TOKEN, Identity
from .test_identity_service import create_org, rpc_error, sql
from .test_members import join

pytestmark = pytest.mark.integration


def scheduler_record(org: uuid.UUID | None, *, request_id: str = "req-int") -> object:
    call = audit.AuditCall(
        actor=contract.AuditActorV1(kind="user", user_id=uuid.uuid4()), request_id=request_id
    )
    return audit.build(
        "scheduler",
        "job.cancel",
        "job",
        uuid.uuid4(),
        organization_id=org,
        before={"status": "queued"},
        after={"status": "cancelled"},
        call=call,
    )


def audit_stub(identity: Identity) -> tuple[grpc.aio.Channel, identity_pb2_grpc.AuditServiceStub]:
    ch = channel(identity.target)
    return ch, identity_pb2_grpc.AuditServiceStub(ch)


async def rows_of_event(identity: Identity, event_id: uuid.UUID) -> int:
    [(n,)] = await sql(identity, "SELECT count(*) FROM audit_log WHERE event_id = :e", e=event_id)
    return int(n)


async def test_the_same_event_twice_is_one_row(identity: Identity) -> None:
    org = await create_org(identity)
    envelope = scheduler_record(uuid.UUID(org.organization.id))
    sink = consumers.audit_handler(identity.app.deps)
    await sink([envelope])
    await sink([envelope])  # redelivered
    assert await rows_of_event(identity, envelope.id) == 1


async def test_a_batch_is_stored_once_per_event_in_one_go(identity: Identity) -> None:
    org = uuid.UUID((await create_org(identity)).organization.id)
    sink = consumers.audit_handler(identity.app.deps)
    stored = scheduler_record(org)
    await sink([stored])
    batch = [scheduler_record(org, request_id=f"batch-{i}") for i in range(50)]
    await sink([batch[0], stored, *batch, batch[-1]])  # one applied before, two twice within the batch
    assert [await rows_of_event(identity, e.id) for e in (stored, *batch)] == [1] * 51
    [(n,)] = await sql(identity, "SELECT count(*) FROM audit_log WHERE request_id LIKE 'batch-%'")
    assert n == 50


def test_a_record_sent_by_another_service_than_it_names_is_refused() -> None:
    envelope = scheduler_record(uuid.uuid4())
    assert consumers.to_command(envelope).record.service == "scheduler"
    forged = dataclasses.replace(envelope, source="gpufleet/fleet")
    with pytest.raises(MalformedEvent, match="sent by"):
        consumers.to_command(forged)


async def test_consumed_through_the_broker_once(identity: Identity, kafka) -> None:
    org = uuid.UUID((await create_org(identity)).organization.id)
    settings = KafkaSettings(kafka_bootstrap_servers=kafka.bootstrap, kafka_idempotent_producer=False)
    envelope = scheduler_record(org)
    await ensure_topics(settings, (topics.AUDIT,))
    producer = make_producer(settings, "test-audit")
    await producer.start()
    try:
        for _ in range(2):
            await producer.send_and_wait(
                topics.AUDIT, envelope.value(), key=str(org).encode(), headers=envelope.headers()
            )
    finally:
        await producer.stop()
    broker = make_broker(settings, "test-identity-audit")
    consumers.register(broker, identity.app.deps, group_id=f"identity.test-{uuid.uuid4().hex[:8]}")
    await broker.start()
    try:
        async with asyncio.timeout(30):
            while await rows_of_event(identity, envelope.id) == 0:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # the second copy has had its chance
    finally:
        await broker.stop()
    assert await rows_of_event(identity, envelope.id) == 1


async def test_owners_read_their_own_log_and_nobody_elses(identity: Identity) -> None:
    a, b = await create_org(identity, name="A"), await create_org(identity, name="B")
    a_org, b_org = uuid.UUID(a.organization.id), uuid.UUID(b.organization.id)
    sink = consumers.audit_handler(identity.app.deps)
    mine = scheduler_record(a_org, request_id="req-a")
    await sink([mine])
    await sink([scheduler_record(None)])  # fleet-wide: the operator's alone
    ch, stub = audit_stub(identity)
    try:
        # Identity's own change, with the request id the gateway sends.
        key = await identity.stub.CreateApiKey(
            identity_pb2.CreateApiKeyRequest(name="ci"),
            metadata=(*with_key(a.api_key.secret), ("x-request-id", "req-key")),
        )
        page = await stub.ListAudit(identity_pb2.ListAuditLogRequest(), metadata=with_key(a.api_key.secret))
        assert {r.organization_id for r in page.records} == {a.organization.id}
        by_action: dict[str, identity_pb2.AuditLogRecord] = {}
        for r in page.records:  # newest first: the first of each action is the latest
            by_action.setdefault(r.action, r)
        created = by_action["api_key.created"]
        assert created.target_id == key.key.id and created.service == "identity"
        assert created.request_id == "req-key" and created.actor.kind == "user"
        assert created.actor.user_id == a.owner.id and created.actor.api_key_id == a.api_key.key.id
        cancel = by_action["job.cancel"]
        assert cancel.request_id == "req-a" and json.loads(cancel.before_json) == {"status": "queued"}
        only = await stub.ListAudit(
            identity_pb2.ListAuditLogRequest(service="scheduler"), metadata=with_key(a.api_key.secret)
        )
        assert [r.action for r in only.records] == ["job.cancel"]

        theirs = await stub.ListAudit(identity_pb2.ListAuditLogRequest(), metadata=with_key(b.api_key.secret))
        assert theirs.records and all(r.organization_id == b.organization.id for r in theirs.records)
        assert str(mine.id) not in str(theirs) and a.organization.id not in str(theirs)
        # Row-level security: in B's scope, A's rows and the fleet-wide ones do not exist.
        assert (
            await sql(
                identity, "SELECT id FROM audit_log WHERE organization_id = :o", org_id=str(b_org), o=a_org
            )
            == []
        )
        assert (
            await sql(identity, "SELECT id FROM audit_log WHERE organization_id IS NULL", org_id=str(b_org))
            == []
        )

        member = await join(identity, a.api_key.secret, "member")
        refused = await rpc_error(
            stub.ListAudit(identity_pb2.ListAuditLogRequest(), metadata=with_key(member.api_key.secret))
        )
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED

        every = await stub.ListAllAudit(
            identity_pb2.ListAuditLogRequest(service="scheduler", limit=200), metadata=with_key(ADMIN_TOKEN)
        )
        assert {a.organization.id, ""} <= {r.organization_id for r in every.records}
        b_only = await stub.ListAllAudit(
            identity_pb2.ListAuditLogRequest(organization_id=b.organization.id),
            metadata=with_key(ADMIN_TOKEN),
        )
        assert b_only.records and {r.organization_id for r in b_only.records} == {b.organization.id}
        one = await stub.ListAllAudit(
            identity_pb2.ListAuditLogRequest(organization_id=a.organization.id),
            metadata=with_key(ADMIN_TOKEN),
        )
        assert {r.organization_id for r in one.records} == {a.organization.id}
        refused = await rpc_error(
            stub.ListAllAudit(identity_pb2.ListAuditLogRequest(), metadata=with_key(a.api_key.secret))
        )
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await ch.close()


async def test_pages_follow_the_cursor(identity: Identity) -> None:
    a = await create_org(identity)
    org = uuid.UUID(a.organization.id)
    sink = consumers.audit_handler(identity.app.deps)
    for _ in range(5):
        await sink([scheduler_record(org)])
    ch, stub = audit_stub(identity)
    try:
        seen: list[str] = []
        cursor = ""
        while True:
            page = await stub.ListAudit(
                identity_pb2.ListAuditLogRequest(service="scheduler", limit=2, cursor=cursor),
                metadata=with_key(a.api_key.secret),
            )
            seen += [r.id for r in page.records]
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        assert len(seen) == 5 and seen == sorted(seen, key=int, reverse=True)
    finally:
        await ch.close()


async def test_records_past_retention_are_deleted_in_chunks_and_newer_ones_kept(identity: Identity) -> None:
    org = uuid.UUID((await create_org(identity)).organization.id)
    sink = consumers.audit_handler(identity.app.deps)
    events = [scheduler_record(org, request_id=f"ret-{i}") for i in range(5)]
    for event in events:
        await sink([event])
    old = [e.id for e in events[:3]]
    await sql(
        identity, "UPDATE audit_log SET at = now() - interval '40 days' WHERE event_id = ANY(:e)", e=old
    )

    app = dataclasses.replace(identity.app, audit_retention_days=30)
    assert await prune_audit(PruneAudit(30, chunk=2), app.deps) == 3  # two chunks: 2, then 1
    assert [await rows_of_event(identity, e.id) for e in events] == [0, 0, 0, 1, 1]
    assert await app.prune_audit_once() == 0
    assert await dataclasses.replace(identity.app, audit_retention_days=0).prune_audit_once() == 0
