"""The operator principal: identity's Authenticate recognises the operator token (only where asked,
never for anything key-shaped), and shared.grpc.Authenticator.operator requires it."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from gpufleet.v1 import common_pb2, identity_pb2

from services.identity.domain.model import AuthOutcome
from services.identity.domain.operator import OPERATOR, OperatorToken
from services.identity.entrypoints.grpc_server import IdentityServicer
from services.identity.service_layer import commands
from services.identity.service_layer.handlers import Dependencies, handle
from shared import api_keys
from shared.errors import PermissionDenied, Unauthenticated
from shared.grpc import Authenticator

from .fakes import OPERATOR_TOKEN, FakeMetrics, FakeUnitOfWorkFactory, fake_dependencies


@pytest.fixture
def metrics() -> FakeMetrics:
    return FakeMetrics()


@pytest.fixture
def deps(metrics: FakeMetrics) -> Dependencies:
    return fake_dependencies(FakeUnitOfWorkFactory(), metrics)


async def test_the_operator_token_is_the_operator_where_asked_for(deps: Dependencies, metrics: FakeMetrics):
    found = await handle(commands.Authenticate(OPERATOR_TOKEN, operator_allowed=True), deps)
    assert found is OPERATOR
    assert metrics.outcomes == [AuthOutcome.OPERATOR]


async def test_identitys_own_tenant_calls_never_take_the_operator_token(deps: Dependencies):
    with pytest.raises(Unauthenticated):
        await handle(commands.Authenticate(OPERATOR_TOKEN), deps)


@pytest.mark.parametrize("presented", ["", "operator-token-for-unit-tests-", "operator-token-for-unit-test"])
async def test_anything_but_the_exact_token_is_refused(deps: Dependencies, presented: str):
    with pytest.raises(Unauthenticated):
        await handle(commands.Authenticate(presented, operator_allowed=True), deps)


async def test_an_api_key_never_becomes_the_operator(metrics: FakeMetrics):
    # Even an operator who chose a key-shaped admin token: key-shaped strings are looked up as keys.
    key_shaped = api_keys.new_key()
    deps = Dependencies(uow=FakeUnitOfWorkFactory(), operator=OperatorToken(key_shaped), metrics=metrics)
    with pytest.raises(Unauthenticated):
        await handle(commands.Authenticate(key_shaped, operator_allowed=True), deps)
    assert metrics.outcomes == [AuthOutcome.INVALID]


class _Context:
    def __init__(self, token: str | None = None) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def invocation_metadata(self) -> Any:
        return self.metadata


async def test_the_authenticate_rpc_answers_an_operator_principal(deps: Dependencies):
    servicer = IdentityServicer(deps)
    reply = await servicer.Authenticate(
        identity_pb2.AuthenticateRequest(api_key=OPERATOR_TOKEN),
        _Context(),  # type: ignore[arg-type]
    )
    assert reply.operator is True
    assert (reply.organization_id, reply.user_id, reply.role, list(reply.scopes)) == ("", "", "", [])


# --- shared.grpc.Authenticator.operator


class _Stub:
    """Identity's answers by credential; UNAUTHENTICATED for anything else."""

    def __init__(self, answers: dict[str, common_pb2.Principal]) -> None:
        self.answers, self.asked = answers, []  # type: ignore[var-annotated]

    async def Authenticate(self, request: Any, timeout: float) -> common_pb2.Principal:
        self.asked.append(request.api_key)
        if request.api_key not in self.answers:
            raise _Unauthenticated()
        return self.answers[request.api_key]


class _Unauthenticated(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAUTHENTICATED, grpc.aio.Metadata(), grpc.aio.Metadata(), "no")


KEY = api_keys.new_key()


async def _auth() -> tuple[Authenticator, _Stub]:
    auth = Authenticator("127.0.0.1:1", ttl=1)
    stub = _Stub(
        {
            OPERATOR_TOKEN: common_pb2.Principal(operator=True),
            KEY: common_pb2.Principal(organization_id="o", role="owner", scopes=["admin"]),
        }
    )
    auth._stub = stub  # type: ignore[assignment]
    return auth, stub


async def test_operator_accepts_the_operator_and_caches_the_answer():
    auth, stub = await _auth()
    await auth.operator(_Context(OPERATOR_TOKEN))  # type: ignore[arg-type]
    await auth.operator(_Context(OPERATOR_TOKEN))  # type: ignore[arg-type]
    assert stub.asked == [OPERATOR_TOKEN]
    await auth.close()


async def test_operator_refuses_an_owners_admin_key_as_permission_denied():
    auth, _ = await _auth()
    with pytest.raises(PermissionDenied):
        await auth.operator(_Context(KEY))  # type: ignore[arg-type]
    await auth.close()


@pytest.mark.parametrize("token", [None, "not-the-operator-token", api_keys.new_key()])
async def test_operator_refuses_nothing_or_an_unknown_credential_as_unauthenticated(token: str | None):
    auth, _ = await _auth()
    with pytest.raises(Unauthenticated):
        await auth.operator(_Context(token))  # type: ignore[arg-type]
    await auth.close()


async def test_the_operator_token_is_no_tenant_principal():
    auth, stub = await _auth()
    with pytest.raises(Unauthenticated):
        await auth.principal(_Context(OPERATOR_TOKEN))  # type: ignore[arg-type]
    assert stub.asked == []  # not key-shaped: refused without asking identity
    await auth.close()
