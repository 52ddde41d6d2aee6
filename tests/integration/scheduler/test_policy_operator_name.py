"""The policy audit trail names the operator who made each change (identity's named operators), on the
real schema; an organization's own view of its entries says "operator" but not which."""

from __future__ import annotations

import uuid

import pytest
from gpufleet.v1 import common_pb2, policy_pb2
from sqlalchemy import text

from .test_policy_api import OP, Api, api  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

ALICE = "operator-token-of-ops-alice-for-tests"
AS_ALICE = (("authorization", f"Bearer {ALICE}"),)


async def test_each_change_records_the_operators_name(api: Api) -> None:  # noqa: F811
    api.h.identity.keys[ALICE] = common_pb2.Principal(operator=True, operator_name="ops-alice")
    org = uuid.uuid4()
    await api.stub.SetFairShare(
        policy_pb2.SetFairShareRequest(organization_id=str(org), weight=3), metadata=AS_ALICE
    )
    await api.stub.SetQuota(
        policy_pb2.SetQuotaRequest(organization_id=str(org), gpu_type="h100-80gb", nominal=1),
        metadata=AS_ALICE,
    )
    await api.stub.DeleteQuota(
        policy_pb2.DeleteQuotaRequest(organization_id=str(org), gpu_type="h100-80gb"), metadata=OP
    )
    audit = await api.stub.ListAudit(policy_pb2.ListAuditRequest(organization_id=str(org)), metadata=OP)
    assert [(e.method, e.actor, e.operator_name) for e in audit.entries] == [
        ("PolicyService/DeleteQuota", "operator", ""),  # an operator identity did not name
        ("PolicyService/SetQuota", "operator", "ops-alice"),
        ("PolicyService/SetFairShare", "operator", "ops-alice"),
    ]
    async with api.h.db.transaction(system=True) as s:
        stored = (
            await s.execute(
                text("SELECT operator_name FROM policy_audit WHERE organization_id = :o ORDER BY id"),
                {"o": org},
            )
        ).all()
    assert [n for (n,) in stored] == ["ops-alice", "ops-alice", None]

    own = await api.stub.ListOrganizationAudit(
        policy_pb2.ListAuditRequest(), metadata=api.key(org, "owner", ("admin",))
    )
    assert own.entries and all(e.actor == "operator" and e.operator_name == "" for e in own.entries)
