"""The audit-log part of the unit of work over PostgreSQL (mixed into ``SqlUnitOfWork``): the one store
of every service's audit records (docs/audit.md), rows <-> domain records, in the unit's transaction."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shared import audit as shared_audit
from shared import consumers

from ..domain.audit import Actor, AuditQuery, AuditRecord
from ..domain.model import AuditEntry
from .orm import AuditRow


def _record(row: AuditRow) -> AuditRecord:
    before = row.before
    after = row.after
    if before is None and after is None and row.details and row.event_id is None:
        after = dict(row.details)  # identity's rows written before 005 said what they did in details
    return AuditRecord(
        id=row.id,
        organization_id=row.organization_id,
        actor=Actor(
            kind=row.actor_kind,
            user_id=row.actor_user_id,
            api_key_id=row.actor_api_key_id,
            operator_name=row.actor_operator,
            node_id=row.actor_node_id,
        ),
        service=row.service,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        before=before,
        after=after,
        request_id=row.request_id,
        at=row.at,
    )


def entry_values(entry: AuditEntry) -> dict[str, Any]:
    """Identity's own change as a row of the one log: its actor's kind, its request id (the call's,
    bound by the gRPC wrapper), its details as the ``after`` state (secrets redacted)."""
    if entry.actor_user_id is not None:
        kind = "user"
    elif entry.actor_operator is not None:
        kind = "operator"
    else:
        kind = "system"
    details = shared_audit.redact(entry.details)
    return {
        "organization_id": entry.organization_id,
        "actor_user_id": entry.actor_user_id,
        "actor_api_key_id": entry.actor_api_key_id,
        "actor_operator": entry.actor_operator,
        "actor_kind": kind,
        "service": "identity",
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "details": details,
        "after": details or None,
        "request_id": shared_audit.current().request_id,
        "at": func.now(),
    }


# The oldest first (index audit_log_at), a bounded chunk: the caller repeats until a chunk is short.
_DELETE_OLDER = text(
    "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log "
    "WHERE at < now() - make_interval(days => :days) ORDER BY at LIMIT :n)"
)


def _record_values(record: AuditRecord, event_id: UUID | None) -> dict[str, Any]:
    return {
        "organization_id": record.organization_id,
        "actor_kind": record.actor.kind,
        "actor_user_id": record.actor.user_id,
        "actor_api_key_id": record.actor.api_key_id,
        "actor_operator": record.actor.operator_name,
        "actor_node_id": record.actor.node_id,
        "service": record.service,
        "action": record.action,
        "target_type": record.target_type,
        "target_id": record.target_id,
        "details": {},
        "before": record.before,
        "after": record.after,
        "request_id": record.request_id,
        "event_id": event_id,
        "at": record.at,
    }


# A batch in one statement whose text never changes (arrays, not one VALUES tuple per row: SQLAlchemy
# compiled a many-row INSERT afresh for every batch size, which cost more than the insert itself).
_BATCH_COLUMNS = (
    "organization_id",
    "actor_kind",
    "actor_user_id",
    "actor_api_key_id",
    "actor_operator",
    "actor_node_id",
    "service",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "request_id",
    "event_id",
    "at",
)
_JSON_COLUMNS = frozenset({"before", "after"})
_ARRAY_TYPES = {
    "organization_id": "uuid",
    "actor_user_id": "uuid",
    "actor_api_key_id": "uuid",
    "actor_node_id": "uuid",
    "event_id": "uuid",
    "at": "timestamptz",
}
_INSERT_MANY = text(
    "INSERT INTO audit_log (details, "
    + ", ".join(_BATCH_COLUMNS)
    + ") SELECT '{}'::jsonb, "
    + ", ".join(f"{c}::jsonb" if c in _JSON_COLUMNS else c for c in _BATCH_COLUMNS)
    + " FROM unnest("
    + ", ".join(f"CAST(:{c} AS {_ARRAY_TYPES.get(c, 'text')}[])" for c in _BATCH_COLUMNS)
    + ") AS r("
    + ", ".join(_BATCH_COLUMNS)
    + ") ON CONFLICT (event_id) DO NOTHING RETURNING id"
)


class AuditSql:
    session: AsyncSession

    async def claim_event(self, consumer: str, event_id: UUID) -> bool:
        return await consumers.claim(self.session, consumer, event_id)

    async def add_audit_record(self, record: AuditRecord, event_id: UUID | None) -> bool:
        stored = await self.session.execute(
            pg_insert(AuditRow)
            .values(_record_values(record, event_id))
            .on_conflict_do_nothing(index_elements=[col(AuditRow.event_id)])
            .returning(col(AuditRow.id))
        )
        return stored.scalar_one_or_none() is not None

    async def claim_events(self, consumer: str, event_ids: list[UUID]) -> set[UUID]:
        return await consumers.claim_many(self.session, consumer, event_ids)

    async def add_audit_records(self, records: list[tuple[AuditRecord, UUID]]) -> int:
        columns: dict[str, list[Any]] = {name: [] for name in _BATCH_COLUMNS}
        for record, event_id in records:
            values = _record_values(record, event_id)
            for name in _BATCH_COLUMNS:
                value = values[name]
                columns[name].append(
                    json.dumps(value) if name in _JSON_COLUMNS and value is not None else value
                )
        stored = await self.session.execute(_INSERT_MANY, columns)
        return len(stored.all())

    async def audit_records(self, query: AuditQuery, limit: int) -> list[AuditRecord]:
        stmt = select(AuditRow)
        if not query.every_organization:
            if query.organization_id is None:
                stmt = stmt.where(col(AuditRow.organization_id).is_(None))  # the fleet-wide records
            else:
                stmt = stmt.where(col(AuditRow.organization_id) == query.organization_id)
        if query.service is not None:
            stmt = stmt.where(col(AuditRow.service) == query.service)
        if query.action is not None:
            stmt = stmt.where(col(AuditRow.action) == query.action)
        if query.target_type is not None:
            stmt = stmt.where(col(AuditRow.target_type) == query.target_type)
        if query.target_id is not None:
            stmt = stmt.where(col(AuditRow.target_id) == query.target_id)
        if query.actor_user_id is not None:
            stmt = stmt.where(col(AuditRow.actor_user_id) == query.actor_user_id)
        if query.since is not None:
            stmt = stmt.where(col(AuditRow.at) >= query.since)
        if query.until is not None:
            stmt = stmt.where(col(AuditRow.at) < query.until)
        if query.before_id is not None:
            stmt = stmt.where(col(AuditRow.id) < query.before_id)
        rows = await self.session.execute(stmt.order_by(col(AuditRow.id).desc()).limit(limit))
        return [_record(r) for r in rows.scalars()]

    async def delete_audit_older_than(self, days: int, limit: int) -> int:
        result = await self.session.execute(_DELETE_OLDER, {"days": days, "n": limit})
        return int(getattr(result, "rowcount", 0) or 0)
