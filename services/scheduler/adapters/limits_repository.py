"""The abuse-limit tables (migrations/scheduler/006_abuse_limits.sql) over PostgreSQL, and the count of
an organization's queued jobs that the queued-jobs cap needs at submit.

:class:`SqlLimitsUnit` is a policy unit (adapters/policy_repository.py) plus the limit tables: a change
takes the same ``policy_settings`` lock and version, and writes its row of the same audit trail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from sqlalchemy import text

from shared.db import Database

from ..domain.limits import Limits, LimitsPolicy, OrganizationSetting
from .policy_repository import SqlPolicyUnit

_COLUMNS = "max_queued_jobs, submit_rate, submit_burst"


def _limits(row: Any) -> Limits:
    rate = None if row.submit_rate is None else float(row.submit_rate)
    return Limits(row.max_queued_jobs, rate, row.submit_burst)


def _params(value: Limits) -> dict[str, Any]:
    return {"q": value.max_queued_jobs, "r": value.submit_rate, "b": value.submit_burst}


class SqlLimitsUnit(SqlPolicyUnit):
    # -- reads --------------------------------------------------------------------------------
    async def load_limits(self) -> LimitsPolicy:
        settings = (
            await self.s.execute(text("SELECT version, default_plan FROM policy_settings WHERE id = 1"))
        ).one()
        plans = await self.s.execute(text(f"SELECT name, {_COLUMNS} FROM policy_plans"))
        orgs = await self.s.execute(
            text(f"SELECT organization_id, plan, {_COLUMNS} FROM policy_organization_limits")
        )
        return LimitsPolicy(
            plans={r.name: _limits(r) for r in plans},
            default_plan=settings.default_plan,
            organizations={
                r.organization_id: OrganizationSetting(r.organization_id, r.plan, _limits(r)) for r in orgs
            },
            version=int(settings.version),
        )

    async def plan(self, name: str) -> Limits | None:
        row = (
            await self.s.execute(text(f"SELECT {_COLUMNS} FROM policy_plans WHERE name = :n"), {"n": name})
        ).one_or_none()
        return None if row is None else _limits(row)

    async def default_plan(self) -> str | None:
        row = await self.s.execute(text("SELECT default_plan FROM policy_settings WHERE id = 1"))
        value = row.scalar_one()
        return None if value is None else str(value)

    async def organization_setting(self, org: UUID) -> OrganizationSetting | None:
        row = (
            await self.s.execute(
                text(f"SELECT plan, {_COLUMNS} FROM policy_organization_limits WHERE organization_id = :o"),
                {"o": org},
            )
        ).one_or_none()
        return None if row is None else OrganizationSetting(org, row.plan, _limits(row))

    # -- writes -------------------------------------------------------------------------------
    async def set_plan(self, name: str, value: Limits) -> None:
        await self.s.execute(
            text(
                f"INSERT INTO policy_plans (name, {_COLUMNS}) VALUES (:n, :q, :r, :b) "
                "ON CONFLICT (name) DO UPDATE SET max_queued_jobs = EXCLUDED.max_queued_jobs, "
                "submit_rate = EXCLUDED.submit_rate, submit_burst = EXCLUDED.submit_burst, updated_at = now()"
            ),
            {"n": name, **_params(value)},
        )

    async def set_default_plan(self, name: str | None) -> None:
        await self.s.execute(text("UPDATE policy_settings SET default_plan = :n WHERE id = 1"), {"n": name})

    async def set_organization_setting(self, org: UUID, setting: OrganizationSetting | None) -> None:
        if setting is None:
            await self.s.execute(
                text("DELETE FROM policy_organization_limits WHERE organization_id = :o"), {"o": org}
            )
            return
        await self.s.execute(
            text(
                f"INSERT INTO policy_organization_limits (organization_id, plan, {_COLUMNS}) "
                "VALUES (:o, :p, :q, :r, :b) ON CONFLICT (organization_id) DO UPDATE SET "
                "plan = EXCLUDED.plan, max_queued_jobs = EXCLUDED.max_queued_jobs, "
                "submit_rate = EXCLUDED.submit_rate, submit_burst = EXCLUDED.submit_burst, updated_at = now()"
            ),
            {"o": org, "p": setting.plan, **_params(setting.overrides)},
        )


class SqlLimitsRepository:
    """``async with repo(system=True) as unit``: one transaction over the policy and limit tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[SqlLimitsUnit]:
        async with self.db.transaction(org_id=org_id, system=system) as session:
            yield SqlLimitsUnit(session)


class SqlQueuedJobs:
    """How many of an organization's jobs are queued (held ones too): one scan of ``jobs_org_queued``,
    in the organization's own scope."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def count(self, org: UUID) -> int:
        async with self.db.transaction(org_id=org) as session:
            row = await session.execute(
                text("SELECT count(*) FROM jobs WHERE organization_id = :o AND status = 'queued'"),
                {"o": org},
            )
            return int(row.scalar_one())
