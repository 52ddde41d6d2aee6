"""IdentityService over gRPC against the real PostgreSQL: organizations, keys, tenancy, audit, RLS."""

from __future__ import annotations

from uuid import UUID, uuid4

import grpc
import pytest
from gpufleet.v1 import common_pb2, identity_pb2
from prometheus_client import REGISTRY
from sqlalchemy import text

from services.identity.domain.keys import hash_key
from shared.contracts import limits
from shared.grpc import ERROR_FIELD_KEY, with_key

from .conftest import ADMIN_TOKEN, Identity

pytestmark = pytest.mark.integration

ADMIN = with_key(ADMIN_TOKEN)


async def create_org(
    identity: Identity, email: str | None = None, name: str = "Acme GPU Lab"
) -> identity_pb2.CreateOrganizationResponse:
    email = email or f"owner-{uuid4().hex[:8]}@Example.com"
    return await identity.stub.CreateOrganization(
        identity_pb2.CreateOrganizationRequest(name=name, owner_email=email, owner_name="Ada"), metadata=ADMIN
    )


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def sql(identity: Identity, query: str, org_id: str | None = None, **params) -> list:
    scope = {"org_id": org_id} if org_id else {"system": True}
    async with identity.db.transaction(**scope) as s:
        result = await s.execute(text(query), params)
        return list(result.all()) if result.returns_rows else []


async def test_organization_key_lifecycle(identity: Identity) -> None:
    created = await create_org(identity)
    org_id, secret = created.organization.id, created.api_key.secret
    assert created.organization.name == "Acme GPU Lab" and created.organization.created_at.endswith("Z")
    assert created.owner.email.startswith("owner-") and created.owner.email == created.owner.email.lower()
    assert secret.startswith("gpf_") and len(secret) == 50 and created.api_key.key.prefix == secret[:12]
    assert created.api_key.key.name == "default"

    principal = await identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=secret))
    assert principal == common_pb2.Principal(
        organization_id=org_id,
        user_id=created.owner.id,
        role="owner",
        api_key_id=created.api_key.key.id,
        scopes=list(limits.KEY_SCOPES),
    )
    assert (await identity.stub.GetOrganization(common_pb2.Empty(), metadata=with_key(secret))).id == org_id

    ci = await identity.stub.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(name="ci", scopes=["jobs:read"], expires_in_seconds=3600),
        metadata=with_key(secret),
    )
    assert ci.key.scopes == ["jobs:read"] and ci.key.expires_at and not ci.key.revoked_at
    ci_principal = await identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=ci.secret))
    assert ci_principal.scopes == ["jobs:read"] and ci_principal.api_key_id == ci.key.id

    listed = await identity.stub.ListApiKeys(common_pb2.Empty(), metadata=with_key(secret))
    assert [k.id for k in listed.keys] == [created.api_key.key.id, ci.key.id]
    assert listed.keys[0].last_used_at  # the owner's key has been used

    revoked = await identity.stub.RevokeApiKey(
        identity_pb2.RevokeApiKeyRequest(id=ci.key.id), metadata=with_key(secret)
    )
    assert revoked.revoked_at
    again = await identity.stub.RevokeApiKey(
        identity_pb2.RevokeApiKeyRequest(id=ci.key.id), metadata=with_key(secret)
    )
    assert again.revoked_at == revoked.revoked_at  # idempotent

    err = await rpc_error(identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=ci.secret)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and err.details() == "invalid API key"
    err = await rpc_error(identity.stub.ListApiKeys(common_pb2.Empty(), metadata=with_key(ci.secret)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    # Only hashes are stored, and every change left an audit row in the organization.
    keys = await sql(
        identity, "SELECT key_hash FROM api_keys WHERE organization_id = :o ORDER BY created_at", o=org_id
    )
    assert [r.key_hash for r in keys] == [hash_key(secret), hash_key(ci.secret)]
    columns = await sql(
        identity,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'identity' AND table_name = 'api_keys'",
    )
    assert "key" not in {r.column_name for r in columns}
    actions = await sql(
        identity,
        "SELECT action, actor_api_key_id FROM audit_log WHERE organization_id = :o ORDER BY id",
        o=org_id,
    )
    assert [a.action for a in actions] == [
        "organization.created",
        "user.created",
        "member.added",
        "api_key.created",
        "api_key.created",
        "api_key.revoked",
    ]
    assert str(actions[-1].actor_api_key_id) == created.api_key.key.id


async def test_unknown_and_expired_keys_get_the_same_answer(identity: Identity) -> None:
    created = await create_org(identity)
    short = await identity.stub.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(name="short", expires_in_seconds=3600),
        metadata=with_key(created.api_key.secret),
    )
    await sql(
        identity, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :i", i=short.key.id
    )
    for candidate in ("", "nonsense", "gpf_" + "A" * 40, short.secret):
        err = await rpc_error(identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=candidate)))
        assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED, "invalid API key")


