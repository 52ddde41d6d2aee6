"""PolicyService over gRPC on the real schema: the operator token and API keys, the stored policy and
its audit trail (same transaction, append-only, row-level security), seeding from settings once, and
the store a second replica refreshes from."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from gpufleet.v1 import common_pb2, policy_pb2, policy_pb2_grpc
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.scheduler.adapters.policy_repository import SqlPolicyRepository
from services.scheduler.domain.engine import Policy, Quota, UserCap
from services.scheduler.domain.policy_admin import StoredPolicy
from services.scheduler.entrypoints.policy_api import PolicyServicer
from services.scheduler.service_layer.policy import PolicyDependencies, PolicyStore, seed
from shared import api_keys
from shared.grpc import Authenticator, channel

from .conftest import Harness

OPERATOR = "operator-token-for-policy-tests"
OP = (("authorization", f"Bearer {OPERATOR}"),)


class Api:
    def __init__(self, harness: Harness, stub: policy_pb2_grpc.PolicyServiceStub, store: PolicyStore) -> None:
        self.h, self.stub, self.store = harness, stub, store

    def key(
        self, org: uuid.UUID, role: str = "owner", scopes: tuple[str, ...] = (), project: str = ""
    ) -> tuple:
        secret = api_keys.new_key()
        self.h.identity.keys[secret] = common_pb2.Principal(
            organization_id=str(org),
            user_id=str(uuid.uuid4()),
            role=role,
            api_key_id=str(uuid.uuid4()),
            scopes=list(scopes),
            project_id=project,
        )
        return (("authorization", f"Bearer {secret}"),)


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[Api]:
    harness.identity.keys[OPERATOR] = common_pb2.Principal(operator=True)
    repo = SqlPolicyRepository(harness.db)
    store = PolicyStore(repo, Policy(), refresh_s=3600)
    auth = Authenticator(harness.fleet_target, ttl=0)
    server = grpc.aio.server()
    policy_pb2_grpc.add_PolicyServiceServicer_to_server(
        PolicyServicer(PolicyDependencies(repo, store, harness.deps.wakeup), auth), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = channel(f"127.0.0.1:{port}")
    yield Api(harness, policy_pb2_grpc.PolicyServiceStub(client), store)
    await client.close()
    await server.stop(None)
    await auth.close()


async def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_the_operator_sets_a_quota_and_the_audit_trail_says_what_it_replaced(api: Api):
    org = uuid.uuid4()
    quota = await api.stub.SetQuota(
        policy_pb2.SetQuotaRequest(
            organization_id=str(org), gpu_type="h100-80gb", nominal=1, borrowing_limit=0
        ),
        metadata=OP,
    )
    assert (quota.nominal, quota.borrowing_limit, quota.HasField("lending_limit")) == (1, 0, False)
    await api.stub.SetQuota(
        policy_pb2.SetQuotaRequest(organization_id=str(org), gpu_type="h100-80gb", nominal=2), metadata=OP
    )
    policy = await api.stub.GetPolicy(policy_pb2.GetPolicyRequest(), metadata=OP)
    mine = [q for q in policy.quotas if q.organization_id == str(org)]
    assert [(q.nominal, q.HasField("borrowing_limit")) for q in mine] == [(2, False)]

    audit = await api.stub.ListAudit(policy_pb2.ListAuditRequest(organization_id=str(org)), metadata=OP)
    newest, oldest = audit.entries
    assert (oldest.actor, oldest.method, oldest.organization_id) == (
        "operator",
        "PolicyService/SetQuota",
        str(org),
    )
    assert json.loads(oldest.before_json) is None
    assert json.loads(oldest.after_json) == {"nominal": 1, "borrowing_limit": 0, "lending_limit": None}
    assert json.loads(newest.before_json) == json.loads(oldest.after_json)
    assert newest.id > oldest.id and newest.at

    await api.stub.DeleteQuota(
        policy_pb2.DeleteQuotaRequest(organization_id=str(org), gpu_type="h100-80gb"), metadata=OP
    )
    missing = api.stub.DeleteQuota(
        policy_pb2.DeleteQuotaRequest(organization_id=str(org), gpu_type="h100-80gb"), metadata=OP
    )
    assert await _code(missing) == grpc.StatusCode.NOT_FOUND


async def test_bad_input_is_invalid_argument_with_the_field(api: Api):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.SetQuota(
            policy_pb2.SetQuotaRequest(organization_id=str(uuid.uuid4()), gpu_type="h100-80gb", nominal=-1),
            metadata=OP,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("gpufleet-error-field", "nominal") in tuple(err.value.trailing_metadata() or ())
    bad_org = api.stub.SetFairShare(
        policy_pb2.SetFairShareRequest(organization_id="x", weight=1), metadata=OP
    )
    assert await _code(bad_org) == grpc.StatusCode.INVALID_ARGUMENT


async def test_only_the_operator_token_makes_operator_calls(api: Api):
    org = uuid.uuid4()
    request = policy_pb2.SetQuotaRequest(organization_id=str(org), gpu_type="h100-80gb", nominal=99)
    owner_admin_key = api.key(org, "owner", ("admin",))
    assert (
        await _code(api.stub.SetQuota(request, metadata=owner_admin_key)) == grpc.StatusCode.PERMISSION_DENIED
    )
    assert await _code(api.stub.SetQuota(request)) == grpc.StatusCode.UNAUTHENTICATED
    unknown = (("authorization", "Bearer not-the-operator-token"),)
    assert await _code(api.stub.SetQuota(request, metadata=unknown)) == grpc.StatusCode.UNAUTHENTICATED
    assert await _code(api.stub.GetPolicy(policy_pb2.GetPolicyRequest(), metadata=owner_admin_key)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    audit = await api.stub.ListAudit(policy_pb2.ListAuditRequest(organization_id=str(org)), metadata=OP)
    assert list(audit.entries) == []  # nothing was changed


async def test_an_org_admin_sets_its_caps_and_reads_only_its_own_audit(api: Api):
    org, other = uuid.uuid4(), uuid.uuid4()
    owner = api.key(org, "owner")
    user = uuid.uuid4()
    caps = await api.stub.SetUserCaps(
        policy_pb2.SetUserCapsRequest(
            caps=[policy_pb2.UserCap(max_running_jobs=1), policy_pb2.UserCap(user_id=str(user), max_gpus=4)]
        ),
        metadata=owner,
    )
    assert caps.organization_id == str(org)
    assert [(c.user_id, c.HasField("max_running_jobs"), c.HasField("max_gpus")) for c in caps.caps] == [
        ("", True, False),
        (str(user), False, True),
    ]
    assert (await api.stub.GetUserCaps(policy_pb2.GetUserCapsRequest(), metadata=owner)).caps == caps.caps
    await api.stub.SetUserCaps(policy_pb2.SetUserCapsRequest(caps=[]), metadata=api.key(other, "admin"))

    bound = api.key(org, "owner", project=str(uuid.uuid4()))  # an owner's key bound to one project
    for refused in (
        api.key(org, "viewer"),
        api.key(org, "member"),
        api.key(org, "owner", ("jobs:write",)),
        bound,
    ):
        set_caps = api.stub.SetUserCaps(policy_pb2.SetUserCapsRequest(caps=[]), metadata=refused)
        assert await _code(set_caps) == grpc.StatusCode.PERMISSION_DENIED
    set_projects = api.stub.SetProjectPolicies(policy_pb2.SetProjectPoliciesRequest(), metadata=bound)
    assert await _code(set_projects) == grpc.StatusCode.PERMISSION_DENIED

    mine = await api.stub.ListOrganizationAudit(policy_pb2.ListAuditRequest(), metadata=owner)
    assert [e.organization_id for e in mine.entries] == [str(org)]
    entry = mine.entries[0]
    principal = api.h.identity.keys[owner[0][1].removeprefix("Bearer ")]
    assert (entry.actor, entry.actor_user_id, entry.actor_api_key_id) == (
        "member",
        principal.user_id,
        principal.api_key_id,
    )
    assert json.loads(entry.after_json)[0] == {"user_id": None, "max_running_jobs": 1, "max_gpus": None}
    # The operator sees both organizations' entries.
    both = await api.stub.ListAudit(policy_pb2.ListAuditRequest(limit=200), metadata=OP)
    assert {str(org), str(other)} <= {e.organization_id for e in both.entries}


async def test_the_audit_trail_is_append_only_and_scoped_by_row_level_security(api: Api):
    org = uuid.uuid4()
    await api.stub.SetFairShare(
        policy_pb2.SetFairShareRequest(organization_id=str(org), weight=2), metadata=OP
    )
    db = api.h.db
    for statement in (
        "UPDATE policy_audit SET method = 'x'",
        "DELETE FROM policy_audit",
        "TRUNCATE policy_audit",
    ):
        with pytest.raises(DBAPIError):
            async with db.transaction(system=True) as session:
                await session.execute(text(statement))
    async with db.transaction(org_id=uuid.uuid4()) as session:
        seen = (await session.execute(text("SELECT count(*) FROM policy_audit"))).scalar_one()
        shares = (await session.execute(text("SELECT count(*) FROM policy_fair_shares"))).scalar_one()
    assert (seen, shares) == (0, 0)
    async with db.transaction(org_id=org) as session:
        rows = (await session.execute(text("SELECT method FROM policy_audit"))).scalars().all()
    assert rows == ["PolicyService/SetFairShare"]
    await api.stub.DeleteFairShare(policy_pb2.DeleteFairShareRequest(organization_id=str(org)), metadata=OP)


async def test_a_change_reaches_this_process_at_once_and_another_replica_on_its_refresh(api: Api):
    org = uuid.uuid4()
    await api.store.refresh()
    replica = PolicyStore(SqlPolicyRepository(api.h.db), Policy(), refresh_s=0)
    await replica.refresh()
    await api.stub.SetQuota(
        policy_pb2.SetQuotaRequest(organization_id=str(org), gpu_type="l40s", nominal=3, lending_limit=1),
        metadata=OP,
    )
    assert (await api.store.refresh()).quotas[(org, "l40s")] == Quota(3, None, 1)
    assert (await replica.refresh()).quotas[(org, "l40s")] == Quota(3, None, 1)
    assert replica.version == api.store.version
    await api.stub.DeleteQuota(
        policy_pb2.DeleteQuotaRequest(organization_id=str(org), gpu_type="l40s"), metadata=OP
    )
    assert (org, "l40s") not in (await replica.refresh()).quotas


async def test_settings_seed_the_tables_once(api: Api):
    org = uuid.uuid4()
    repo = SqlPolicyRepository(api.h.db)
    async with api.h.db.transaction(system=True) as session:
        await session.execute(text("UPDATE policy_settings SET seeded_at = NULL"))
    configured = StoredPolicy.of_engine(
        Policy(
            quotas={(org, "a100-40gb"): Quota(4, 2, None)},
            user_caps={org: UserCap(3, None)},
            half_life_s=7 * 24 * 3600.0,
        )
    )
    try:
        assert await seed(repo, configured) is True
        assert await seed(repo, configured) is False
        async with repo(system=True) as unit:
            stored = await unit.load()
            seeded = await unit.audit_entries(None, None, 1)
        assert stored.quotas[(org, "a100-40gb")] == Quota(4, 2, None)
        assert stored.user_caps[org][0].cap == UserCap(3, None)
        assert seeded[0].method == "settings.seed"
    finally:
        async with repo(system=True) as unit:
            await unit.set_quota(org, "a100-40gb", None)
            await unit.replace_user_caps(org, ())
