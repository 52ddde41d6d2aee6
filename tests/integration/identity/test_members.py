"""Members, invites and named operators over identity's gRPC against the real PostgreSQL: invite and
accept, removal revokes keys, the last owner, isolation between organizations (in code and by row-level
security), named operators in the audit, and invite mail through a local SMTP sink (aiosmtpd)."""

from __future__ import annotations

import asyncio
import email
from uuid import UUID, uuid4

import grpc
import pytest
from gpufleet.v1 import common_pb2, identity_pb2

from services.identity.bootstrap import bootstrap
from services.identity.config import IdentitySettings
from services.identity.domain.members import hash_token
from services.identity.service_layer import commands
from services.identity.service_layer.handlers import handle
from shared.grpc import ERROR_FIELD_KEY, with_key

from .conftest import ADMIN_TOKEN, Identity
from .test_identity_service import create_org, rpc_error, sql

pytestmark = pytest.mark.integration

ADMIN = with_key(ADMIN_TOKEN)


def _email(tag: str) -> str:
    return f"{tag}-{uuid4().hex[:8]}@example.com"


async def invite(identity: Identity, key: str, role: str = "member", email: str | None = None, **more):  # type: ignore[no-untyped-def]
    return await identity.stub.CreateInvite(
        identity_pb2.CreateInviteRequest(email=email or _email(role), role=role, **more),
        metadata=with_key(key),
    )


async def join(identity: Identity, key: str, role: str) -> identity_pb2.AcceptedInvite:
    created = await invite(identity, key, role)
    return await identity.stub.AcceptInvite(identity_pb2.AcceptInviteRequest(token=created.token, name="New"))


async def authenticate(identity: Identity, key: str) -> common_pb2.Principal:
    return await identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=key))


async def test_an_invitee_accepts_and_gets_a_key_with_the_invited_role(identity: Identity) -> None:
    org = await create_org(identity)
    owner = org.api_key.secret
    address = _email("vera")
    created = await invite(identity, owner, "viewer", address.upper())
    assert created.token.startswith("gpi_") and not created.mailed  # no SMTP server configured here
    assert (created.invite.kind, created.invite.email, created.invite.role) == ("email", address, "viewer")
    stored = await sql(
        identity,
        "SELECT token_hash, prefix FROM organization_invites WHERE id = :i",
        i=UUID(created.invite.id),
    )
    assert stored == [(hash_token(created.token), created.token[:12])]  # the token itself is nowhere

    accepted = await identity.stub.AcceptInvite(
        identity_pb2.AcceptInviteRequest(token=created.token, name="Vera")
    )
    assert accepted.organization.id == org.organization.id
    assert (accepted.member.email, accepted.member.role, accepted.member.name) == (address, "viewer", "Vera")
    principal = await authenticate(identity, accepted.api_key.secret)
    assert (principal.organization_id, principal.role, principal.user_id) == (
        org.organization.id,
        "viewer",
        accepted.member.user_id,
    )
    members = await identity.stub.ListMembers(common_pb2.Empty(), metadata=with_key(accepted.api_key.secret))
    assert [(m.email, m.role) for m in members.members] == [(org.owner.email, "owner"), (address, "viewer")]
    invites = (await identity.stub.ListInvites(common_pb2.Empty(), metadata=with_key(owner))).invites
    assert [(i.id, i.uses) for i in invites] == [(created.invite.id, 1)]

    again = await rpc_error(identity.stub.AcceptInvite(identity_pb2.AcceptInviteRequest(token=created.token)))
    assert again.code() == grpc.StatusCode.UNAUTHENTICATED and "used" in (again.details() or "")
    actions = await sql(
        identity,
        "SELECT action FROM audit_log WHERE organization_id = :o AND actor_user_id = :u ORDER BY id",
        o=UUID(org.organization.id),
        u=UUID(accepted.member.user_id),
    )
    assert [a for (a,) in actions] == ["user.created", "invite.accepted", "member.added", "api_key.created"]


async def test_an_invite_code_is_multi_use_and_revocable(identity: Identity) -> None:
    org = await create_org(identity)
    owner = org.api_key.secret
    code = await identity.stub.CreateInvite(
        identity_pb2.CreateInviteRequest(role="member", max_uses=3), metadata=with_key(owner)
    )
    assert code.token.startswith("gpc_") and code.invite.kind == "code" and code.invite.max_uses == 3
    for n in range(2):
        joined = await identity.stub.AcceptInvite(
            identity_pb2.AcceptInviteRequest(token=code.token, email=_email(f"c{n}"))
        )
        assert joined.member.role == "member"
    revoked = await identity.stub.RevokeInvite(
        identity_pb2.RevokeInviteRequest(id=code.invite.id), metadata=with_key(owner)
    )
    assert revoked.revoked_at and revoked.uses == 2
    refused = await rpc_error(
        identity.stub.AcceptInvite(identity_pb2.AcceptInviteRequest(token=code.token, email=_email("late")))
    )
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (refused.details() or "")


