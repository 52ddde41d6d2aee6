"""gRPC server and client helpers.

* :func:`serve` starts a ``grpc.aio`` server with the standard health service and reflection.
* :func:`grpc_service` wraps every RPC method of a servicer: it renders a
  :class:`shared.errors.DomainError` as the matching status code (one place), answers UNAVAILABLE when the
  database or another dependency cannot be reached, and counts and times every call (Prometheus).
  Traces come from OpenTelemetry's gRPC instrumentation (server and client interceptors below): the
  caller's W3C context in the metadata is continued by the server.
* :class:`Authenticator` resolves the API key in the ``authorization`` metadata through identity's
  ``Authenticate`` (each answer trusted for at most a second, the keys in use verified again ahead of
  their next call) and holds it to the scope the current method
  needs (``shared.scopes``); ``Authenticator.operator`` requires the operator token instead (operator
  calls); :func:`agent_secret` takes a node agent's secret and :class:`NodeAuthenticator` verifies
  node credentials through fleet (agents' own path: never an API key or the operator token).
* :func:`channel` opens a client channel whose calls carry the trace context in metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, fleet_pb2, fleet_pb2_grpc, identity_pb2, identity_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.trace import Status, StatusCode

from shared import api_keys, audit, metrics, node_identity, readiness, scopes
from shared.errors import (
    DomainError,
    ErrorCode,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from shared.failures import is_unavailable
from shared.verified_ahead import VerifiedAhead

log = logging.getLogger("gpufleet.grpc")

STATUS_OF: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
ERROR_FIELD_KEY = "gpufleet-error-field"

T = TypeVar("T")

# ``Service/Method`` of the RPC being served in this task (None outside one), for the scope check.
_CURRENT_METHOD: ContextVar[str | None] = ContextVar("gpufleet_grpc_method", default=None)


def current_method() -> str | None:
    """The ``Service/Method`` (proto names, e.g. ``JobService/SubmitJob``) this task is serving."""
    return _CURRENT_METHOD.get()


def _wrap(
    service: str, name: str, method: Callable[..., Any], *, rpc: str | None = None
) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        began = time.perf_counter()
        code = "OK"
        token = _CURRENT_METHOD.set(rpc)
        call = audit.enter_call(_request_id(context))  # who made the call and with which request: audits
        try:
            return await method(self, request, context)
        except DomainError as exc:
            code = STATUS_OF[exc.code].name
            trace.get_current_span().set_status(Status(StatusCode.ERROR, exc.code))
            trailers: tuple[tuple[str, str], ...] = ((ERROR_FIELD_KEY, exc.field),) if exc.field else ()
            trailers += exc.trailers()  # e.g. a limit's retry-after-ms (shared.errors.ResourceExhausted)
            if trailers:
                context.set_trailing_metadata(trailers)
            await context.abort(STATUS_OF[exc.code], exc.message)
        except grpc.aio.AbortError:
            code = (context.code() or grpc.StatusCode.UNKNOWN).name
            raise
        except Exception as exc:
            if not is_unavailable(exc):
                code = "UNKNOWN"
                raise
            code = "UNAVAILABLE"
            log.warning("dependency unavailable", extra={"method": name, "error": repr(exc)[:300]})
            await context.abort(grpc.StatusCode.UNAVAILABLE, "a dependency of this service is unavailable")
        finally:
            _CURRENT_METHOD.reset(token)
            audit.leave_call(call)
            metrics.GRPC_REQUESTS.labels(service=service, method=name, code=code).inc()
            metrics.GRPC_SECONDS.labels(service=service, method=name).observe(time.perf_counter() - began)

    return wrapper


@asynccontextmanager
async def streaming_call(
    context: grpc.aio.ServicerContext, service: str, name: str, *, rpc: str | None = None
) -> AsyncIterator[None]:
    """What :func:`grpc_service` does around a unary method, for a server-streaming one (an async
    generator, which the tracing interceptor needs and the class decorator does not wrap): a
    DomainError becomes its status code (field and extra trailers included), an unreachable dependency
    UNAVAILABLE, and the call is counted and timed. ``rpc`` (``Service/Method``): the method
    :func:`current_method` names meanwhile, for :meth:`Authenticator.principal`'s scope check.
    ``async with streaming_call(...)`` around the generator's body."""
    began = time.perf_counter()
    code = "OK"
    token = _CURRENT_METHOD.set(rpc) if rpc is not None else None
    try:
        yield
    except DomainError as exc:
        code = STATUS_OF[exc.code].name
        trailers: tuple[tuple[str, str], ...] = ((ERROR_FIELD_KEY, exc.field),) if exc.field else ()
        trailers += exc.trailers()
        if trailers:
            context.set_trailing_metadata(trailers)
        await context.abort(STATUS_OF[exc.code], exc.message)
    except grpc.aio.AbortError:
        code = (context.code() or grpc.StatusCode.UNKNOWN).name
        raise
    except asyncio.CancelledError:
        code = "CANCELLED"  # the caller went away (or the server is stopping): the usual end of a stream
        raise
    except Exception as exc:
        if not is_unavailable(exc):
            code = "UNKNOWN"
            raise
        code = "UNAVAILABLE"
        log.warning("dependency unavailable", extra={"method": name, "error": repr(exc)[:300]})
        await context.abort(grpc.StatusCode.UNAVAILABLE, "a dependency of this service is unavailable")
    finally:
        if token is not None:
            with contextlib.suppress(ValueError):  # a generator closed from another context
                _CURRENT_METHOD.reset(token)
        metrics.GRPC_REQUESTS.labels(service=service, method=name, code=code).inc()
        metrics.GRPC_SECONDS.labels(service=service, method=name).observe(time.perf_counter() - began)


