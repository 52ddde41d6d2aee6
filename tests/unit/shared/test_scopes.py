"""The scope table against the generated descriptors, the scope rules, the key format, and the central
enforcement in shared.grpc (the recorded method, Authenticator's refusals and cache bound)."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import re
import zlib
from typing import Any

import gpufleet.v1
import grpc
import pytest
from gpufleet.v1 import common_pb2, scheduler_pb2_grpc

from shared import api_keys, scopes
from shared.contracts import limits
from shared.errors import PermissionDenied
from shared.grpc import MAX_AUTH_CACHE_SECONDS, Authenticator, current_method, grpc_service


def _every_method() -> set[str]:
    """``Service/Method`` of every RPC in every generated module of the gpufleet.v1 package."""
    found: set[str] = set()
    for info in pkgutil.iter_modules(gpufleet.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"gpufleet.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            found |= {f"{service.name}/{m.name}" for m in service.methods}
    return found


def _excluded(method: str) -> bool:
    service = method.split("/")[0]
    return method in scopes.NOT_API_KEY_METHODS or f"{service}/*" in scopes.NOT_API_KEY_METHODS


def test_every_tenant_facing_method_is_in_the_table() -> None:
    methods = _every_method()
    assert "JobService/SubmitJob" in methods and "NodeAgentService/GetAssignments" in methods
    missing = sorted(
        m for m in methods if not _excluded(m) and m not in scopes.SCOPE_OF and m not in scopes.EVERY_KEY
    )
    assert not missing, f"add these methods to shared/scopes.py: {missing}"


def test_the_table_names_only_real_methods_each_once() -> None:
    methods = _every_method()
    listed = [m for ms in scopes.METHODS_OF_SCOPE.values() for m in ms] + list(scopes.EVERY_KEY)
    assert len(listed) == len(set(listed)), "a method is listed twice"
    assert set(listed) <= methods, sorted(set(listed) - methods)
    assert not [m for m in listed if _excluded(m)]
    excluded_services = {k.split("/")[0] for k in scopes.NOT_API_KEY_METHODS}
    assert excluded_services <= {m.split("/")[0] for m in methods}


def test_the_scopes_are_the_ones_keys_may_carry() -> None:
    assert set(scopes.METHODS_OF_SCOPE) == set(limits.KEY_SCOPES)
    assert {s for pair in scopes.IMPLIES.items() for s in (pair[0], *pair[1])} <= set(limits.KEY_SCOPES)


@pytest.mark.parametrize(
    ("held", "method", "allowed"),
    [
        (("jobs:read",), "JobService/GetJob", True),
        (("jobs:read",), "JobService/ListJobs", True),
        (("jobs:read",), "JobService/SubmitJob", False),
        (("jobs:read",), "JobService/CancelJob", False),
        (("jobs:read",), "NotificationService/CreateWebhook", False),
        (("jobs:read",), "NotificationService/GetJobWebhookSecret", False),
        (("jobs:read",), "BillingService/ListJobCosts", False),
        (("jobs:read",), "IdentityService/GetOrganization", True),
        (("jobs:read",), "FleetService/ListGpuTypes", True),
        (("jobs:read",), "FleetService/ListGpus", False),
        (("jobs:write",), "JobService/GetJob", True),  # write includes read
        (("jobs:write",), "JobService/UpdateJobPriority", True),
        (("webhooks:read",), "NotificationService/ListDeliveries", True),
        (("webhooks:read",), "NotificationService/GetJobWebhookSecret", False),
        (("webhooks:write",), "NotificationService/ListWebhooks", True),
        (("keys:read",), "IdentityService/CreateApiKey", False),
        (("keys:write",), "IdentityService/ListApiKeys", True),
        (("costs:read", "metrics:read"), "MonitoringService/GetUtilization", True),
        (("admin",), "JobService/SubmitJob", True),
        (("admin",), "SomeService/AddedLater", True),  # admin means everything
        (("jobs:write",), "SomeService/AddedLater", False),  # fail closed
        (("jobs:write",), None, False),  # no method recorded: fail closed
        ((), "JobService/SubmitJob", True),  # a key stored without scopes is unrestricted
        ((), None, True),
    ],
)
def test_allows(held: tuple[str, ...], method: str | None, allowed: bool) -> None:
    assert scopes.allows(held, method) is allowed


def test_refusals_name_the_missing_scope() -> None:
    with pytest.raises(PermissionDenied) as err:
        scopes.require(("jobs:read",), "JobService/SubmitJob")
    assert err.value.field == "scopes" and err.value.details == {"required_scope": "jobs:write"}
    assert "lacks the jobs:write scope" in err.value.message and "JobService/SubmitJob" in err.value.message
    with pytest.raises(PermissionDenied) as err:
        scopes.require(("jobs:read",), "SomeService/AddedLater")
    assert err.value.details == {"required_scope": "admin"}


def test_granted_and_missing() -> None:
    assert scopes.granted(("admin",)) == frozenset(limits.KEY_SCOPES) == scopes.granted(())
    assert scopes.granted(("keys:write",)) == {"keys:write", "keys:read"}
    assert scopes.missing(("jobs:write",), ("jobs:read", "fleet:read")) == {"fleet:read"}


# --- the key format


def test_a_new_key_has_a_checksum_of_everything_before_it() -> None:
    key = api_keys.new_key()
    assert len(key) == api_keys.KEY_LENGTH == 50 and key.startswith("gpf_")
    body, check = key[:-6], key[-6:]
    value = 0
    for c in check:
        value = value * 62 + api_keys.BASE62.index(c)
    assert value == zlib.crc32(body.encode())
    assert api_keys.checksummed(key) and api_keys.well_formed(key) and not api_keys.legacy(key)


def test_a_known_key_has_its_documented_checksum() -> None:
    # The checksum computed here independently of the module: CRC32, then base62 by hand.
    body = "gpf_" + "0" * 40
    crc = zlib.crc32(body.encode())
    digits = ""
    for _ in range(6):
        crc, d = divmod(crc, 62)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[d] + digits
    assert api_keys.compose("0" * 40) == body + digits


def test_every_single_character_typo_is_caught() -> None:
    key = api_keys.compose("aB3" * 13 + "z")
    for i in range(len("gpf_"), len(key)):
        for c in "0aZ_":
            typo = key[:i] + c + key[i + 1 :]
            if typo != key:
                assert not api_keys.well_formed(typo), typo
    assert not api_keys.well_formed(key[:-1]) and not api_keys.well_formed(key + "0")


def test_scanner_patterns_find_keys_in_text() -> None:
    key, old = api_keys.new_key(), "gpf_" + "Ab-_" * 10
    text = f'export GPUFLEET_API_KEY="{key}"\ntoken: {old}\nnot a key: gpf_short xgpf_{"a" * 46}'
    assert re.findall(api_keys.SCANNER_PATTERN, text) == [key]
    assert re.findall(api_keys.LEGACY_SCANNER_PATTERN, text) == [old]


def test_compose_refuses_a_bad_random_part() -> None:
    for bad in ("0" * 39, "0" * 41, "-" * 40):
        with pytest.raises(ValueError):
            api_keys.compose(bad)


# --- central enforcement in shared.grpc


class _Aborted(Exception):
    pass


class FakeContext:
    def __init__(self, key: str | None) -> None:
        self.metadata = (("authorization", f"Bearer {key}"),) if key else ()
        self.aborted: tuple[grpc.StatusCode, str] | None = None
        self.trailers: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> Any:
        return self.metadata

    def set_trailing_metadata(self, trailers: Any) -> None:
        self.trailers = trailers

    def code(self) -> grpc.StatusCode | None:
        return self.aborted[0] if self.aborted else None

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.aborted = (code, message)
        raise _Aborted(message)


class FakeIdentityStub:
    def __init__(self, principal: common_pb2.Principal) -> None:
        self.principal, self.calls = principal, 0

    async def Authenticate(self, request: Any, timeout: float) -> common_pb2.Principal:
        self.calls += 1
        return self.principal


async def _authenticator(scopes_: list[str], role: str = "owner") -> tuple[Authenticator, FakeIdentityStub]:
    auth = Authenticator("127.0.0.1:1", ttl=60)
    stub = FakeIdentityStub(common_pb2.Principal(organization_id="o", role=role, scopes=scopes_))
    auth._stub = stub  # type: ignore[assignment]
    return auth, stub


def _job_servicer(auth: Authenticator) -> Any:
    @grpc_service
    class Jobs(scheduler_pb2_grpc.JobServiceServicer):
        seen: list[str | None] = []

        async def SubmitJob(self, request: Any, context: Any) -> Any:
            self.seen.append(current_method())
            await auth.principal(context, write=True)
            return "submitted"

        async def GetJob(self, request: Any, context: Any) -> Any:
            await auth.principal(context)
            return "job"

    return Jobs()


async def test_the_wrapper_records_the_method_for_the_call_only() -> None:
    auth, _ = await _authenticator(["admin"])
    jobs = _job_servicer(auth)
    assert await jobs.SubmitJob(None, FakeContext(api_keys.new_key())) == "submitted"
    assert jobs.seen == ["JobService/SubmitJob"] and current_method() is None
    await auth.close()


async def test_a_scoped_key_is_refused_a_method_its_scopes_do_not_grant() -> None:
    auth, _ = await _authenticator(["jobs:read"])
    jobs = _job_servicer(auth)
    key = api_keys.new_key()
    assert await jobs.GetJob(None, FakeContext(key)) == "job"
    context = FakeContext(key)
    with pytest.raises(_Aborted):
        await jobs.SubmitJob(None, context)
    assert context.aborted is not None and context.aborted[0] == grpc.StatusCode.PERMISSION_DENIED
    assert "jobs:write" in context.aborted[1]
    assert context.trailers == (("gpufleet-error-field", "scopes"),)
    await auth.close()


async def test_outside_a_wrapped_method_a_scoped_key_is_refused() -> None:
    auth, _ = await _authenticator(["jobs:write"])
    with pytest.raises(PermissionDenied):
        await auth.principal(FakeContext(api_keys.new_key()))  # type: ignore[arg-type]
    await auth.close()


async def test_a_malformed_key_is_refused_without_asking_identity() -> None:
    auth, stub = await _authenticator(["admin"])
    key = api_keys.new_key()
    typo = key[:-1] + ("A" if key[-1] != "A" else "B")
    for bad in (typo, "gpf_nope", key[:-1]):
        with pytest.raises(Exception, match="invalid API key"):
            await auth.authenticate(bad)
    assert stub.calls == 0
    await auth.authenticate(key)
    await auth.authenticate("gpf_" + "Ab-_" * 10)  # the legacy format still reaches identity
    assert stub.calls == 2
    await auth.close()


async def test_the_cache_never_outlasts_the_revocation_bound() -> None:
    auth, _ = await _authenticator(["admin"])
    assert auth._ttl == MAX_AUTH_CACHE_SECONDS == 1.0
    await auth.close()
    short = Authenticator("127.0.0.1:1", ttl=0.2)
    assert short._ttl == 0.2
    await short.close()


class SlowIdentityStub(FakeIdentityStub):
    """Answers after the test lets it: calls made meanwhile are in flight together."""

    def __init__(self, principal: common_pb2.Principal, error: Exception | None = None) -> None:
        super().__init__(principal)
        self.release, self.error = asyncio.Event(), error

    async def Authenticate(self, request: Any, timeout: float) -> common_pb2.Principal:
        self.calls += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.principal


async def test_callers_missing_the_cache_together_share_one_identity_call() -> None:
    key = api_keys.new_key()
    auth = Authenticator("127.0.0.1:1", ttl=0.05)
    stub = SlowIdentityStub(common_pb2.Principal(organization_id="o", role="owner", scopes=["admin"]))
    auth._stub = stub  # type: ignore[assignment]
    waiting = [asyncio.create_task(auth.authenticate(key)) for _ in range(20)]
    await asyncio.sleep(0.01)
    stub.release.set()
    assert {p.organization_id for p in await asyncio.gather(*waiting)} == {"o"}
    assert stub.calls == 1
    await asyncio.sleep(0.06)  # expired: the next caller asks identity again
    await auth.authenticate(key)
    assert stub.calls == 2
    await auth.close()


async def test_a_shared_refusal_reaches_every_caller_and_is_not_cached() -> None:
    key = api_keys.new_key()
    auth = Authenticator("127.0.0.1:1", ttl=1.0)
    refused = grpc.aio.AioRpcError(grpc.StatusCode.UNAUTHENTICATED, grpc.aio.Metadata(), grpc.aio.Metadata())
    stub = SlowIdentityStub(common_pb2.Principal(organization_id="o"), error=refused)
    auth._stub = stub  # type: ignore[assignment]
    waiting = [asyncio.create_task(auth.authenticate(key)) for _ in range(5)]
    await asyncio.sleep(0.01)
    stub.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all("invalid API key" in str(r) for r in results) and stub.calls == 1
    stub.error = None
    assert (await auth.authenticate(key)).organization_id == "o" and stub.calls == 2
    await auth.close()