async def test_removing_a_member_revokes_their_keys_at_once(identity: Identity) -> None:
    org = await create_org(identity)
    owner = org.api_key.secret
    member = await join(identity, owner, "admin")
    second = await identity.stub.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(name="second"), metadata=with_key(member.api_key.secret)
    )
    await authenticate(identity, second.secret)
    removed = await identity.stub.RemoveMember(
        identity_pb2.RemoveMemberRequest(user_id=member.member.user_id), metadata=with_key(owner)
    )
    assert removed.user_id == member.member.user_id
    for key in (member.api_key.secret, second.secret):
        assert (await rpc_error(authenticate(identity, key))).code() == grpc.StatusCode.UNAUTHENTICATED
    keys = await sql(
        identity,
        "SELECT revoked_at IS NOT NULL FROM api_keys WHERE user_id = :u AND organization_id = :o",
        u=UUID(member.member.user_id),
        o=UUID(org.organization.id),
    )
    assert keys == [(True,), (True,)]
    await authenticate(identity, owner)  # the owner's key is untouched


async def test_the_last_owner_is_protected_even_against_a_race(identity: Identity) -> None:
    org = await create_org(identity)
    owner = org.api_key.secret
    for call in (
        identity.stub.RemoveMember(
            identity_pb2.RemoveMemberRequest(user_id=org.owner.id), metadata=with_key(owner)
        ),
        identity.stub.UpdateMember(
            identity_pb2.UpdateMemberRequest(user_id=org.owner.id, role="admin"), metadata=with_key(owner)
        ),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.FAILED_PRECONDITION
    second = await join(identity, owner, "owner")
    # Two owners remove each other at the same moment: one removal wins, the other finds the last owner.
    results = await asyncio.gather(
        identity.stub.RemoveMember(
            identity_pb2.RemoveMemberRequest(user_id=second.member.user_id), metadata=with_key(owner)
        ),
        identity.stub.RemoveMember(
            identity_pb2.RemoveMemberRequest(user_id=org.owner.id), metadata=with_key(second.api_key.secret)
        ),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(failures) == 1, results
    assert failures[0].code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED)
    owners = await sql(
        identity,
        "SELECT count(*) FROM organization_members WHERE organization_id = :o AND role = 'owner'",
        o=UUID(org.organization.id),
    )
    assert owners == [(1,)]


async def test_who_may_invite(identity: Identity) -> None:
    org = await create_org(identity)
    owner = org.api_key.secret
    viewer = await join(identity, owner, "viewer")
    admin = await join(identity, owner, "admin")
    refused = await rpc_error(invite(identity, viewer.api_key.secret, "member"))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    refused = await rpc_error(invite(identity, admin.api_key.secret, "owner"))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED and "owner" in (refused.details() or "")
    reader = await identity.stub.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(name="reader", scopes=["members:read"]), metadata=with_key(owner)
    )
    refused = await rpc_error(invite(identity, reader.secret, "member"))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (ERROR_FIELD_KEY, "scopes") in tuple(refused.trailing_metadata() or ())
    listed = await identity.stub.ListMembers(common_pb2.Empty(), metadata=with_key(reader.secret))
    assert len(listed.members) == 3
    bad = await rpc_error(invite(identity, owner, "root"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_organization_sees_and_changes_nothing(identity: Identity) -> None:
    a, b = await create_org(identity), await create_org(identity)
    a_key, b_key = a.api_key.secret, b.api_key.secret
    member = await join(identity, a_key, "member")
    pending = await invite(identity, a_key, "viewer")
    b_members = await identity.stub.ListMembers(common_pb2.Empty(), metadata=with_key(b_key))
    assert [m.user_id for m in b_members.members] == [b.owner.id]
    assert not (await identity.stub.ListInvites(common_pb2.Empty(), metadata=with_key(b_key))).invites
    missing = str(uuid4())
    for target_invite, target_user in ((pending.invite.id, member.member.user_id), (missing, missing)):
        for call in (
            identity.stub.RevokeInvite(
                identity_pb2.RevokeInviteRequest(id=target_invite), metadata=with_key(b_key)
            ),
            identity.stub.UpdateMember(
                identity_pb2.UpdateMemberRequest(user_id=target_user, role="viewer"), metadata=with_key(b_key)
            ),
            identity.stub.RemoveMember(
                identity_pb2.RemoveMemberRequest(user_id=target_user), metadata=with_key(b_key)
            ),
        ):
            err = await rpc_error(call)
            assert err.code() == grpc.StatusCode.NOT_FOUND, err  # the same answer as for no such thing
    principal = await authenticate(identity, member.api_key.secret)
    assert principal.role == "member"
    # Row-level security: in B's scope, none of A's invites exist, and no organization sees operators.
    assert await sql(identity, "SELECT id FROM organization_invites", org_id=b.organization.id) == []
    assert await sql(identity, "SELECT count(*) FROM operators", org_id=a.organization.id) == [(0,)]


async def test_named_operators_are_named_in_authenticate_and_the_audit(identity: Identity) -> None:
    name = f"ops-{uuid4().hex[:6]}"
    created = await identity.stub.CreateOperator(
        identity_pb2.CreateOperatorRequest(name=name), metadata=ADMIN
    )
    assert created.token.startswith("gpo_") and created.operator.created_by == "admin"
    assert await sql(identity, "SELECT token_hash FROM operators WHERE name = :n", n=name) == [
        (hash_token(created.token),)
    ]
    principal = await authenticate(identity, created.token)
    assert (principal.operator, principal.operator_name) == (True, name)
    assert (await authenticate(identity, ADMIN_TOKEN)).operator_name == "admin"
    org = await identity.stub.CreateOrganization(
        identity_pb2.CreateOrganizationRequest(name="Named", owner_email=_email("n")),
        metadata=with_key(created.token),
    )
    audited = await sql(
        identity,
        "SELECT DISTINCT actor_operator FROM audit_log WHERE organization_id = :o",
        o=UUID(org.organization.id),
    )
    assert audited == [(name,)]
    dup = await rpc_error(
        identity.stub.CreateOperator(identity_pb2.CreateOperatorRequest(name=name), metadata=ADMIN)
    )
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS
    tenant = await rpc_error(
        identity.stub.ListOperators(common_pb2.Empty(), metadata=with_key(org.api_key.secret))
    )
    assert tenant.code() == grpc.StatusCode.UNAUTHENTICATED  # an API key is no operator
    await identity.stub.RevokeOperator(
        identity_pb2.RevokeOperatorRequest(id=created.operator.id), metadata=ADMIN
    )
    assert (await rpc_error(authenticate(identity, created.token))).code() == grpc.StatusCode.UNAUTHENTICATED
    listed = await identity.stub.ListOperators(common_pb2.Empty(), metadata=ADMIN)
    mine = [o for o in listed.operators if o.name == name]
    assert len(mine) == 1 and mine[0].revoked_at and mine[0].revoked_by == "admin"


# ----------------------------------------------------------------------------- invite mail


class _Sink:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # aiosmtpd hook
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


async def test_an_email_invite_is_mailed_when_an_smtp_server_is_configured(identity: Identity) -> None:
    from aiosmtpd.controller import Controller

    from shared.embedded.postgres import free_port

    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = IdentitySettings(
            identity_database_url=identity.settings.identity_database_url,
            admin_token=ADMIN_TOKEN,
            kafka_bootstrap_servers="127.0.0.1:9",
            smtp_url=f"smtp://127.0.0.1:{port}",
            smtp_from="gpufleet <invites@example.com>",
        )
        app = bootstrap(settings, db=identity.db)
        org = await create_org(identity, name="Mailed Lab")
        caller = await handle(commands.Authenticate(org.api_key.secret), app.deps)
        address = _email("mail")
        created = await handle(commands.CreateInvite(caller, email=address, role="viewer"), app.deps)
        assert created.mailed
        [message] = sink.messages
        assert message["To"] == address and message["From"] == "gpufleet <invites@example.com>"
        assert "Mailed Lab" in message["Subject"]
        assert created.issued.token in message.get_payload(decode=True).decode()
        # A server that is gone: the invite stands, the token goes back, nothing is mailed.
        controller.stop()
        again = await handle(commands.CreateInvite(caller, email=_email("gone")), app.deps)
        assert not again.mailed and again.issued.token
    finally:
        if controller.loop.is_running():
            controller.stop()
