"""Named operators: each has a token of its own (hash only stored), Authenticate names the operator, the
bootstrap token is the operator "admin", and a revoked operator is nobody."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from gpufleet.v1 import identity_pb2

from services.identity.domain import operator as op
from services.identity.domain.model import AuthOutcome
from services.identity.entrypoints.grpc_server import IdentityServicer
from services.identity.service_layer import commands
from services.identity.service_layer.handlers import Dependencies, handle
from shared import api_keys
from shared.errors import Conflict, InvalidArgument, NotFound, Unauthenticated

from .fakes import OPERATOR_TOKEN, FakeMetrics, FakeUnitOfWorkFactory, fake_dependencies

NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def metrics() -> FakeMetrics:
    return FakeMetrics()


@pytest.fixture
def deps(uow: FakeUnitOfWorkFactory, metrics: FakeMetrics) -> Dependencies:
    return fake_dependencies(uow, metrics)


def test_an_operator_token_is_never_key_shaped_and_only_its_hash_is_kept() -> None:
    named, token = op.issue_operator("ops-alice", "admin", NOW)
    assert token.startswith("gpo_") and op.token_shaped(token) and not api_keys.well_formed(token)
    assert named.token_hash == op.hash_token(token) and token not in repr(named)
    assert named.prefix == token[:12] and named.created_by == "admin" and named.active


@pytest.mark.parametrize("name", ["", "admin", "Alice", "-x", "a" * 65, "a b", "ops/1"])
def test_operator_names(name: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        op.operator_name(name)
    assert err.value.field == "name"


async def test_a_named_operator_authenticates_by_name(deps, uow, metrics) -> None:
    created = await handle(commands.CreateOperator("ops-alice", operator_token=OPERATOR_TOKEN), deps)
    assert created.operator.created_by == "admin"
    found = await handle(commands.Authenticate(created.token, operator_allowed=True), deps)
    assert found == op.OperatorPrincipal(name="ops-alice", operator_id=created.operator.id)
    assert metrics.outcomes == [AuthOutcome.OPERATOR]
    assert (await handle(commands.Authenticate(OPERATOR_TOKEN, operator_allowed=True), deps)).name == "admin"
    with pytest.raises(Unauthenticated):  # identity's own tenant calls never take it
        await handle(commands.Authenticate(created.token), deps)


async def test_a_named_operator_creates_organizations_and_the_audit_names_it(deps, uow) -> None:
    created = await handle(commands.CreateOperator("ops-bob", operator_token=OPERATOR_TOKEN), deps)
    await handle(commands.CreateOrganization("Acme", "o@example.com", operator_token=created.token), deps)
    assert {e.actor_operator for e in uow.state.audit} == {"ops-bob"}
    await handle(commands.CreateOrganization("Globex", "g@example.com", operator_token=OPERATOR_TOKEN), deps)
    assert uow.state.audit[-1].actor_operator == "admin"


async def test_names_are_unique_and_revocation_ends_a_token(deps) -> None:
    alice = await handle(commands.CreateOperator("ops-alice", operator_token=OPERATOR_TOKEN), deps)
    with pytest.raises(Conflict):
        await handle(commands.CreateOperator("ops-alice", operator_token=alice.token), deps)
    bob = await handle(commands.CreateOperator("ops-bob", operator_token=alice.token), deps)
    assert bob.operator.created_by == "ops-alice"
    revoked = await handle(commands.RevokeOperator(alice.operator.id, operator_token=bob.token), deps)
    assert (revoked.revoked_by, revoked.active) == ("ops-bob", False)
    again = await handle(commands.RevokeOperator(alice.operator.id, operator_token=OPERATOR_TOKEN), deps)
    assert again.revoked_by == "ops-bob"  # the first revocation stands
    for presented in (alice.token, op.new_token(), "gpo_short", api_keys.new_key()):
        with pytest.raises(Unauthenticated):
            await handle(commands.Authenticate(presented, operator_allowed=True), deps)
        with pytest.raises(Unauthenticated):
            await handle(commands.ListOperators(operator_token=presented), deps)
    listed = await handle(commands.ListOperators(operator_token=bob.token), deps)
    assert [o.name for o in listed] == ["ops-alice", "ops-bob"]
    with pytest.raises(NotFound):
        await handle(commands.RevokeOperator(None, operator_token=OPERATOR_TOKEN), deps)


class _Context:
    def invocation_metadata(self) -> tuple:
        return ()


async def test_the_authenticate_rpc_carries_the_operators_name(deps) -> None:
    created = await handle(commands.CreateOperator("ops-carol", operator_token=OPERATOR_TOKEN), deps)
    servicer = IdentityServicer(deps)
    for token, name in ((created.token, "ops-carol"), (OPERATOR_TOKEN, "admin")):
        reply = await servicer.Authenticate(identity_pb2.AuthenticateRequest(api_key=token), _Context())  # type: ignore[arg-type]
        assert (reply.operator, reply.operator_name, reply.organization_id) == (True, name, "")
