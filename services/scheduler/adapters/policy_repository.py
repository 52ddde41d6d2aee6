"""The policy tables (migrations/scheduler/004_policy.sql) and their audit trail over PostgreSQL.

One :class:`SqlPolicyUnit` is one transaction. A change first takes the ``policy_settings`` row lock
and the next version (:meth:`SqlPolicyUnit.bump_version`), so concurrent changes are serialised and
each audit row's ``before`` is what the change really replaced. Operator units run in the system
scope; an organization admin's unit runs in its organization's scope, where row-level security
shows it only its own caps and audit entries.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit as shared_audit
from shared.db import Database

from ..domain.engine import ProjectCap, Quota, UserCap
from ..domain.policy_admin import Actor, AuditEntry, ProjectPolicyEntry, StoredPolicy, UserCapEntry
from ..service_layer import audit

_SETTINGS = text(
    "SELECT version, half_life_seconds, dedicated_lending_limit, reclaim_lent_capacity, "
    "preemption_grace_seconds FROM policy_settings WHERE id = 1"
)


def _cap(row: Any) -> UserCapEntry:
    return UserCapEntry(row.user_id, UserCap(row.max_running_jobs, row.max_gpus))


def _project_policy(row: Any) -> ProjectPolicyEntry:
    weight = None if row.weight is None else float(row.weight)
    return ProjectPolicyEntry(row.project_id, weight, ProjectCap(row.max_running_jobs, row.max_gpus))


_PROJECT_POLICIES = (
    "SELECT organization_id, project_id, weight, max_running_jobs, max_gpus FROM policy_project_policies"
)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


class SqlPolicyUnit:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    # -- reads --------------------------------------------------------------------------------
    async def version(self) -> int:
        return int(
            (await self.s.execute(text("SELECT version FROM policy_settings WHERE id = 1"))).scalar_one()
        )

    async def load(self) -> StoredPolicy:
        """Everything the unit's scope may see (the system scope: everything)."""
        settings = (await self.s.execute(_SETTINGS)).one()
        shares = await self.s.execute(text("SELECT organization_id, weight FROM policy_fair_shares"))
        weights = await self.s.execute(text("SELECT gpu_type, weight FROM policy_gpu_type_weights"))
        quotas = await self.s.execute(
            text(
                "SELECT organization_id, gpu_type, nominal, borrowing_limit, lending_limit FROM policy_quotas"
            )
        )
        caps = await self.s.execute(
            text("SELECT organization_id, user_id, max_running_jobs, max_gpus FROM policy_user_caps")
        )
        by_org: dict[UUID, list[UserCapEntry]] = {}
        for row in caps:
            by_org.setdefault(row.organization_id, []).append(_cap(row))
        projects: dict[UUID, list[ProjectPolicyEntry]] = {}
        for row in await self.s.execute(text(_PROJECT_POLICIES)):
            projects.setdefault(row.organization_id, []).append(_project_policy(row))
        return StoredPolicy(
            version=int(settings.version),
            half_life_s=float(settings.half_life_seconds),
            dedicated_lending_limit=int(settings.dedicated_lending_limit),
            reclaim_lent_capacity=bool(settings.reclaim_lent_capacity),
            preemption_grace_s=int(settings.preemption_grace_seconds),
            fair_shares={r.organization_id: float(r.weight) for r in shares},
            gpu_type_weights={r.gpu_type: float(r.weight) for r in weights},
            quotas={
                (r.organization_id, r.gpu_type): Quota(r.nominal, r.borrowing_limit, r.lending_limit)
                for r in quotas
            },
            user_caps={
                org: tuple(sorted(e, key=lambda c: (c.user is not None, c.user.int if c.user else 0)))
                for org, e in by_org.items()
            },
            project_policies={
                org: tuple(sorted(e, key=lambda p: p.project.int)) for org, e in projects.items()
            },
        )

    async def fair_share(self, org: UUID) -> float | None:
        row = await self.s.execute(
            text("SELECT weight FROM policy_fair_shares WHERE organization_id = :o"), {"o": org}
        )
        value = row.scalar_one_or_none()
        return None if value is None else float(value)

    async def gpu_type_weight(self, gpu_type: str) -> float | None:
        row = await self.s.execute(
            text("SELECT weight FROM policy_gpu_type_weights WHERE gpu_type = :t"), {"t": gpu_type}
        )
        value = row.scalar_one_or_none()
        return None if value is None else float(value)

    async def quota(self, org: UUID, gpu_type: str) -> Quota | None:
        row = (
            await self.s.execute(
                text(
                    "SELECT nominal, borrowing_limit, lending_limit FROM policy_quotas "
                    "WHERE organization_id = :o AND gpu_type = :t"
                ),
                {"o": org, "t": gpu_type},
            )
        ).one_or_none()
        return None if row is None else Quota(row.nominal, row.borrowing_limit, row.lending_limit)

    async def user_caps(self, org: UUID) -> tuple[UserCapEntry, ...]:
        rows = await self.s.execute(
            text(
                "SELECT user_id, max_running_jobs, max_gpus FROM policy_user_caps WHERE organization_id = :o "
                "ORDER BY user_id NULLS FIRST"
            ),
            {"o": org},
        )
        return tuple(_cap(r) for r in rows)

    async def project_policies(self, org: UUID) -> tuple[ProjectPolicyEntry, ...]:
        rows = await self.s.execute(
            text(_PROJECT_POLICIES + " WHERE organization_id = :o ORDER BY project_id"), {"o": org}
        )
        return tuple(sorted((_project_policy(r) for r in rows), key=lambda p: p.project.int))

    async def replace_project_policies(self, org: UUID, entries: tuple[ProjectPolicyEntry, ...]) -> None:
        await self.s.execute(
            text("DELETE FROM policy_project_policies WHERE organization_id = :o"), {"o": org}
        )
        if entries:
            await self.s.execute(
                text(
                    "INSERT INTO policy_project_policies "
                    "(organization_id, project_id, weight, max_running_jobs, max_gpus) "
                    "VALUES (:o, :p, :w, :j, :g)"
                ),
                [
                    {
                        "o": org,
                        "p": e.project,
                        "w": e.weight,
                        "j": e.cap.max_running_jobs,
                        "g": e.cap.max_gpus,
                    }
                    for e in entries
                ],
            )

    async def audit_entries(self, org: UUID | None, before_id: int | None, limit: int) -> list[AuditEntry]:
        """Newest first; ``org`` None: every entry the scope may see."""
        rows = await self.s.execute(
            text(
                "SELECT id, at, actor, organization_id, actor_user_id, actor_api_key_id, method, target, "
                "before, after, operator_name FROM policy_audit "
                "WHERE (CAST(:o AS uuid) IS NULL OR organization_id = :o) "
                "AND (CAST(:b AS bigint) IS NULL OR id < :b) ORDER BY id DESC LIMIT :n"
            ),
            {"o": org, "b": before_id, "n": limit},
        )
        return [
            AuditEntry(
                actor=Actor(True, name=r.operator_name)
                if r.actor == "operator"
                else Actor(False, r.organization_id, r.actor_user_id, r.actor_api_key_id),
                method=r.method,
                organization_id=r.organization_id,
                target=r.target,
                before=r.before,
                after=r.after,
                id=r.id,
                at=r.at,
            )
            for r in rows
        ]

    # -- writes -------------------------------------------------------------------------------
    async def bump_version(self) -> int:
        """Lock the policy for the rest of this unit and take the next version."""
        row = await self.s.execute(
            text(
                "UPDATE policy_settings SET version = version + 1, updated_at = now() WHERE id = 1 RETURNING version"
            )
        )
        return int(row.scalar_one())

    async def seeded(self) -> bool:
        """Whether settings were copied in already (locks the row: one replica seeds)."""
        row = await self.s.execute(text("SELECT seeded_at FROM policy_settings WHERE id = 1 FOR UPDATE"))
        return row.scalar_one() is not None

    async def mark_seeded(self) -> None:
        await self.s.execute(text("UPDATE policy_settings SET seeded_at = now() WHERE id = 1"))

    async def set_globals(
        self, *, half_life_s: float | None = None, dedicated_lending_limit: int | None = None
    ) -> None:
        await self.s.execute(
            text(
                "UPDATE policy_settings SET half_life_seconds = coalesce(:h, half_life_seconds), "
                "dedicated_lending_limit = coalesce(:d, dedicated_lending_limit) WHERE id = 1"
            ),
            {"h": half_life_s, "d": dedicated_lending_limit},
        )

    async def set_preemption(self, *, reclaim: bool | None = None, grace_s: int | None = None) -> None:
        await self.s.execute(
            text(
                "UPDATE policy_settings SET reclaim_lent_capacity = coalesce(:r, reclaim_lent_capacity), "
                "preemption_grace_seconds = coalesce(:g, preemption_grace_seconds) WHERE id = 1"
            ),
            {"r": reclaim, "g": grace_s},
        )

    async def set_fair_share(self, org: UUID, weight: float | None) -> None:
        if weight is None:
            await self.s.execute(
                text("DELETE FROM policy_fair_shares WHERE organization_id = :o"), {"o": org}
            )
            return
        await self.s.execute(
            text(
                "INSERT INTO policy_fair_shares (organization_id, weight) VALUES (:o, :w) "
                "ON CONFLICT (organization_id) DO UPDATE SET weight = EXCLUDED.weight, updated_at = now()"
            ),
            {"o": org, "w": weight},
        )

    async def set_gpu_type_weight(self, gpu_type: str, weight: float | None) -> None:
        if weight is None:
            await self.s.execute(
                text("DELETE FROM policy_gpu_type_weights WHERE gpu_type = :t"), {"t": gpu_type}
            )
            return
        await self.s.execute(
            text(
                "INSERT INTO policy_gpu_type_weights (gpu_type, weight) VALUES (:t, :w) "
                "ON CONFLICT (gpu_type) DO UPDATE SET weight = EXCLUDED.weight, updated_at = now()"
            ),
            {"t": gpu_type, "w": weight},
        )

    async def set_quota(self, org: UUID, gpu_type: str, quota: Quota | None) -> None:
        if quota is None:
            await self.s.execute(
                text("DELETE FROM policy_quotas WHERE organization_id = :o AND gpu_type = :t"),
                {"o": org, "t": gpu_type},
            )
            return
        await self.s.execute(
            text(
                "INSERT INTO policy_quotas (organization_id, gpu_type, nominal, borrowing_limit, lending_limit) "
                "VALUES (:o, :t, :n, :b, :l) ON CONFLICT (organization_id, gpu_type) DO UPDATE SET "
                "nominal = EXCLUDED.nominal, borrowing_limit = EXCLUDED.borrowing_limit, "
                "lending_limit = EXCLUDED.lending_limit, updated_at = now()"
            ),
            {
                "o": org,
                "t": gpu_type,
                "n": quota.nominal,
                "b": quota.borrowing_limit,
                "l": quota.lending_limit,
            },
        )

    async def replace_user_caps(self, org: UUID, caps: tuple[UserCapEntry, ...]) -> None:
        await self.s.execute(text("DELETE FROM policy_user_caps WHERE organization_id = :o"), {"o": org})
        if caps:
            await self.s.execute(
                text(
                    "INSERT INTO policy_user_caps (organization_id, user_id, max_running_jobs, max_gpus) "
                    "VALUES (:o, :u, :j, :g)"
                ),
                [{"o": org, "u": e.user, "j": e.cap.max_running_jobs, "g": e.cap.max_gpus} for e in caps],
            )

    async def audit(self, entry: AuditEntry) -> None:
        a = entry.actor
        await self.s.execute(
            text(
                "INSERT INTO policy_audit (actor, organization_id, actor_user_id, actor_api_key_id, method, "
                "target, before, after, operator_name) VALUES (:actor, :org, :user, :key, :method, "
                "CAST(:target AS jsonb), CAST(:before AS jsonb), CAST(:after AS jsonb), :operator_name)"
            ),
            {
                "actor": a.kind,
                "org": entry.organization_id,
                "user": None if a.operator else a.user_id,
                "key": None if a.operator else a.api_key_id,
                "operator_name": a.name if a.operator else None,
                "method": entry.method,
                "target": json.dumps(entry.target, sort_keys=True),
                "before": _json(entry.before),
                "after": _json(entry.after),
            },
        )
        await shared_audit.write(self.s, audit.policy_change(entry))  # bridged into the one log


class SqlPolicyRepository:
    """``async with repo(system=True) as unit`` / ``repo(org_id=...)``: one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[SqlPolicyUnit]:
        async with self.db.transaction(org_id=org_id, system=system) as session:
            yield SqlPolicyUnit(session)
