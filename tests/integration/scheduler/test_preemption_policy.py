"""The operator's preemption settings through PolicyService: stored, applied by the store, audited,
validated, and the operator's alone."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from gpufleet.v1 import policy_pb2

from .test_policy_api import OP, Api, _code, api  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration


async def test_the_operator_turns_reclaiming_off_and_sets_a_grace_period(api: Api):  # noqa: F811
    policy = await api.stub.GetPolicy(policy_pb2.GetPolicyRequest(), metadata=OP)
    assert (policy.reclaim_lent_capacity, policy.preemption_grace_seconds) == (True, 0)  # the defaults
    try:
        changed = await api.stub.SetPreemption(
            policy_pb2.SetPreemptionRequest(reclaim_lent_capacity=False, grace_seconds=30), metadata=OP
        )
        assert (changed.reclaim_lent_capacity, changed.preemption_grace_seconds) == (False, 30)
        engine = await api.store.refresh()
        assert engine.reclaim_lent_capacity is False and engine.preemption_grace_s == 30.0
        # a field left out stays as it is
        only = await api.stub.SetPreemption(policy_pb2.SetPreemptionRequest(grace_seconds=5), metadata=OP)
        assert (only.reclaim_lent_capacity, only.preemption_grace_seconds) == (False, 5)

        audit = await api.stub.ListAudit(policy_pb2.ListAuditRequest(limit=5), metadata=OP)
        newest, older = [e for e in audit.entries if e.method == "PolicyService/SetPreemption"][:2]
        assert newest.actor == "operator" and not newest.organization_id
        assert json.loads(older.before_json) == {"reclaim_lent_capacity": True, "grace_seconds": 0}
        assert json.loads(older.after_json) == {"reclaim_lent_capacity": False, "grace_seconds": 30}
        assert json.loads(newest.after_json) == {"reclaim_lent_capacity": False, "grace_seconds": 5}

        bad = api.stub.SetPreemption(policy_pb2.SetPreemptionRequest(grace_seconds=86401), metadata=OP)
        assert await _code(bad) == grpc.StatusCode.INVALID_ARGUMENT
        member = api.key(uuid.uuid4(), role="owner", scopes=("admin",))
        refused = api.stub.SetPreemption(
            policy_pb2.SetPreemptionRequest(reclaim_lent_capacity=True), metadata=member
        )
        assert await _code(refused) == grpc.StatusCode.PERMISSION_DENIED
    finally:  # the policy tables are shared by the session's tests
        await api.stub.SetPreemption(
            policy_pb2.SetPreemptionRequest(reclaim_lent_capacity=True, grace_seconds=0), metadata=OP
        )
