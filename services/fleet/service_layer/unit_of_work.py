"""The unit of work the handlers depend on; adapters/repository.py implements it over PostgreSQL and
tests implement it in memory. One unit = one transaction: the changes and the events recorded by the
GPUs it saved (into the outbox) commit together or not at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from shared.contracts.audit import AuditRecordedV1
from shared.events import Envelope

from ..domain.catalog import GpuType
from ..domain.identity import JoinToken, NodeCredential
from ..domain.model import Gpu, Node


@dataclass(frozen=True)
class NodeInventory:
    """A node and its GPUs, as fleet knows them (inventory and health, no allocation)."""

    node: Node
    gpus: list[Gpu]


@dataclass(frozen=True)
class Census:
    """How many nodes and GPUs are in each status (statuses with none may be absent)."""

    nodes: Mapping[str, int]
    gpus: Mapping[str, int]


class FleetUnitOfWork(Protocol):
    async def record_audit(self, envelope: Envelope[AuditRecordedV1]) -> None:
        """Add an audit record (service_layer/audit.py) to the outbox in this unit's transaction."""

    async def now(self) -> datetime:
        """The clock of record (the database's, so every replica agrees)."""

    async def catalog(self, *, active_only: bool = False) -> list[GpuType]: ...

    async def node_by_hostname(self, hostname: str) -> Node | None:
        """Locked for update when found."""

    async def node(self, node_id: UUID) -> Node | None:
        """Locked for update when found."""

    async def save_node(self, node: Node) -> None: ...

    async def stale_nodes(self, heard_before: datetime, limit: int) -> list[Node]:
        """Online nodes last heard before ``heard_before``, locked (skipping rows others hold)."""

    async def gpus_of_node(self, node_id: UUID) -> list[Gpu]:
        """Locked for update."""

    async def gpus_of_node_or_uuid(self, node_id: UUID, uuids: Sequence[str]) -> list[Gpu]:
        """The node's GPUs and any GPU with one of these vendor uuids (a card moved between nodes),
        locked for update in one statement (one lock order)."""

    async def save_gpu(self, gpu: Gpu) -> None:
        """Write the GPU and add the events it recorded to the outbox (same transaction)."""

    async def visible_gpus(self, status: str | None, gpu_type: str | None) -> list[Gpu]:
        """GPUs the unit's tenant may see (shared pool and its own), ordered by node and index."""

    async def visible_nodes(self, after: tuple[datetime, UUID] | None, limit: int) -> list[NodeInventory]:
        """Up to ``limit`` nodes the unit's tenant may see (shared pool and its own), in registration
        order (then id) after ``after``, each with its GPUs by device index."""

    async def census(self) -> Census:
        """Nodes and GPUs counted by status, the whole fleet (one grouped read)."""

    # -- node identity (system units only) --------------------------------------------------------

    async def decommissioned(self, node_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these nodes an operator decommissioned."""

    async def join_token_by_hash(self, token_hash: bytes) -> JoinToken | None:
        """Locked for update when found."""

    async def join_token(self, token_id: UUID) -> JoinToken | None:
        """Locked for update when found."""

    async def join_tokens(self, *, active_at: datetime | None) -> list[JoinToken]:
        """Newest first; ``active_at`` set: only those still usable then."""

    async def save_join_token(self, token: JoinToken) -> None: ...

    async def credential_by_hash(self, secret_hash: bytes) -> NodeCredential | None:
        """Locked for update when found."""

    async def credentials_with_nodes(self, secret_hashes: list[bytes]) -> list[tuple[NodeCredential, Node]]:
        """The credentials of these hashes that exist, each with its node; not locked (a read-only
        verification: a heartbeat or rotation in flight is not waited for)."""

    async def credentials_of_node(self, node_id: UUID) -> list[NodeCredential]:
        """Locked for update."""

    async def save_record_key(self, node_id: UUID, public_key: bytes, now: datetime) -> None:
        """The node's record signing key (shared.record_signing), replacing the one it had."""

    async def record_keys(self, node_ids: Sequence[UUID]) -> dict[UUID, bytes]:
        """The record signing keys of those of ``node_ids`` that have one and are not decommissioned."""

    async def save_credential(self, credential: NodeCredential) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[FleetUnitOfWork]: ...
