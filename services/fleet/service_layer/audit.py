"""What fleet records in the one audit log (docs/audit.md): the operator's join tokens
(``join_token.create``, ``join_token.revoke``) and decommissions (``node.decommission``), and node
agents' own changes: a node admitted with a join token (``node.register``) and a credential rotation
(``node.rotate_credential``). Never a token or credential: the states leave their hashes out, and
:func:`shared.audit.redact` would replace them anyway."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared import audit as shared_audit
from shared.contracts.audit import AuditActorV1, AuditRecordedV1
from shared.events import Envelope

from ..domain.identity import JoinToken, NodeProfile
from ..domain.model import Node

SERVICE = "fleet"


def _profile(profile: NodeProfile) -> dict[str, Any]:
    return {
        "organization_id": profile.organization_id,
        "provider": profile.provider,
        "is_spot": profile.is_spot,
        "labels": dict(profile.labels),
    }


def join_token_state(token: JoinToken) -> dict[str, Any]:
    return {
        **_profile(token.profile),
        "description": token.description,
        "expires_at": token.expires_at,
        "used_at": token.used_at,
        "node_id": token.node_id,
        "revoked_at": token.revoked_at,
    }


def node_state(node: Node) -> dict[str, Any]:
    return {
        "hostname": node.hostname,
        "provider": node.provider,
        "organization_id": node.organization_id,
        "is_spot": node.is_spot,
        "status": node.status,
        "labels": dict(node.labels),
        "fixed_labels": dict(node.fixed_labels),
        "decommissioned_at": node.decommissioned_at,
    }


def by_node(node_id: UUID) -> shared_audit.AuditCall:
    """A node agent's own call (its join token or credential); agents send no request id."""
    return shared_audit.AuditCall(actor=AuditActorV1(kind="node", node_id=node_id))


def join_token_change(
    action: str, token: JoinToken, before: dict[str, Any] | None
) -> Envelope[AuditRecordedV1]:
    return shared_audit.build(
        SERVICE,
        action,
        "join_token",
        token.id,
        organization_id=token.profile.organization_id,
        before=before,
        after=join_token_state(token),
    )


def node_change(
    action: str,
    node: Node,
    before: dict[str, Any] | None,
    *,
    call: shared_audit.AuditCall | None = None,
    extra: dict[str, Any] | None = None,
) -> Envelope[AuditRecordedV1]:
    return shared_audit.build(
        SERVICE,
        action,
        "node",
        node.id,
        organization_id=node.organization_id,
        before=before,
        after={**node_state(node), **(extra or {})},
        call=call,
    )
