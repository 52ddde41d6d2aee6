"""The audit log's use cases: store a record another service sent (idempotently), list records.

Identity's own changes reach the same store through ``IdentityUnitOfWork.audit`` (one row per
:class:`~services.identity.domain.model.AuditEntry`, written in the change's transaction); records of
the other services arrive on ``gpufleet.audit.v1`` and are stored by :func:`record_audit`, claimed in
the consumer's ledger in the same transaction, so a redelivered event is one row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast
from uuid import UUID

from shared.errors import Unauthenticated

from ..domain.audit import AuditQuery, AuditRecord, check_filters, check_reader, encode_cursor, page_limit
from .commands import ListAllAudit, ListAudit, PruneAudit, RecordAudit, RecordAudits
from .dependencies import Dependencies
from .operators import OPERATOR_REQUIRED, resolve_operator

CONSUMER = "identity.audit"  # the processed-events ledger name (and the consumer group)


class AuditUnit(Protocol):
    """What the audit handlers need of a unit of work (the SQL unit of work has it: AuditSql)."""

    async def claim_event(self, consumer: str, event_id: UUID) -> bool:
        """Record ``event_id`` as processed by ``consumer``; False when it was already."""

    async def add_audit_record(self, record: AuditRecord, event_id: UUID | None) -> bool:
        """False when a record with this event id is stored already."""

    async def claim_events(self, consumer: str, event_ids: list[UUID]) -> set[UUID]:
        """Record the ids as processed by ``consumer``; the ones that were not before."""

    async def add_audit_records(self, records: list[tuple[AuditRecord, UUID]]) -> int:
        """Store (record, event id) pairs in one statement, skipping stored event ids; how many stored."""

    async def audit_records(self, query: AuditQuery, limit: int) -> list[AuditRecord]:
        """Newest first (by id), at most ``limit``."""

    async def delete_audit_older_than(self, days: int, limit: int) -> int:
        """Delete at most ``limit`` records older than ``days`` days (oldest first); how many."""


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    next_cursor: str | None


async def record_audit(cmd: RecordAudit, deps: Dependencies) -> bool:
    """Store a consumed record once; False when the event was applied before."""
    async with deps.uow(system=True) as tx:
        unit = cast(AuditUnit, tx)
        if not await unit.claim_event(CONSUMER, cmd.event_id):
            return False
        return await unit.add_audit_record(cmd.record, cmd.event_id)


async def record_audits(cmd: RecordAudits, deps: Dependencies) -> int:
    """Store a consumed batch in one transaction: the ledger claims every id at once and the records not
    applied before are inserted in one statement; how many were new."""
    if not cmd.records:
        return 0
    async with deps.uow(system=True) as tx:
        unit = cast(AuditUnit, tx)
        fresh = await unit.claim_events(CONSUMER, [r.event_id for r in cmd.records])
        new, seen = [], set()
        for r in cmd.records:
            if r.event_id in fresh and r.event_id not in seen:  # a batch may carry one event twice
                seen.add(r.event_id)
                new.append((r.record, r.event_id))
        return await unit.add_audit_records(new) if new else 0


async def _page(deps: Dependencies, query: AuditQuery, *, org_id: UUID | None, system: bool) -> AuditPage:
    limit = page_limit(query.limit)
    check_filters(query)
    async with deps.uow(org_id=org_id, system=system) as tx:
        rows = await cast(AuditUnit, tx).audit_records(query, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit and page[-1].id is not None
    return AuditPage(page, encode_cursor(cast(int, page[-1].id)) if more else None)


async def list_audit(cmd: ListAudit, deps: Dependencies) -> AuditPage:
    """The caller's organization only, in its own scope (row-level security backs the filter)."""
    check_reader(cmd.caller)
    org = cmd.caller.organization_id
    query = replace(cmd.query, organization_id=org, every_organization=False)
    return await _page(deps, query, org_id=org, system=False)


async def list_all_audit(cmd: ListAllAudit, deps: Dependencies) -> AuditPage:
    if await resolve_operator(cmd.operator_token, deps) is None:
        raise Unauthenticated(OPERATOR_REQUIRED)
    every = cmd.query.organization_id is None
    query = replace(cmd.query, every_organization=every)
    return await _page(deps, query, org_id=None, system=True)


async def prune_audit(cmd: PruneAudit, deps: Dependencies) -> int:
    """Delete records past retention, a chunk per transaction so no lock is held for long; how many."""
    if cmd.retention_days < 1:
        raise ValueError("retention_days must be at least 1")  # settings refuse it: a wiring bug
    total = 0
    while True:
        async with deps.uow(system=True) as tx:
            deleted = await cast(AuditUnit, tx).delete_audit_older_than(cmd.retention_days, cmd.chunk)
        total += deleted
        if deleted < cmd.chunk:
            return total


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    RecordAudit: record_audit,
    RecordAudits: record_audits,
    ListAudit: list_audit,
    ListAllAudit: list_all_audit,
    PruneAudit: prune_audit,
}