def grpc_service(cls: type[T]) -> type[T]:
    """Class decorator for servicers: trace + error rendering around every RPC method, which also
    records the RPC's ``Service/Method`` (from the generated ``XServiceServicer`` base's name)."""
    for base in cls.__mro__[1:]:
        rpc_service = base.__name__.removesuffix("Servicer")
        for name, member in vars(base).items():
            if name.startswith("_") or not callable(member):
                continue
            impl = getattr(cls, name)
            if inspect.iscoroutinefunction(impl) and name in vars(cls):
                setattr(cls, name, _wrap(cls.__name__, name, impl, rpc=f"{rpc_service}/{name}"))
    return cls


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return None


def _request_id(context: grpc.aio.ServicerContext) -> str | None:
    """The gateway's ``x-request-id`` metadata (None without one, or for a context without metadata)."""
    try:
        return metadata_value(context, "x-request-id")
    except Exception:
        return None


def bearer(context: grpc.aio.ServicerContext) -> str | None:
    raw = metadata_value(context, "authorization")
    if not raw:
        return None
    scheme, _, token = raw.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def agent_secret(context: grpc.aio.ServicerContext, *, join_token: bool = False) -> str:
    """The node agent's secret in the ``authorization`` metadata: its node credential (``gpfn_``), or,
    where ``join_token`` (fleet's RegisterNode only), a join token (``gpfj_``). Anything else, an API
    key or the operator token included, is UNAUTHENTICATED without a look-up: agent calls have their
    own authentication path (``shared.node_identity``, docs/agent-identity.md)."""
    token = bearer(context) or ""
    if node_identity.is_credential(token) or (join_token and node_identity.is_join_token(token)):
        return token
    raise Unauthenticated("a node credential is required (authorization: Bearer gpfn_...)")


# The longest a verified node credential is trusted: a revoked one stops working within this.
MAX_NODE_AUTH_CACHE_SECONDS = 1.0
# How often the credentials in use are verified again, all in one AuthenticateNodes call (rounds start on
# this period, however long an answer took): under the bound above by the 0.3 s an answer may take, so
# an agent's call is answered from a verification younger than a second and never waits for fleet,
# even on a fleet that has been idle (an agent's open assignments stream re-checks its credential every
# second, which keeps it in use). A slower answer only lets an entry lapse: that call asks fleet itself.
# Each round costs fleet a small transaction and both sides a gRPC call: 0.4 s measured some 12 ms/s
# of fleet's idle CPU and 7 ms/s of the scheduler's, hence no shorter than needed.
NODE_AUTH_REFRESH_SECONDS = 0.7
# A credential that made no call for this long is no longer verified ahead (its next call asks fleet).
NODE_AUTH_KEEP_SECONDS = 600.0
MAX_CREDENTIALS_PER_REFRESH = 1000  # fleet's limit per AuthenticateNodes call
# More live node credentials than any fleet has nodes: past this, the cache starts over and the rest are
# asked per call (one bound for both the cache and the credentials verified ahead).
MAX_NODE_CREDENTIALS = 100_000


