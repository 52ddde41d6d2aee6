"""One way for a service to record an audit record of a caller's change (docs/audit.md).

The record goes into the service's transactional outbox *in the transaction of the change*
(:func:`record`), so a change and its record commit or roll back together; identity consumes
``gpufleet.audit.v1`` into the one queryable store.

Who made the change and under which request are properties of the call, not of the command, so they
travel beside it: the gRPC method wrapper (:mod:`shared.grpc`) binds the ``x-request-id`` metadata the
gateway sends, and the authenticator binds the principal it resolved (an API key's user, an operator);
fleet binds a node for agent calls (:func:`bind_node`). Both are context variables of the RPC's own
task; a handler that hands work to another task (the scheduler's group commit of submits) takes
:func:`current` with it. A change made outside any call (a sweep, a seed) is the ``system`` actor.

:func:`redact` is the one place secrets are kept out of ``before``/``after``: every value whose field name
is a secret's (:data:`shared.contracts.audit.REDACTED_FIELDS`, also as a ``_suffix``) is replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from gpufleet.v1 import common_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from shared import outbox
from shared.contracts import audit as contract
from shared.contracts import topics
from shared.events import Envelope

SYSTEM = contract.AuditActorV1(kind="system")
FLEET_WIDE_KEY = "fleet"  # the partition key of records without an organization


@dataclass(frozen=True)
class AuditCall:
    """Who is calling and with which request id (None: not through the gateway)."""

    actor: contract.AuditActorV1
    request_id: str | None = None


_REQUEST_ID: ContextVar[str | None] = ContextVar("gpufleet_audit_request_id", default=None)
_ACTOR: ContextVar[contract.AuditActorV1 | None] = ContextVar("gpufleet_audit_actor", default=None)


def bind_request_id(value: str | None) -> None:
    """The request id of the call being served (the gateway's ``x-request-id``; empty: none)."""
    cleaned = (value or "").strip()[: contract.MAX_REQUEST_ID]
    _REQUEST_ID.set(cleaned or None)


CallTokens = tuple[Any, Any]


def enter_call(request_id: str | None) -> CallTokens:
    """Start a call: its request id, no actor yet. :func:`leave_call` with the result restores the
    previous values (calls served in one task, as unit tests do, never see each other's caller)."""
    cleaned = (request_id or "").strip()[: contract.MAX_REQUEST_ID]
    return _REQUEST_ID.set(cleaned or None), _ACTOR.set(None)


def leave_call(tokens: CallTokens) -> None:
    _REQUEST_ID.reset(tokens[0])
    _ACTOR.reset(tokens[1])


def bind_principal(principal: common_pb2.Principal) -> None:
    """The caller the authenticator resolved for this call."""
    _ACTOR.set(actor_of(principal))


def bind_node(node_id: UUID | None) -> None:
    """A node agent's call (its credential or, before it has a node, its join token)."""
    _ACTOR.set(contract.AuditActorV1(kind="node", node_id=node_id))


def current() -> AuditCall:
    """The call being served: its actor (``system`` when nobody was bound) and its request id."""
    return AuditCall(actor=_ACTOR.get() or SYSTEM, request_id=_REQUEST_ID.get())


def _uuid(raw: str) -> UUID | None:
    try:
        return UUID(raw) if raw else None
    except ValueError:
        return None


def actor_of(principal: common_pb2.Principal) -> contract.AuditActorV1:
    """An API key's user, or an operator (by name; ``admin`` is the bootstrap operator)."""
    if principal.operator:
        return contract.AuditActorV1(kind="operator", operator_name=principal.operator_name or "admin")
    return contract.AuditActorV1(
        kind="user", user_id=_uuid(principal.user_id), api_key_id=_uuid(principal.api_key_id)
    )


def _secret_name(name: str) -> bool:
    low = name.lower()
    return low in contract.REDACTED_FIELDS or any(low.endswith(f"_{f}") for f in contract.REDACTED_FIELDS)


def redact(value: Any) -> Any:
    """``value`` as JSON-able data with every secret-named field's value replaced by ``[redacted]``
    (at any depth, in lists too). UUIDs, datetimes and other scalars become strings."""
    if isinstance(value, Mapping):
        return {
            str(k): (contract.REDACTED if _secret_name(str(k)) and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def build(
    service: str,
    action: str,
    target_type: str,
    target_id: object,
    *,
    organization_id: UUID | None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    call: AuditCall | None = None,
    at: datetime | None = None,
) -> Envelope[contract.AuditRecordedV1]:
    """The CloudEvent of one change, secrets redacted; ``call`` defaults to :func:`current`."""
    who = call or current()
    when = at or datetime.now(UTC)
    data = contract.AuditRecordedV1(
        organization_id=organization_id,
        actor=who.actor,
        service=service,
        action=action,
        target_type=target_type,
        target_id="" if target_id is None else str(target_id),
        before=redact(before) if before is not None else None,
        after=redact(after) if after is not None else None,
        request_id=who.request_id,
        at=when,
    )
    return Envelope(
        type=contract.AUDIT_RECORDED,
        source=f"{topics.SOURCE_PREFIX}{service}",
        data=data,
        subject=f"{target_type}/{data.target_id}",
        organization_id=str(organization_id) if organization_id else None,
        time=when,
    )


def outbox_key(envelope: Envelope[contract.AuditRecordedV1]) -> str:
    """A record's partition key on the audit topic: its organization (or :data:`FLEET_WIDE_KEY`)."""
    org = envelope.data.organization_id
    return str(org) if org else FLEET_WIDE_KEY


async def write(session: AsyncSession, *envelopes: Envelope[contract.AuditRecordedV1]) -> None:
    """Add built records to the outbox in the caller's transaction, in one statement (key: each one's
    organization)."""
    await outbox.record_many(session, topics.AUDIT, [(e, outbox_key(e)) for e in envelopes])


async def record(
    session: AsyncSession,
    service: str,
    action: str,
    target_type: str,
    target_id: object,
    *,
    organization_id: UUID | None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    call: AuditCall | None = None,
) -> None:
    """:func:`build` then :func:`write`: the one call a repository makes inside its unit of work."""
    await write(
        session,
        build(
            service,
            action,
            target_type,
            target_id,
            organization_id=organization_id,
            before=before,
            after=after,
            call=call,
        ),
    )