async def test_last_used_is_written_at_most_once_a_minute(identity: Identity) -> None:
    created = await create_org(identity)
    key_id, req = created.api_key.key.id, identity_pb2.AuthenticateRequest(api_key=created.api_key.secret)

    async def last_used():
        return (await sql(identity, "SELECT last_used FROM api_keys WHERE id = :i", i=key_id))[0].last_used

    await sql(
        identity, "UPDATE api_keys SET last_used = now() - interval '30 seconds' WHERE id = :i", i=key_id
    )
    recent = await last_used()
    await identity.stub.Authenticate(req)
    assert await last_used() == recent
    await sql(
        identity, "UPDATE api_keys SET last_used = now() - interval '61 seconds' WHERE id = :i", i=key_id
    )
    stale = await last_used()
    await identity.stub.Authenticate(req)
    assert await last_used() > stale


async def test_another_organization_sees_nothing_of_mine(identity: Identity) -> None:
    a, b = await create_org(identity), await create_org(identity)
    b_key = with_key(b.api_key.secret)
    listed = await identity.stub.ListApiKeys(common_pb2.Empty(), metadata=b_key)
    assert [k.id for k in listed.keys] == [b.api_key.key.id]
    for key_id in (a.api_key.key.id, str(uuid4()), "not-a-uuid"):
        err = await rpc_error(
            identity.stub.RevokeApiKey(identity_pb2.RevokeApiKeyRequest(id=key_id), metadata=b_key)
        )
        assert err.code() == grpc.StatusCode.NOT_FOUND
    # a's key still works
    assert (
        await identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=a.api_key.secret))
    ).organization_id == a.organization.id


async def test_row_level_security_scopes_transactions(identity: Identity) -> None:
    a, b = await create_org(identity), await create_org(identity)
    a_id, b_id = a.organization.id, b.organization.id
    for table in ("api_keys", "organization_members", "audit_log"):
        seen = await sql(
            identity, f"SELECT count(*) AS n FROM {table} WHERE organization_id = :a", org_id=b_id, a=a_id
        )
        assert seen[0].n == 0, table
        own = await sql(
            identity, f"SELECT count(*) AS n FROM {table} WHERE organization_id = :b", org_id=b_id, b=b_id
        )
        assert own[0].n > 0, table
    orgs = await sql(identity, "SELECT id FROM organizations", org_id=b_id)
    assert [str(r.id) for r in orgs] == [b_id]
    with pytest.raises(Exception, match="row-level security"):
        await sql(
            identity,
            "INSERT INTO audit_log (organization_id, action, target_type, target_id) "
            "VALUES (:a, 'x', 'y', 'z')",
            org_id=b_id,
            a=a_id,
        )


async def test_owner_email_reuses_the_user(identity: Identity) -> None:
    email = f"shared-{uuid4().hex[:8]}@example.com"
    first, second = await create_org(identity, email), await create_org(identity, email.upper())
    assert first.owner.id == second.owner.id and first.organization.id != second.organization.id
    users = await sql(identity, "SELECT id FROM users WHERE email = :e", e=email)
    assert [r.id for r in users] == [UUID(first.owner.id)]


