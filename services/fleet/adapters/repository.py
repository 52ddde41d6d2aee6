"""The unit of work over PostgreSQL: one ``Database.transaction`` per unit, rows <-> domain objects."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

from sqlalchemy import Select, func, literal, or_, select, text, tuple_, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shared import audit as shared_audit
from shared import outbox
from shared.contracts import topics
from shared.contracts.audit import AuditRecordedV1
from shared.db import Database
from shared.events import Envelope

from ..domain.catalog import GpuType
from ..domain.identity import JoinToken, NodeCredential, NodeProfile
from ..domain.model import Gpu, Node
from ..service_layer.unit_of_work import Census, FleetUnitOfWork, NodeInventory, UnitOfWorkFactory
from .events import to_envelope
from .orm import GpuRow, GpuTypeRow, JoinTokenRow, NodeCredentialRow, NodeRecordKeyRow, NodeRow

_GPU_UPDATABLE = (
    "node_id",
    "uuid",
    "device_index",
    "organization_id",
    "name",
    "gpu_type",
    "provider",
    "status",
    "memory_total",
    "cost_per_hour",
    "is_spot",
    "revision",
    "reported",
    "last_active",
    "updated_at",
)
_NODE_UPDATABLE = (
    "hostname",
    "provider",
    "gpu_backend",
    "driver_version",
    "agent_version",
    "organization_id",
    "is_spot",
    "status",
    "last_heartbeat",
    "updated_at",
    "cpu_cores",
    "ram_mb",
    "labels",
    "fixed_labels",
    "decommissioned_at",
)


def _gpu_type(row: GpuTypeRow) -> GpuType:
    return GpuType(
        name=row.name,
        vendor=row.vendor,
        model=row.model,
        memory_mb=row.memory_mb,
        nvml_names=tuple(row.nvml_names),
        reference_price_per_hour=row.reference_price_per_hour,
        spot_price_per_hour=row.spot_price_per_hour,
        is_active=row.is_active,
    )


def _node(row: NodeRow) -> Node:
    return Node(
        id=row.id,
        hostname=row.hostname,
        provider=row.provider,
        gpu_backend=row.gpu_backend,
        driver_version=row.driver_version,
        agent_version=row.agent_version,
        organization_id=row.organization_id,
        is_spot=row.is_spot,
        status=row.status,  # type: ignore[arg-type]  # the CHECK constraint keeps it in the Literal
        last_heartbeat=row.last_heartbeat,  # type: ignore[arg-type]
        cpu_cores=row.cpu_cores,
        ram_mb=row.ram_mb,
        labels=dict(row.labels or {}),
        registered_at=row.registered_at,
        fixed_labels=dict(row.fixed_labels or {}),
        decommissioned_at=row.decommissioned_at,
    )


def _gpu(row: GpuRow, node: NodeRow) -> Gpu:
    node_name = node.hostname
    return Gpu(
        id=row.id,
        node_id=row.node_id,
        node_name=node_name,
        index=row.device_index,
        uuid=row.uuid,
        name=row.name,
        gpu_type=row.gpu_type,
        memory_total_mb=row.memory_total,
        cost_per_hour=row.cost_per_hour,
        provider=row.provider,
        is_spot=row.is_spot,
        organization_id=row.organization_id,
        status=row.status,  # type: ignore[arg-type]  # the CHECK constraint keeps it in the Literal
        revision=row.revision,
        reported=row.reported,
        last_active=row.last_active,
        node_cpu_cores=node.cpu_cores,
        node_ram_mb=node.ram_mb,
        node_labels=dict(node.labels or {}),
    )


class SqlUnitOfWork(FleetUnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record_audit(self, envelope: Envelope[AuditRecordedV1]) -> None:
        await shared_audit.write(self.session, envelope)  # in this unit's transaction (docs/audit.md)

    async def now(self) -> datetime:
        # Transaction time from the database: every replica (and the sweeper) shares one clock.
        return (await self.session.execute(select(func.now()))).scalar_one()

    async def catalog(self, *, active_only: bool = False) -> list[GpuType]:
        stmt = select(GpuTypeRow).order_by(col(GpuTypeRow.name))
        if active_only:
            stmt = stmt.where(col(GpuTypeRow.is_active))
        return [_gpu_type(r) for r in (await self.session.execute(stmt)).scalars()]

    async def node_by_hostname(self, hostname: str) -> Node | None:
        # Serializes registrations of one hostname, including the very first (no row to lock yet).
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('fleet-node:' || :h))"), {"h": hostname}
        )
        row = (
            await self.session.execute(
                select(NodeRow).where(col(NodeRow.hostname) == hostname).with_for_update()
            )
        ).scalar_one_or_none()
        return _node(row) if row else None

    async def node(self, node_id: UUID) -> Node | None:
        row = (
            await self.session.execute(select(NodeRow).where(col(NodeRow.id) == node_id).with_for_update())
        ).scalar_one_or_none()
        return _node(row) if row else None

    async def save_node(self, node: Node) -> None:
        values = {
            "id": node.id,
            "hostname": node.hostname,
            "provider": node.provider,
            "gpu_backend": node.gpu_backend,
            "driver_version": node.driver_version,
            "agent_version": node.agent_version,
            "organization_id": node.organization_id,
            "is_spot": node.is_spot,
            "status": node.status,
            "last_heartbeat": node.last_heartbeat,
            "cpu_cores": node.cpu_cores,
            "ram_mb": node.ram_mb,
            "labels": node.labels,
            "fixed_labels": node.fixed_labels,
            "decommissioned_at": node.decommissioned_at,
            "registered_at": func.now(),
            "updated_at": func.now(),
        }
        stmt = insert(NodeRow).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[col(NodeRow.id)], set_={k: stmt.excluded[k] for k in _NODE_UPDATABLE}
        )
        await self.session.execute(stmt)

    async def stale_nodes(self, heard_before: datetime, limit: int) -> list[Node]:
        stmt = (
            select(NodeRow)
            .where(col(NodeRow.status) == "online", col(NodeRow.last_heartbeat) < heard_before)
            .order_by(col(NodeRow.last_heartbeat))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_node(r) for r in (await self.session.execute(stmt)).scalars()]

    def _gpus(self) -> Select:
        return select(GpuRow, NodeRow).join(NodeRow, col(NodeRow.id) == col(GpuRow.node_id))

    async def _locked(self, stmt: Select) -> list[Gpu]:
        rows = await self.session.execute(stmt.order_by(col(GpuRow.id)).with_for_update(of=GpuRow))
        return [_gpu(row, node) for row, node in rows]

    async def gpus_of_node(self, node_id: UUID) -> list[Gpu]:
        return await self._locked(self._gpus().where(col(GpuRow.node_id) == node_id))

    async def gpus_of_node_or_uuid(self, node_id: UUID, uuids: Sequence[str]) -> list[Gpu]:
        return await self._locked(
            self._gpus().where(or_(col(GpuRow.node_id) == node_id, col(GpuRow.uuid).in_(list(uuids))))
        )

    async def save_gpu(self, gpu: Gpu) -> None:
        values = {
            "id": gpu.id,
            "node_id": gpu.node_id,
            "uuid": gpu.uuid,
            "device_index": gpu.index,
            "organization_id": gpu.organization_id,
            "name": gpu.name,
            "gpu_type": gpu.gpu_type,
            "provider": gpu.provider,
            "status": gpu.status,
            "memory_total": gpu.memory_total_mb,
            "cost_per_hour": gpu.cost_per_hour,
            "is_spot": gpu.is_spot,
            "revision": gpu.revision,
            "reported": gpu.reported,
            "last_active": gpu.last_active or func.now(),
            "capabilities": {},
            "created_at": func.now(),
            "updated_at": func.now(),
        }
        stmt = insert(GpuRow).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[col(GpuRow.id)], set_={k: stmt.excluded[k] for k in _GPU_UPDATABLE}
        )
        await self.session.execute(stmt)
        for event in gpu.pull_events():
            await outbox.record(self.session, topics.FLEET, to_envelope(event), key=str(event.gpu.gpu_id))

    async def visible_gpus(self, status: str | None, gpu_type: str | None) -> list[Gpu]:
        stmt = self._gpus()
        if status:
            stmt = stmt.where(col(GpuRow.status) == status)
        if gpu_type:
            stmt = stmt.where(col(GpuRow.gpu_type) == gpu_type)
        rows = await self.session.execute(
            stmt.order_by(col(NodeRow.hostname), col(GpuRow.device_index), col(GpuRow.id))
        )
        return [_gpu(row, node) for row, node in rows]

    async def visible_nodes(self, after: tuple[datetime, UUID] | None, limit: int) -> list[NodeInventory]:
        # Row-level security limits both reads to the shared pool and the unit's own organization.
        stmt = select(NodeRow)
        if after is not None:
            stmt = stmt.where(tuple_(col(NodeRow.registered_at), col(NodeRow.id)) > tuple_(*after))
        stmt = stmt.order_by(col(NodeRow.registered_at), col(NodeRow.id)).limit(limit)
        node_rows = list((await self.session.execute(stmt)).scalars())
        if not node_rows:
            return []
        by_node: dict[UUID, list[Gpu]] = {n.id: [] for n in node_rows}
        rows = {n.id: n for n in node_rows}
        gpu_rows = await self.session.execute(
            select(GpuRow)
            .where(col(GpuRow.node_id).in_(list(by_node)))
            .order_by(col(GpuRow.node_id), col(GpuRow.device_index), col(GpuRow.id))
        )
        for gpu_row in gpu_rows.scalars():
            by_node[gpu_row.node_id].append(_gpu(gpu_row, rows[gpu_row.node_id]))
        return [NodeInventory(_node(n), by_node[n.id]) for n in node_rows]

    async def census(self) -> Census:
        stmt = union_all(
            select(literal("node"), col(NodeRow.status), func.count()).group_by(col(NodeRow.status)),
            select(literal("gpu"), col(GpuRow.status), func.count()).group_by(col(GpuRow.status)),
        )
        counts: dict[str, dict[str, int]] = {"node": {}, "gpu": {}}
        for kind, status, n in await self.session.execute(stmt):
            counts[kind][status] = n
        return Census(nodes=counts["node"], gpus=counts["gpu"])

    # -- node identity ----------------------------------------------------------------------------

    async def decommissioned(self, node_ids: Sequence[UUID]) -> set[UUID]:
        if not node_ids:
            return set()
        stmt = select(col(NodeRow.id)).where(
            col(NodeRow.id).in_(list(node_ids)), col(NodeRow.decommissioned_at).is_not(None)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def join_token_by_hash(self, token_hash: bytes) -> JoinToken | None:
        stmt = select(JoinTokenRow).where(col(JoinTokenRow.token_hash) == token_hash).with_for_update()
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        return _join_token(row) if row else None

    async def join_token(self, token_id: UUID) -> JoinToken | None:
        stmt = select(JoinTokenRow).where(col(JoinTokenRow.id) == token_id).with_for_update()
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        return _join_token(row) if row else None

    async def join_tokens(self, *, active_at: datetime | None) -> list[JoinToken]:
        stmt = select(JoinTokenRow)
        if active_at is not None:
            stmt = stmt.where(
                col(JoinTokenRow.used_at).is_(None),
                col(JoinTokenRow.revoked_at).is_(None),
                col(JoinTokenRow.expires_at) > active_at,
            )
        stmt = stmt.order_by(col(JoinTokenRow.created_at).desc(), col(JoinTokenRow.id)).limit(1000)
        return [_join_token(r) for r in (await self.session.execute(stmt)).scalars()]

    async def save_join_token(self, token: JoinToken) -> None:
        values = {
            "id": token.id,
            "token_hash": token.token_hash,
            "organization_id": token.profile.organization_id,
            "provider": token.profile.provider,
            "is_spot": token.profile.is_spot,
            "labels": dict(token.profile.labels),
            "description": token.description,
            "created_at": token.created_at,
            "expires_at": token.expires_at,
            "used_at": token.used_at,
            "node_id": token.node_id,
            "revoked_at": token.revoked_at,
        }
        stmt = insert(JoinTokenRow).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[col(JoinTokenRow.id)],
            set_={k: stmt.excluded[k] for k in ("used_at", "node_id", "revoked_at")},
        )
        await self.session.execute(stmt)

    async def credential_by_hash(self, secret_hash: bytes) -> NodeCredential | None:
        stmt = (
            select(NodeCredentialRow)
            .where(col(NodeCredentialRow.secret_hash) == secret_hash)
            .with_for_update()
        )
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        return _credential(row) if row else None

    async def credentials_with_nodes(self, secret_hashes: list[bytes]) -> list[tuple[NodeCredential, Node]]:
        if not secret_hashes:
            return []
        stmt = (
            select(NodeCredentialRow, NodeRow)
            .join(NodeRow, col(NodeRow.id) == col(NodeCredentialRow.node_id))
            .where(col(NodeCredentialRow.secret_hash).in_(secret_hashes))
        )
        return [(_credential(c), _node(n)) for c, n in (await self.session.execute(stmt)).all()]

    async def credentials_of_node(self, node_id: UUID) -> list[NodeCredential]:
        stmt = (
            select(NodeCredentialRow)
            .where(col(NodeCredentialRow.node_id) == node_id)
            .order_by(col(NodeCredentialRow.id))
            .with_for_update()
        )
        return [_credential(r) for r in (await self.session.execute(stmt)).scalars()]

    async def save_record_key(self, node_id: UUID, public_key: bytes, now: datetime) -> None:
        stmt = insert(NodeRecordKeyRow).values(node_id=node_id, public_key=public_key, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[col(NodeRecordKeyRow.node_id)],
            set_={"public_key": stmt.excluded.public_key, "updated_at": stmt.excluded.updated_at},
        )
        await self.session.execute(stmt)

    async def record_keys(self, node_ids: Sequence[UUID]) -> dict[UUID, bytes]:
        if not node_ids:
            return {}
        stmt = (
            select(col(NodeRecordKeyRow.node_id), col(NodeRecordKeyRow.public_key))
            .join(NodeRow, col(NodeRow.id) == col(NodeRecordKeyRow.node_id))
            .where(col(NodeRecordKeyRow.node_id).in_(node_ids), col(NodeRow.decommissioned_at).is_(None))
        )
        return {node_id: bytes(key) for node_id, key in (await self.session.execute(stmt)).all()}

    async def save_credential(self, credential: NodeCredential) -> None:
        values = {
            "id": credential.id,
            "node_id": credential.node_id,
            "secret_hash": credential.secret_hash,
            "created_at": credential.created_at,
            "expires_at": credential.expires_at,
            "revoked_at": credential.revoked_at,
        }
        stmt = insert(NodeCredentialRow).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[col(NodeCredentialRow.id)],
            set_={k: stmt.excluded[k] for k in ("expires_at", "revoked_at")},
        )
        await self.session.execute(stmt)


def _join_token(row: JoinTokenRow) -> JoinToken:
    return JoinToken(
        id=row.id,
        token_hash=bytes(row.token_hash),
        profile=NodeProfile(row.organization_id, row.provider, row.is_spot, dict(row.labels or {})),
        created_at=row.created_at,
        expires_at=row.expires_at,
        description=row.description,
        used_at=row.used_at,
        node_id=row.node_id,
        revoked_at=row.revoked_at,
    )


def _credential(row: NodeCredentialRow) -> NodeCredential:
    return NodeCredential(
        id=row.id,
        node_id=row.node_id,
        secret_hash=bytes(row.secret_hash),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def sql_unit_of_work(db: Database) -> UnitOfWorkFactory:
    @asynccontextmanager
    async def unit(*, org_id: UUID | None = None, system: bool = False) -> AsyncIterator[FleetUnitOfWork]:
        async with db.transaction(org_id=org_id, system=system) as session:
            yield SqlUnitOfWork(session)

    return unit
