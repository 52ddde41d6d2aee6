"""Audit topic contract (``gpufleet.audit.v1``): one record per change a caller made, in any service.

Every service records its callers' changes through its own transactional outbox (:mod:`shared.audit`),
so a change and its audit record commit together; identity consumes the topic into the one queryable
store (``identity.audit_log``) and writes its own changes there directly, in the same shape. docs/audit.md
says what is recorded and what is redacted.

``before`` / ``after`` are JSON snapshots of what changed (null: the thing did not exist before / does not
exist after). They never hold secrets: :func:`shared.audit.redact` replaces every value whose field name
says it is one (:data:`REDACTED_FIELDS`) with :data:`REDACTED` before a record is built.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

AUDIT_RECORDED = "gpufleet.audit.recorded"

ActorKind = Literal["user", "operator", "node", "system"]
ACTOR_KINDS: tuple[str, ...] = ("user", "operator", "node", "system")

REDACTED = "[redacted]"
# A field whose name is one of these, or ends with one after "_", never reaches a record in the clear.
REDACTED_FIELDS: frozenset[str] = frozenset(
    {
        "secret",
        "token",
        "password",
        "key_hash",
        "token_hash",
        "credential",
        "api_key",
        "authorization",
        "signing_secret",
        "private_key",
    }
)

MAX_ACTION = 64
MAX_TYPE = 64
MAX_TARGET_ID = 200
MAX_REQUEST_ID = 200


class AuditActorV1(BaseModel):
    """Who made the change. ``user``: a member's API key (user_id, api_key_id); ``operator``: an operator
    token (operator_name, ``admin`` for the bootstrap one); ``node``: a node agent's credential or join
    token (node_id when known); ``system``: the service itself (a seed, a sweep)."""

    kind: ActorKind
    user_id: UUID | None = None
    api_key_id: UUID | None = None
    operator_name: str | None = None
    node_id: UUID | None = None


class AuditRecordedV1(BaseModel):
    """One change: who, what, when, before/after and the request it came with."""

    organization_id: UUID | None = Field(
        default=None, description="the organization whose data changed; null: a fleet-wide operator change"
    )
    actor: AuditActorV1
    service: str = Field(max_length=32, description="the service that made the change, e.g. scheduler")
    action: str = Field(
        max_length=MAX_ACTION, description="e.g. job.cancel, webhook.create, node.decommission"
    )
    target_type: str = Field(max_length=MAX_TYPE, description="e.g. job, webhook, node, join_token")
    target_id: str = Field(max_length=MAX_TARGET_ID, description="the changed thing's id ('' if none)")
    before: dict[str, Any] | None = Field(default=None, description="the state before (secrets redacted)")
    after: dict[str, Any] | None = Field(default=None, description="the state after (secrets redacted)")
    request_id: str | None = Field(
        default=None,
        max_length=MAX_REQUEST_ID,
        description="the gateway's X-Request-ID, when the change came through it",
    )
    at: datetime


EVENT_TYPES: dict[str, type[BaseModel]] = {AUDIT_RECORDED: AuditRecordedV1}
