"""The one audit log's records (shared/audit.py): building them, the actor and request id of the call,
redaction, and the records each service writes in its unit of work (over the services' fakes)."""

from __future__ import annotations

import uuid

import pytest
from gpufleet.v1 import common_pb2

from services.fleet.service_layer import audit as fleet_audit
from services.identity.domain.audit import AuditQuery, check_filters, decode_cursor, encode_cursor
from services.identity.entrypoints.consumers import to_command
from services.scheduler.service_layer import audit as scheduler_audit
from services.scheduler.service_layer import commands as scheduler_commands
from services.scheduler.service_layer import handlers as scheduler_handlers
from shared import audit
from shared.contracts import audit as contract
from shared.contracts import topics
from shared.errors import InvalidArgument
from shared.events import Envelope, MalformedEvent, decode

from ..scheduler.fakes import fake_dependencies


@pytest.fixture(autouse=True)
def _a_call_of_its_own():
    tokens = audit.enter_call(None)
    yield
    audit.leave_call(tokens)


def test_secrets_are_redacted_by_field_name_at_any_depth():
    state = {
        "url": "https://example.com/hook",
        "signing_secret": "whsec_abc",
        "secret": "s",
        "key_hash": "ab" * 32,
        "nested": {"token": "gpfj_x", "webhook_secret": "w", "token_count": 3, "name": "kept"},
        "list": [{"password": "p", "prefix": "gpf_1234"}],
        "unset_secret": None,
    }
    out = audit.redact(state)
    assert out["url"] == "https://example.com/hook"
    assert out["signing_secret"] == out["secret"] == out["key_hash"] == contract.REDACTED
    assert out["nested"] == {
        "token": contract.REDACTED,
        "webhook_secret": contract.REDACTED,
        "token_count": 3,
        "name": "kept",
    }
    assert out["list"] == [{"password": contract.REDACTED, "prefix": "gpf_1234"}]
    assert out["unset_secret"] is None  # nothing to hide: says there was none
    assert "whsec_abc" not in repr(out) and "gpfj_x" not in repr(out)


def test_a_record_carries_the_bound_caller_and_request_id_and_round_trips_the_wire():
    user, key, org, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    audit.bind_request_id("req-123")
    audit.bind_principal(
        common_pb2.Principal(organization_id=str(org), user_id=str(user), api_key_id=str(key))
    )
    envelope = audit.build(
        "scheduler",
        "job.cancel",
        "job",
        job,
        organization_id=org,
        before={"status": "queued"},
        after={"status": "cancelled", "token": "t"},
    )
    data = envelope.data
    assert data.actor == contract.AuditActorV1(kind="user", user_id=user, api_key_id=key)
    assert data.request_id == "req-123" and data.service == "scheduler" and data.target_id == str(job)
    assert data.after == {"status": "cancelled", "token": contract.REDACTED}
    assert envelope.source == "gpufleet/scheduler" and topics.source_allowed(topics.AUDIT, envelope.source)
    decoded = decode(envelope.headers(), envelope.value(), contract.EVENT_TYPES)
    assert decoded.id == envelope.id and decoded.data == data and decoded.organization_id == str(org)


def test_an_operator_a_node_and_nobody():
    audit.bind_principal(common_pb2.Principal(operator=True, operator_name="ops-1"))
    assert audit.current().actor == contract.AuditActorV1(kind="operator", operator_name="ops-1")
    audit.bind_principal(common_pb2.Principal(operator=True))
    assert audit.current().actor.operator_name == "admin"
    node = uuid.uuid4()
    audit.bind_node(node)
    assert audit.current().actor == contract.AuditActorV1(kind="node", node_id=node)
    tokens = audit.enter_call("")
    assert audit.current() == audit.AuditCall(actor=audit.SYSTEM, request_id=None)
    audit.leave_call(tokens)
    assert audit.current().actor.kind == "node"  # the outer call's caller is back


def test_identity_takes_a_record_only_from_the_service_it_names():
    envelope = audit.build("fleet", "join_token.create", "join_token", uuid.uuid4(), organization_id=None)
    cmd = to_command(envelope)
    assert (
        cmd.event_id == envelope.id and cmd.record.service == "fleet" and cmd.record.organization_id is None
    )
    forged = Envelope(type=envelope.type, source="gpufleet/notification", data=envelope.data)
    with pytest.raises(MalformedEvent):
        to_command(forged)


def test_audit_cursors_and_filters():
    assert decode_cursor(encode_cursor(42)) == 42
    for bad in ("", "!!", encode_cursor(0), "eA"):
        with pytest.raises(InvalidArgument):
            decode_cursor(bad)
    with pytest.raises(InvalidArgument):
        check_filters(AuditQuery(organization_id=None, target_id="x"))