@pytest.mark.parametrize(
    "metadata", [(), with_key("wrong-token-but-long-enough"), (("authorization", ADMIN_TOKEN),)]
)
async def test_create_organization_needs_the_admin_token(identity: Identity, metadata) -> None:
    name = f"nope-{uuid4().hex}"
    err = await rpc_error(
        identity.stub.CreateOrganization(
            identity_pb2.CreateOrganizationRequest(name=name, owner_email="x@example.com"), metadata=metadata
        )
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not await sql(identity, "SELECT 1 FROM organizations WHERE name = :n", n=name)


async def test_tenant_calls_need_a_valid_key(identity: Identity) -> None:
    for metadata in ((), with_key("gpf_" + "z" * 40), with_key(ADMIN_TOKEN)):
        err = await rpc_error(identity.stub.GetOrganization(common_pb2.Empty(), metadata=metadata))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_invalid_input_is_invalid_argument_with_the_field(identity: Identity) -> None:
    for request, field in [
        (identity_pb2.CreateOrganizationRequest(name="  ", owner_email="a@example.com"), "name"),
        (identity_pb2.CreateOrganizationRequest(name="x" * 201, owner_email="a@example.com"), "name"),
        (identity_pb2.CreateOrganizationRequest(name="Acme", owner_email="not-an-email"), "owner_email"),
    ]:
        err = await rpc_error(identity.stub.CreateOrganization(request, metadata=ADMIN))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (ERROR_FIELD_KEY, field) in tuple(err.trailing_metadata())
    owner = with_key((await create_org(identity)).api_key.secret)
    for request, field in [
        (identity_pb2.CreateApiKeyRequest(name=""), "name"),
        (identity_pb2.CreateApiKeyRequest(name="x" * 101), "name"),
        (identity_pb2.CreateApiKeyRequest(name="k", scopes=["jobs:delete"]), "scopes"),
        (identity_pb2.CreateApiKeyRequest(name="k", expires_in_seconds=-1), "expires_in_seconds"),
    ]:
        err = await rpc_error(identity.stub.CreateApiKey(request, metadata=owner))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (ERROR_FIELD_KEY, field) in tuple(err.trailing_metadata())


async def test_only_owners_and_admins_create_keys(identity: Identity) -> None:
    created = await create_org(identity)
    await sql(
        identity,
        "UPDATE organization_members SET role = 'member' WHERE organization_id = :o",
        o=created.organization.id,
    )
    member = with_key(created.api_key.secret)
    assert (
        await identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=created.api_key.secret))
    ).role == "member"
    err = await rpc_error(
        identity.stub.CreateApiKey(identity_pb2.CreateApiKeyRequest(name="k"), metadata=member)
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    # Listing needs no role; revoking one's own key is always allowed.
    assert len((await identity.stub.ListApiKeys(common_pb2.Empty(), metadata=member)).keys) == 1
    await identity.stub.RevokeApiKey(
        identity_pb2.RevokeApiKeyRequest(id=created.api_key.key.id), metadata=member
    )


async def test_authentications_are_counted_by_outcome(identity: Identity) -> None:
    created = await create_org(identity)
    secret = created.api_key.secret

    def counts() -> dict[str, float]:
        return {
            o: REGISTRY.get_sample_value("gpufleet_identity_authentications_total", {"outcome": o}) or 0.0
            for o in ("ok", "malformed", "invalid", "expired", "revoked")
        }

    before = counts()
    await identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=secret))
    await identity.stub.ListApiKeys(common_pb2.Empty(), metadata=with_key(secret))  # the caller's key too
    for candidate in ("nonsense", "gpf_" + "0" * 40):
        err = await rpc_error(identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=candidate)))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    await identity.stub.RevokeApiKey(
        identity_pb2.RevokeApiKeyRequest(id=created.api_key.key.id), metadata=with_key(secret)
    )
    await rpc_error(identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=secret)))
    after = counts()
    # The revoke call authenticated once more (ok) before it revoked.
    assert {o: after[o] - before[o] for o in after} == {
        "ok": 3.0,
        "malformed": 1.0,
        "invalid": 1.0,
        "expired": 0.0,
        "revoked": 1.0,
    }


async def test_authenticate_keys_answers_each_key_in_order_and_records_only_real_uses(
    identity: Identity,
) -> None:
    """AuthenticateKeys (the services' caches re-verifying keys in use): one answer per key, valid or
    not without saying why; a key's last use moves only when the caller says it was used."""
    a, b = await create_org(identity), await create_org(identity)
    revoked = await identity.stub.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(name="ci"), metadata=with_key(a.api_key.secret)
    )
    await identity.stub.RevokeApiKey(
        identity_pb2.RevokeApiKeyRequest(id=revoked.key.id), metadata=with_key(a.api_key.secret)
    )
    asked = [
        (a.api_key.secret, False),
        ("gpf_" + "A" * 46, True),  # key-shaped, unknown
        (revoked.secret, True),
        (ADMIN_TOKEN, True),  # the operator token is never valid here
        ("nonsense", True),
        (b.api_key.secret, True),
    ]

    async def last_used(key_id: str):
        return (await sql(identity, "SELECT last_used FROM api_keys WHERE id = :i", i=key_id))[0].last_used

    for key in (a.api_key.key.id, b.api_key.key.id):
        await sql(identity, "UPDATE api_keys SET last_used = NULL WHERE id = :i", i=key)
    answer = await identity.stub.AuthenticateKeys(
        identity_pb2.AuthenticateKeysRequest(
            keys=[identity_pb2.KeyToVerify(api_key=k, used=u) for k, u in asked]
        )
    )
    assert [k.valid for k in answer.keys] == [True, False, False, False, False, True]
    assert [k.principal.organization_id for k in answer.keys] == [
        a.organization.id,
        "",
        "",
        "",
        "",
        b.organization.id,
    ]
    assert answer.keys[0].principal == await identity.stub.Authenticate(
        identity_pb2.AuthenticateRequest(api_key=a.api_key.secret)
    )
    assert (
        answer.keys[5].principal.role == "owner" and answer.keys[5].principal.api_key_id == b.api_key.key.id
    )
    await sql(identity, "UPDATE api_keys SET last_used = NULL WHERE id = :i", i=a.api_key.key.id)
    await identity.stub.AuthenticateKeys(
        identity_pb2.AuthenticateKeysRequest(keys=[identity_pb2.KeyToVerify(api_key=a.api_key.secret)])
    )
    assert await last_used(a.api_key.key.id) is None  # verified, not used: no use recorded
    assert await last_used(b.api_key.key.id) is not None  # used since its last verification

    for count in (0, 1001):
        err = await rpc_error(
            identity.stub.AuthenticateKeys(
                identity_pb2.AuthenticateKeysRequest(
                    keys=[identity_pb2.KeyToVerify(api_key=a.api_key.secret)] * count
                )
            )
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
