"""Node identity: join tokens, node credentials, and which GPUs a node may claim. Plain rules, no I/O.

* A **join token** is created by an operator and fixes what the node it admits is: the organization it
  is dedicated to (or the shared pool), its provider, whether it is spot, and labels. It is used once,
  before it expires, unless revoked.
* A **node credential** is bound to one node. It is valid until rotated (then for a short overlap) or
  revoked (decommission). Only hashes of either secret are kept (``shared.node_identity``).
* A node's GPUs are claimed by vendor UUID: a UUID registered to another node is refused unless that
  node was decommissioned by an operator (the operator's say-so that the card moved).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID, uuid4

from shared.contracts.limits import (
    DEFAULT_JOIN_TOKEN_TTL_SECONDS,
    MAX_JOIN_TOKEN_DESCRIPTION,
    MAX_JOIN_TOKEN_TTL_SECONDS,
    MAX_PROVIDER,
    MIN_JOIN_TOKEN_TTL_SECONDS,
)
from shared.errors import InvalidArgument, PermissionDenied, Unauthenticated

from .model import DEFAULT_PROVIDER, check_labels

JoinTokenState = Literal["active", "used", "expired", "revoked"]


@dataclass(frozen=True)
class NodeProfile:
    """What a node is, as its join token fixed it (never what its agent says)."""

    organization_id: UUID | None
    provider: str
    is_spot: bool
    labels: Mapping[str, str] = field(default_factory=dict)


def join_token_profile(
    organization_id: UUID | None, provider: str, is_spot: bool, labels: Mapping[str, str]
) -> NodeProfile:
    provider = provider.strip() or DEFAULT_PROVIDER
    if len(provider) > MAX_PROVIDER:
        raise InvalidArgument(f"provider is longer than {MAX_PROVIDER} characters", field="provider")
    return NodeProfile(organization_id, provider, is_spot, check_labels(labels))


def join_token_ttl(ttl_seconds: int) -> timedelta:
    seconds = ttl_seconds or DEFAULT_JOIN_TOKEN_TTL_SECONDS
    if not MIN_JOIN_TOKEN_TTL_SECONDS <= seconds <= MAX_JOIN_TOKEN_TTL_SECONDS:
        raise InvalidArgument(
            f"ttl_seconds must be between {MIN_JOIN_TOKEN_TTL_SECONDS} and {MAX_JOIN_TOKEN_TTL_SECONDS}",
            field="ttl_seconds",
        )
    return timedelta(seconds=seconds)


def check_description(description: str) -> str:
    if len(description) > MAX_JOIN_TOKEN_DESCRIPTION:
        raise InvalidArgument(
            f"description is longer than {MAX_JOIN_TOKEN_DESCRIPTION} characters", field="description"
        )
    return description.strip()


@dataclass
class JoinToken:
    id: UUID
    token_hash: bytes
    profile: NodeProfile
    created_at: datetime
    expires_at: datetime
    description: str = ""
    used_at: datetime | None = None
    node_id: UUID | None = None
    revoked_at: datetime | None = None

    @classmethod
    def create(
        cls, token_hash: bytes, profile: NodeProfile, now: datetime, ttl: timedelta, description: str = ""
    ) -> JoinToken:
        return cls(uuid4(), token_hash, profile, now, now + ttl, check_description(description))

    def state(self, now: datetime) -> JoinTokenState:
        if self.revoked_at is not None:
            return "revoked"
        if self.used_at is not None:
            return "used"
        if now >= self.expires_at:
            return "expired"
        return "active"

    def use(self, node_id: UUID, now: datetime) -> None:
        """Spend the token on ``node_id``; a token that cannot be used is UNAUTHENTICATED (one answer
        for used, expired and revoked: the caller learns nothing about which)."""
        if self.state(now) != "active":
            raise Unauthenticated("invalid join token")
        self.used_at, self.node_id = now, node_id

    def revoke(self, now: datetime) -> bool:
        """True when it changed (revoking a used or already revoked token changes nothing)."""
        if self.revoked_at is not None or self.used_at is not None:
            return False
        self.revoked_at = now
        return True


@dataclass
class NodeCredential:
    id: UUID
    node_id: UUID
    secret_hash: bytes
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def issue(cls, node_id: UUID, secret_hash: bytes, now: datetime) -> NodeCredential:
        return cls(uuid4(), node_id, secret_hash, now)

    def valid(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def retire(self, now: datetime, overlap: timedelta) -> datetime:
        """Superseded by a rotation: valid for ``overlap`` more (never longer than it already was)."""
        until = now + overlap
        if self.expires_at is None or until < self.expires_at:
            self.expires_at = until
        return self.expires_at

    def revoke(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        self.revoked_at = now
        return True


def authenticated(credential: NodeCredential | None, now: datetime) -> NodeCredential:
    """The credential when it may be used now; UNAUTHENTICATED otherwise (unknown, expired, revoked)."""
    if credential is None or not credential.valid(now):
        raise Unauthenticated("invalid node credential")
    return credential


def require_own_node(caller: UUID, named: UUID) -> None:
    """An agent acts only for the node its credential is bound to."""
    if caller != named:
        raise PermissionDenied("this credential belongs to another node")


@dataclass(frozen=True)
class ClaimedGpu:
    """A GPU already in the inventory, by vendor UUID, and whether its node was decommissioned."""

    uuid: str
    node_id: UUID
    node_decommissioned: bool


def check_gpu_claims(node_id: UUID, known: Iterable[ClaimedGpu]) -> None:
    """PERMISSION_DENIED when ``node_id`` reports a GPU UUID registered to another node that an
    operator did not release (by decommissioning that node)."""
    taken = sorted(g.uuid for g in known if g.node_id != node_id and not g.node_decommissioned)
    if taken:
        raise PermissionDenied(f"GPU {taken[0]} is registered to another node", field="gpus")