def test_policy_audit_rows_are_bridged_with_their_own_actor():
    from services.scheduler.domain.policy_admin import Actor, AuditEntry

    org, user, key = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    audit.bind_request_id("r-9")
    entry = AuditEntry(
        Actor(False, org, user, key),
        "PolicyService/SetUserCaps",
        org,
        {"organization_id": str(org)},
        None,
        {"caps": []},
    )
    rec = scheduler_audit.policy_change(entry).data
    assert rec.action == "policy.set_user_caps" and rec.target_type == "policy"
    assert (
        rec.actor == contract.AuditActorV1(kind="user", user_id=user, api_key_id=key)
        and rec.request_id == "r-9"
    )
    assert rec.before is None and rec.after == {"caps": []}
    op = scheduler_audit.policy_change(
        AuditEntry(Actor(True, name="ops"), "PolicyService/SetHalfLife", None, {}, 60.0, 120.0)
    ).data
    assert op.actor.kind == "operator" and op.organization_id is None and op.after == {"value": 120.0}


async def test_scheduler_records_submit_cancel_hold_and_priority_in_the_change_unit():
    deps, uow, _ = fake_dependencies()
    org = uuid.uuid4()
    audit.bind_request_id("req-1")
    cmd = scheduler_commands.SubmitJob(
        organization_id=org, user_id=None, command="true", gpu_count=1, hold=True
    )
    job = await scheduler_handlers.submit_job(cmd, deps)
    await scheduler_handlers.release_job(
        scheduler_commands.ReleaseJob(organization_id=org, job_id=str(job.id)), deps
    )
    await scheduler_handlers.update_job_priority(
        scheduler_commands.UpdateJobPriority(organization_id=org, job_id=str(job.id), priority=80), deps
    )
    await scheduler_handlers.cancel_job(
        scheduler_commands.CancelJob(organization_id=org, job_id=str(job.id)), deps
    )
    records = [e.data for e in uow.store.audits]
    assert [r.action for r in records] == ["job.submit", "job.release", "job.priority", "job.cancel"]
    assert all(
        r.target_id == str(job.id) and r.organization_id == org and r.request_id == "req-1" for r in records
    )
    submit, release, priority, cancel = records
    assert submit.before is None and submit.after["held"] is True
    assert release.before["held"] is True and release.after["held"] is False
    assert priority.before["priority"] == 50 and priority.after["priority"] == 80
    assert cancel.before["status"] == "queued" and cancel.after["status"] == "cancelled"
    assert "command" not in cancel.after  # a job's command can hold anything: not in the log


def test_fleet_join_token_state_never_holds_its_hash():
    from datetime import UTC, datetime, timedelta

    from services.fleet.domain.identity import JoinToken, NodeProfile

    token = JoinToken.create(
        b"\x01" * 32,
        NodeProfile(None, "onprem", False, {"rack": "r1"}),
        datetime.now(UTC),
        timedelta(hours=1),
        "rack 1",
    )
    rec = fleet_audit.join_token_change("join_token.create", token, None).data
    assert (
        rec.organization_id is None
        and rec.target_type == "join_token"
        and rec.after["labels"] == {"rack": "r1"}
    )
    assert "token_hash" not in rec.after and "\\x01" not in rec.model_dump_json()


async def test_notification_records_webhook_create_and_delete_without_the_secret():
    from services.notification.domain.retry import RetryPolicy
    from services.notification.service_layer import commands as n_commands
    from services.notification.service_layer import handlers as n_handlers

    from ..notification.fakes import FakeUnitOfWorkFactory, RecordingMetrics

    uow = FakeUnitOfWorkFactory()
    deps = n_handlers.Dependencies(
        uow=uow,
        allow_private_targets=True,
        policy=RetryPolicy(base_seconds=1, max_attempts=3),
        metrics=RecordingMetrics(),
        rand=lambda: 1.0,
    )
    org = uuid.uuid4()
    audit.bind_request_id("req-hook")
    created = await n_handlers.create_webhook(n_commands.CreateWebhook(org, "http://a.example/h"), deps)
    await n_handlers.delete_webhook(n_commands.DeleteWebhook(org, str(created.webhook.id)), deps)
    records = [e.data for e in uow.store.audits]
    assert [(r.action, r.target_id) for r in records] == [
        ("webhook.create", str(created.webhook.id)),
        ("webhook.delete", str(created.webhook.id)),
    ]
    create, delete = records
    assert create.before is None and create.after["url"] == "http://a.example/h"
    assert delete.before == create.after and delete.after is None
    assert all(r.request_id == "req-hook" and r.organization_id == org for r in records)
    assert created.secret not in "".join(e.value().decode() for e in uow.store.audits)
