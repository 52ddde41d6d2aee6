"""What the entrypoints (and the sweeper) ask of the service layer (already translated from the wire)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from ..domain.model import NodeRegistration


@dataclass(frozen=True)
class RegisterNode:
    registration: NodeRegistration
    # What the agent presented: a join token (first registration) or its node credential.
    secret: str = ""
    # The Ed25519 public key the node signs its Kafka records with (empty: it does not sign).
    record_public_key: bytes = b""


@dataclass(frozen=True)
class RecordHeartbeat:
    node_id: UUID
    unhealthy_gpu_ids: frozenset[UUID]
    credential: str = ""


@dataclass(frozen=True)
class AuthenticateNode:
    credential: str


@dataclass(frozen=True)
class AuthenticateNodes:
    credentials: tuple[str, ...]


@dataclass(frozen=True)
class GetRecordKeys:
    """The record signing keys of these nodes (public: consumers verify agents' records with them)."""

    node_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class RotateNodeCredential:
    credential: str


@dataclass(frozen=True)
class CreateJoinToken:
    organization_id: UUID | None
    provider: str
    is_spot: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    ttl_seconds: int = 0  # 0: the default
    description: str = ""


@dataclass(frozen=True)
class ListJoinTokens:
    include_inactive: bool = False


@dataclass(frozen=True)
class RevokeJoinToken:
    token_id: UUID


@dataclass(frozen=True)
class DecommissionNode:
    node_id: UUID


@dataclass(frozen=True)
class SweepOfflineNodes:
    """One round of the offline sweep: every silent node, ``batch`` per transaction."""

    batch: int = 100


@dataclass(frozen=True)
class ListGpus:
    organization_id: UUID
    status: str | None = None
    gpu_type: str | None = None


@dataclass(frozen=True)
class ListGpuTypes:
    organization_id: UUID


@dataclass(frozen=True)
class ListNodes:
    """One page of the nodes ``organization_id`` may see, with their GPUs."""

    organization_id: UUID
    limit: int = 0  # 0: the default page
    cursor: str | None = None


@dataclass(frozen=True)
class ListAllNodes:
    """The operator's whole-fleet view: one page of every node (all organizations), with its GPUs."""

    limit: int = 0  # 0: the default page
    cursor: str | None = None


Command = (
    RegisterNode
    | RecordHeartbeat
    | SweepOfflineNodes
    | ListGpus
    | ListGpuTypes
    | ListNodes
    | ListAllNodes
    | AuthenticateNode
    | AuthenticateNodes
    | GetRecordKeys
    | RotateNodeCredential
    | CreateJoinToken
    | ListJoinTokens
    | RevokeJoinToken
    | DecommissionNode
)