class NodeAuthenticator:
    """Verifies node credentials through fleet's ``NodeRegistryService`` (fleet issued them and alone
    holds their hashes), trusting each verification for at most a second, so that a credential revoked
    by a decommission, or past the overlap of a rotation, stops working within a second in every
    service. A failed verification is not cached (the next call asks again).

    The first call of a credential asks ``AuthenticateNode``. From then on, while the credential keeps
    being used (within ``keep_s``), a background task verifies every such credential again every
    ``refresh_s`` in one ``AuthenticateNodes`` call, each answer trusted for ``ttl`` from the moment
    that call was sent: an agent's call finds its credential verified less than a second ago and pays
    no round trip to fleet (on an idle fleet that was some 5-10 ms of every start and finish report),
    and fleet answers one call per half second for all nodes instead of one per node per second. A
    credential the batch finds invalid is dropped at once. A fleet that does not serve
    ``AuthenticateNodes`` (an older one) is asked per credential, as before (logged once)."""

    def __init__(
        self,
        fleet_target: str,
        ttl: float = MAX_NODE_AUTH_CACHE_SECONDS,
        *,
        refresh_s: float = NODE_AUTH_REFRESH_SECONDS,
        keep_s: float = NODE_AUTH_KEEP_SECONDS,
    ) -> None:
        self._target = fleet_target
        self._channel = channel(fleet_target)
        self._stub = fleet_pb2_grpc.NodeRegistryServiceStub(self._channel)
        self._ttl = min(ttl, MAX_NODE_AUTH_CACHE_SECONDS)
        self._verified: VerifiedAhead[UUID] = VerifiedAhead(
            self._verify_many,
            ttl=self._ttl,
            refresh_s=refresh_s,
            keep_s=keep_s,
            max_entries=MAX_NODE_CREDENTIALS,
            max_batch=MAX_CREDENTIALS_PER_REFRESH,
            what="node credentials (fleet has no AuthenticateNodes)",
        )

    async def node_of(self, context: grpc.aio.ServicerContext) -> UUID:
        """The node the caller's credential is bound to; UNAUTHENTICATED when it is not valid."""
        credential = agent_secret(context)
        digest = hashlib.sha256(credential.encode()).digest()
        now = time.monotonic()
        hit = self._verified.get(digest, credential, now)
        if hit is not None:
            return hit
        try:
            answer = await self._stub.AuthenticateNode(
                fleet_pb2.AuthenticateNodeRequest(credential=credential), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                self._verified.forget(digest)
                raise Unauthenticated("invalid node credential") from exc
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                # A fleet serving its agent API on a listener of its own, and this service pointed
                # at its tenant one: every agent call fails until the setting names the agent port.
                log.error(
                    "fleet does not serve NodeRegistryService at this target; "
                    "set GPUFLEET_FLEET_AGENT_GRPC_TARGET to fleet's agent listener",
                    extra={"target": self._target},
                )
            raise Unavailable(f"fleet is unavailable: {exc.code().name}") from exc
        node = UUID(answer.node_id)
        self._verified.put(digest, credential, node, now)
        return node

    async def _verify_many(self, batch: list[tuple[str, bool]]) -> list[UUID | None] | None:
        """One AuthenticateNodes call; None: fleet does not serve it."""
        try:
            answer = await self._stub.AuthenticateNodes(
                fleet_pb2.AuthenticateNodesRequest(credentials=[c for c, _ in batch]), timeout=self._ttl
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise
        return [UUID(i.node_id) if i.node_id else None for i in answer.identities]

    async def own_node(self, context: grpc.aio.ServicerContext, node_id: str) -> UUID:
        """The caller's node, which must be ``node_id`` (the node the request names): another node's
        id is PERMISSION_DENIED, a malformed one INVALID_ARGUMENT."""
        caller = await self.node_of(context)
        try:
            named = UUID(node_id)
        except (ValueError, AttributeError, TypeError) as exc:
            raise InvalidArgument("node_id is not a valid UUID", field="node_id") from exc
        if named != caller:
            raise PermissionDenied("this credential belongs to another node")
        return caller

    async def close(self) -> None:
        await self._verified.close()
        await self._channel.close()


# The longest a resolved key is trusted: a revoked key stops working everywhere within this.
MAX_AUTH_CACHE_SECONDS = 1.0
# Keys in use are verified again every this often, all in one AuthenticateKeys call, so that a call
# finds its key verified less than a second ago (as NODE_AUTH_REFRESH_SECONDS for node credentials):
# on a quiet system that was an Authenticate round trip in the gateway and another in the service it
# called, on nearly every request.
API_KEY_REFRESH_SECONDS = 0.7
# A key that made no call for this long is no longer verified ahead (its next call asks identity). Each
# process verifying keys ahead sends identity one call per 0.7 s: measured some 17 ms/s more of identity's
# idle CPU and 3-4 ms/s of the gateway's (2 cores) while keys are in use, hence only for a minute after.
API_KEY_KEEP_SECONDS = 60.0
MAX_KEYS_PER_REFRESH = 1000  # identity's limit per AuthenticateKeys call
MAX_API_KEYS_CACHED = 10_000


class Authenticator:
    """Resolves API keys through identity, caching answers for ``ttl`` seconds (at most one).

    Revocation must take effect within a second in every service. Two ways were weighed: identity
    pushing revocations on a topic that every authenticator follows (a longer cache, but every
    process then depends on the broker for a security property, and a consumer lagging or a
    partition being rebalanced silently stretches the window), or a cache short enough that its
    length *is* the bound. The second is chosen: re-verifying a key is cheap (a primary-key look-up by
    hash), and the bound holds whatever the broker does. A key's first call asks ``Authenticate``;
    while it keeps being used (``keep_s``), a background task verifies every key in use again every
    ``refresh_s`` in one ``AuthenticateKeys`` call (shared/verified_ahead.py), each answer trusted for
    ``ttl`` from when it was asked: a call finds its key verified less than a second ago and waits for
    no round trip, and a revoked key is refused within the same bound.
    A longer ``ttl`` is cut to :data:`MAX_AUTH_CACHE_SECONDS` (with a warning). The gateway and the
    service it calls each cache at most a second, and a call passes only if both still accept the
    key, so a call made more than a second after revocation is refused.

    A string that cannot be a key (``shared.api_keys``: wrong shape or checksum) is refused at once,
    without a call to identity."""

    def __init__(
        self,
        identity_target: str,
        ttl: float = 1.0,
        *,
        use_channel: grpc.aio.Channel | None = None,
        refresh_s: float = API_KEY_REFRESH_SECONDS,
        keep_s: float = API_KEY_KEEP_SECONDS,
    ) -> None:
        self._owns_channel = use_channel is None
        self._channel = use_channel or channel(identity_target)
        self._stub = identity_pb2_grpc.IdentityServiceStub(self._channel)
        if ttl > MAX_AUTH_CACHE_SECONDS:
            log.warning(
                "API key cache cut to the revocation bound",
                extra={"asked_seconds": ttl, "seconds": MAX_AUTH_CACHE_SECONDS},
            )
        self._ttl = min(ttl, MAX_AUTH_CACHE_SECONDS)
        self._verified: VerifiedAhead[common_pb2.Principal] = VerifiedAhead(
            self._verify_many,
            ttl=self._ttl,
            refresh_s=refresh_s,
            keep_s=keep_s,
            max_entries=MAX_API_KEYS_CACHED,
            max_batch=MAX_KEYS_PER_REFRESH,
            what="API keys (identity has no AuthenticateKeys)",
        )
        self._inflight: dict[bytes, asyncio.Future[common_pb2.Principal]] = {}

    async def authenticate(self, api_key: str | None) -> common_pb2.Principal:
        if not api_key:
            raise Unauthenticated("missing API key (authorization: Bearer <key>)")
        if not api_keys.well_formed(api_key):
            raise Unauthenticated("invalid API key")
        principal = await self._resolve(api_key, "invalid API key")
        if principal.operator:  # identity never answers so for a key; fail closed all the same
            raise Unauthenticated("invalid API key")
        audit.bind_principal(principal)
        return principal

    async def _resolve(self, credential: str, refusal: str) -> common_pb2.Principal:
        """Identity's answer for ``credential``, trusted for ``ttl`` seconds from when it was asked (by
        its SHA-256); an API key in use is verified again ahead of its next call (VerifiedAhead).

        Callers that miss the cache together share one ``Authenticate`` (its answer is as fresh for
        each of them as a call of their own would be): without that, every expiry of a busy key's
        entry sent one call per request in flight."""
        digest = hashlib.sha256(credential.encode()).digest()
        now = time.monotonic()
        hit = self._verified.get(digest, credential, now)
        if hit is not None:
            return hit
        pending = self._inflight.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._call_identity(credential, digest, now))
            self._inflight[digest] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(digest, None))
        try:
            return await asyncio.shield(pending)  # one caller cancelled does not cancel the others' call
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                self._verified.forget(digest)
                raise Unauthenticated(refusal) from exc
            raise _unavailable(exc) from exc

    async def _call_identity(self, credential: str, digest: bytes, asked_at: float) -> common_pb2.Principal:
        principal = await self._stub.Authenticate(
            identity_pb2.AuthenticateRequest(api_key=credential), timeout=5
        )
        # Operator tokens are only cached: operator calls are rare, and AuthenticateKeys takes keys only.
        ahead = not principal.operator and api_keys.well_formed(credential)
        self._verified.put(digest, credential, principal, asked_at, ahead=ahead)
        return principal

    async def _verify_many(self, batch: list[tuple[str, bool]]) -> list[common_pb2.Principal | None] | None:
        """One AuthenticateKeys call; None: identity does not serve it."""
        try:
            answer = await self._stub.AuthenticateKeys(
                identity_pb2.AuthenticateKeysRequest(
                    keys=[identity_pb2.KeyToVerify(api_key=k, used=u) for k, u in batch]
                ),
                timeout=self._ttl,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise
        return [k.principal if k.valid and not k.principal.operator else None for k in answer.keys]

    async def operator(self, context: grpc.aio.ServicerContext) -> common_pb2.Principal:
        """Require an operator token (``GPUFLEET_ADMIN_TOKEN``, or a named operator's; only identity
        knows and compares them) in the ``authorization`` metadata, and answer the operator principal
        (``operator_name`` says which operator, for audits). UNAUTHENTICATED for no credential or an
        unknown one; PERMISSION_DENIED for a valid API key, whatever its role or scopes: an API key
        never becomes the operator."""
        token = bearer(context)
        if not token:
            raise Unauthenticated("the operator token is required (authorization: Bearer <token>)")
        if api_keys.well_formed(token):
            await self.authenticate(token)  # an invalid key is UNAUTHENTICATED, like any bad credential
            raise PermissionDenied("operator call: an API key cannot make it, only the operator token")
        principal = await self._resolve(token, "invalid operator token")
        if not principal.operator:
            raise PermissionDenied("operator call: only the operator token can make it")
        audit.bind_principal(principal)
        return principal

    async def principal(
        self, context: grpc.aio.ServicerContext, *, write: bool = False
    ) -> common_pb2.Principal:
        """The caller of this RPC, held to the scope its method needs (``shared.scopes``);
        ``write=True`` refuses the read-only ``viewer`` role."""
        principal = await self.authenticate(bearer(context))
        if write and principal.role == "viewer":
            raise PermissionDenied("the viewer role cannot change anything")
        scopes.require(principal.scopes, current_method())
        audit.bind_principal(principal)
        return principal

    async def close(self) -> None:
        await self._verified.close()
        if self._owns_channel:
            await self._channel.close()


def tenant_of(principal: common_pb2.Principal) -> UUID:
    """The organization a caller acts for; a principal without one is treated as no credentials."""
    try:
        return UUID(principal.organization_id)
    except ValueError as exc:
        raise Unauthenticated("the API key has no organization") from exc


def _unavailable(exc: grpc.aio.AioRpcError) -> DomainError:
    return Unavailable(f"identity is unavailable: {exc.code().name}")


def channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        interceptors=aio_client_interceptors(),
        options=[("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 1)],
    )


def with_key(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),)


async def serve(
    listen: str,
    register: Iterable[tuple[Callable[[Any, grpc.aio.Server], None], Any]],
    service_names: Sequence[str],
    *,
    serving: bool = True,
    dependencies: Sequence[str] = (),
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """Start a server with the given servicers plus health and reflection; returns it running.

    Health answers ``serving`` for ``""`` and every service name, and NOT_SERVING (until told otherwise
    by the runtime) for each dependency's entry (``shared.readiness.health_name``)."""
    server = grpc.aio.server(
        interceptors=[aio_server_interceptor(filter_=filters.negate(filters.health_check()))],
        options=[("grpc.so_reuseport", 0)],
    )
    for add, servicer in register:
        add(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_servicer.gpufleet_services = ["", *service_names]  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()
    status = health_pb2.HealthCheckResponse
    for name in ("", *service_names):
        await health_servicer.set(name, status.SERVING if serving else status.NOT_SERVING)
    for dependency in dependencies:
        await health_servicer.set(readiness.health_name(dependency), status.NOT_SERVING)
    log.info("gRPC listening", extra={"listen": listen, "services": list(service_names)})
    return server, health_servicer
