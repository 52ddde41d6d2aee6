"""The leader lease against real PostgreSQL: one replica places, a deposed one commits nothing, a
standby takes over once the lease expires, and no GPU is ever booked twice."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from gpufleet.v1 import scheduler_pb2
from sqlalchemy import text

from services.scheduler.bootstrap import bootstrap
from services.scheduler.service_layer.options import SchedulingOptions
from services.scheduler.service_layer.scheduling import Deposed, Scheduler
from shared.db import Database

pytestmark = pytest.mark.integration


async def _free_lease(db: Database) -> None:
    async with db.transaction(system=True) as s:
        await s.execute(text("UPDATE scheduler_lease SET expires_at = now() WHERE id = 1"))


async def test_only_the_holder_places_and_a_deposed_leader_commits_nothing(harness, migrate_schema):
    await _free_lease(harness.db)
    options = SchedulingOptions(lease_ttl_s=1.0, lease_renew_s=0.2)
    other_db = Database(await migrate_schema("scheduler"), "scheduler", pool_size=2)
    try:
        deps_a = bootstrap(db=harness.db, catalog=harness.deps.catalog, options=options)
        deps_b = bootstrap(db=other_db, catalog=harness.deps.catalog, options=options)
        a, b = Scheduler(deps_a, f"a-{uuid.uuid4().hex[:6]}"), Scheduler(deps_b, f"b-{uuid.uuid4().hex[:6]}")
        org, key = harness.tenant()
        await harness.add_gpus(org, uuid.uuid4(), 2)
        assert await a.step() is not None
        assert await b.step() is None and not b.leading  # a standby while a's lease is valid

        first = await harness.jobs.SubmitJob(
            scheduler_pb2.SubmitJobRequest(command="1", gpu_count=1), metadata=key
        )
        report = await a.step()
        assert report is not None and [str(j.id) for j in report.placed if j.organization_id == org] == [
            first.id
        ]

        await asyncio.sleep(1.3)  # a stalls past its lease: b takes over with a higher token
        token_a = a.token
        assert (
            await b.step() is not None and b.token is not None and token_a is not None and b.token > token_a
        )
        second = await harness.jobs.SubmitJob(
            scheduler_pb2.SubmitJobRequest(command="2", gpu_count=1), metadata=key
        )
        a.renewed_at = float("inf")  # a does not know it was deposed: its cycle tries to commit
        with pytest.raises(Deposed):
            await a.step()
        got = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=second.id), metadata=key)
        assert got.status == "queued"  # nothing of the deposed cycle was applied

        report = await b.step()
        assert report is not None and second.id in {str(j.id) for j in report.placed}
        async with harness.db.transaction(org_id=org) as s:
            rows = (await s.execute(text("SELECT gpu_ids FROM jobs WHERE status = 'scheduled'"))).all()
        held = [g for r in rows for g in r.gpu_ids]
        assert len(held) == len(set(held)) == 2
        await b.give_up()
    finally:
        await other_db.dispose()
