"""An in-memory unit of work: the handlers' seam, without PostgreSQL."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from services.fleet.domain.catalog import GpuType
from services.fleet.domain.events import GpuEvent
from services.fleet.domain.identity import JoinToken, NodeCredential
from services.fleet.domain.model import Gpu, Node
from services.fleet.service_layer.handlers import Dependencies, RegistrationPolicy
from services.fleet.service_layer.unit_of_work import Census, NodeInventory

POLICY = RegistrationPolicy(unknown_gpu_price_per_hour=Decimal("0.2500"), heartbeat_interval_seconds=5)
NODE_TIMEOUT = timedelta(seconds=30)


class FakeStore:
    def __init__(self, catalog: list[GpuType]) -> None:
        self.types = catalog
        self.nodes: dict[UUID, Node] = {}
        self.gpus: dict[UUID, Gpu] = {}
        self.published: list[GpuEvent] = []
        self.clock = datetime(2025, 1, 1, tzinfo=UTC)
        self.units: list[dict] = []
        self.join_tokens: dict[UUID, JoinToken] = {}
        self.credentials: dict[UUID, NodeCredential] = {}
        self.record_keys: dict[UUID, bytes] = {}
        # What the tests' agents keep: hostname -> credential, node id -> credential.
        self.host_credentials: dict[str, str] = {}
        self.node_credentials: dict[UUID, str] = {}
        self.audits: list[object] = []  # audit CloudEvents of committed units

    def advance(self, seconds: float) -> None:
        self.clock += timedelta(seconds=seconds)

    @asynccontextmanager
    async def __call__(self, *, org_id: UUID | None = None, system: bool = False) -> AsyncIterator[FakeUnit]:
        assert org_id is not None or system
        self.units.append({"org_id": org_id, "system": system})
        unit = FakeUnit(self, org_id, system)
        yield unit
        unit.commit()  # only reached without an exception: a failing unit leaves no trace


class FakeUnit:
    def __init__(self, store: FakeStore, org_id: UUID | None, system: bool) -> None:
        self.store, self.org_id, self.system = store, org_id, system
        self.nodes: dict[UUID, Node] = {}
        self.gpus: dict[UUID, Gpu] = {}
        self.events: list[GpuEvent] = []
        self.join_tokens: dict[UUID, JoinToken] = {}
        self.credentials: dict[UUID, NodeCredential] = {}
        self.keys: dict[UUID, bytes] = {}
        self.audits: list[object] = []

    def commit(self) -> None:
        self.store.audits.extend(self.audits)
        self.store.join_tokens.update(self.join_tokens)
        self.store.credentials.update(self.credentials)
        self.store.record_keys.update(self.keys)
        self.store.nodes.update(self.nodes)
        self.store.gpus.update(self.gpus)
        self.store.published.extend(self.events)

    def _copies(self, gpus: list[Gpu]) -> list[Gpu]:
        return sorted((copy.deepcopy(g) for g in gpus), key=lambda g: g.id)

    async def now(self) -> datetime:
        return self.store.clock

    async def record_audit(self, envelope: object) -> None:
        self.audits.append(envelope)

    async def catalog(self, *, active_only: bool = False) -> list[GpuType]:
        return [t for t in self.store.types if t.is_active or not active_only]

    async def node_by_hostname(self, hostname: str) -> Node | None:
        return next((copy.deepcopy(n) for n in self.store.nodes.values() if n.hostname == hostname), None)

    async def node(self, node_id: UUID) -> Node | None:
        return copy.deepcopy(self.store.nodes.get(node_id))

    async def save_node(self, node: Node) -> None:
        assert self.system, "writes are system only"
        stored = copy.deepcopy(node)
        if stored.registered_at is None:  # the table's DEFAULT now() on first insert
            known = self.store.nodes.get(node.id)
            stored.registered_at = known.registered_at if known else self.store.clock
        self.nodes[node.id] = stored

    async def stale_nodes(self, heard_before: datetime, limit: int) -> list[Node]:
        stale = [
            n for n in self.store.nodes.values() if n.status == "online" and n.last_heartbeat < heard_before
        ]
        return [copy.deepcopy(n) for n in stale][:limit]

    async def gpus_of_node(self, node_id: UUID) -> list[Gpu]:
        return self._copies([g for g in self.store.gpus.values() if g.node_id == node_id])

    async def gpus_of_node_or_uuid(self, node_id: UUID, uuids: Sequence[str]) -> list[Gpu]:
        return self._copies([g for g in self.store.gpus.values() if g.node_id == node_id or g.uuid in uuids])

    async def save_gpu(self, gpu: Gpu) -> None:
        assert self.system, "writes are system only"
        self.events.extend(gpu.pull_events())
        self.gpus[gpu.id] = copy.deepcopy(gpu)

    async def visible_gpus(self, status: str | None, gpu_type: str | None) -> list[Gpu]:
        return [
            g
            for g in self.store.gpus.values()
            if (self.system or g.organization_id in (None, self.org_id))
            and (not status or g.status == status)
            and (not gpu_type or g.gpu_type == gpu_type)
        ]

    async def visible_nodes(self, after: tuple[datetime, UUID] | None, limit: int) -> list[NodeInventory]:
        nodes = sorted(
            (n for n in self.store.nodes.values() if self.system or n.organization_id in (None, self.org_id)),
            key=lambda n: (n.registered_at, n.id),
        )
        if after is not None:
            nodes = [n for n in nodes if (n.registered_at, n.id) > after]
        return [
            NodeInventory(
                copy.deepcopy(n),
                sorted(
                    (copy.deepcopy(g) for g in self.store.gpus.values() if g.node_id == n.id),
                    key=lambda g: (g.index, g.id),
                ),
            )
            for n in nodes[:limit]
        ]

    async def census(self) -> Census:
        # Like the grouped query: only statuses that occur are counted.
        return Census(
            nodes=dict(Counter(n.status for n in self.store.nodes.values())),
            gpus=dict(Counter(g.status for g in self.store.gpus.values())),
        )


@dataclass
class FakeMetrics:
    heartbeats: int = 0
    censuses: list[Census] = field(default_factory=list)

    def count_heartbeat(self) -> None:
        self.heartbeats += 1

    def show_census(self, census: Census) -> None:
        self.censuses.append(census)


def _identity_methods() -> None:
    """Node identity on FakeUnit: copies in, written back on commit like nodes and GPUs."""

    async def decommissioned(self, node_ids):  # type: ignore[no-untyped-def]
        return {
            n
            for n in node_ids
            if (self.nodes.get(n) or self.store.nodes.get(n))
            and (self.nodes.get(n) or self.store.nodes[n]).decommissioned_at is not None
        }

    def _tokens(self):  # type: ignore[no-untyped-def]
        return {**self.store.join_tokens, **self.join_tokens}

    def _creds(self):  # type: ignore[no-untyped-def]
        return {**self.store.credentials, **self.credentials}

    async def join_token_by_hash(self, token_hash):  # type: ignore[no-untyped-def]
        found = [t for t in _tokens(self).values() if t.token_hash == token_hash]
        return copy.deepcopy(found[0]) if found else None

    async def join_token(self, token_id):  # type: ignore[no-untyped-def]
        found = _tokens(self).get(token_id)
        return copy.deepcopy(found) if found else None

    async def join_tokens(self, *, active_at):  # type: ignore[no-untyped-def]
        tokens = sorted(_tokens(self).values(), key=lambda t: t.created_at, reverse=True)
        return [copy.deepcopy(t) for t in tokens if active_at is None or t.state(active_at) == "active"]

    async def save_join_token(self, token):  # type: ignore[no-untyped-def]
        self.join_tokens[token.id] = copy.deepcopy(token)

    async def credential_by_hash(self, secret_hash):  # type: ignore[no-untyped-def]
        found = [c for c in _creds(self).values() if c.secret_hash == secret_hash]
        return copy.deepcopy(found[0]) if found else None

    async def credentials_with_nodes(self, secret_hashes):  # type: ignore[no-untyped-def]
        wanted, nodes = set(secret_hashes), {**self.store.nodes, **self.nodes}
        return [
            (copy.deepcopy(c), copy.deepcopy(nodes[c.node_id]))
            for c in _creds(self).values()
            if c.secret_hash in wanted and c.node_id in nodes
        ]

    async def save_record_key(self, node_id, public_key, now):  # type: ignore[no-untyped-def]
        self.keys[node_id] = public_key

    async def record_keys(self, node_ids):  # type: ignore[no-untyped-def]
        keys = {**self.store.record_keys, **self.keys}
        nodes = {**self.store.nodes, **self.nodes}
        return {
            n: keys[n] for n in node_ids if n in keys and n in nodes and nodes[n].decommissioned_at is None
        }

    async def credentials_of_node(self, node_id):  # type: ignore[no-untyped-def]
        return [copy.deepcopy(c) for c in _creds(self).values() if c.node_id == node_id]

    async def save_credential(self, credential):  # type: ignore[no-untyped-def]
        self.credentials[credential.id] = copy.deepcopy(credential)

    for fn in (
        decommissioned,
        join_token_by_hash,
        join_token,
        join_tokens,
        save_join_token,
        credential_by_hash,
        credentials_with_nodes,
        credentials_of_node,
        save_credential,
    ):
        setattr(FakeUnit, fn.__name__, fn)


_identity_methods()


def fake_dependencies(store: FakeStore, metrics: FakeMetrics | None = None) -> Dependencies:
    return Dependencies(uow=store, policy=POLICY, node_timeout=NODE_TIMEOUT, metrics=metrics or FakeMetrics())
