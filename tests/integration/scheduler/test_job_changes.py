"""What the leader reads of job changes between rebuilds (``job_changes``), against real PostgreSQL: a
change whose transaction committed after a read is still read next time, even when a newer change was
already seen (change numbers are taken at write time, not at commit); the leader's own cycle writes are
left out, and a row changed again by anyone else comes back."""

from __future__ import annotations

import uuid

import pytest

from services.scheduler.adapters.repository import SqlUnitOfWorkFactory
from services.scheduler.domain.model import Job
from services.scheduler.domain.spec import job_spec

pytestmark = pytest.mark.integration


async def _queued(uow: SqlUnitOfWorkFactory, org: uuid.UUID, n: int) -> list[uuid.UUID]:
    async with uow(system=True) as u:
        at = await u.now()
        jobs = [
            Job.submit(
                job_spec(command="true", gpu_count=1),
                job_id=uuid.uuid4(),
                organization_id=org,
                user_id=None,
                at=at,
            )
            for _ in range(n)
        ]
        await u.add_jobs([(j, None) for j in jobs])
    return [j.id for j in jobs]


async def _hold(u, job_id: uuid.UUID) -> None:
    job = await u.get_job(job_id, for_update=True)
    assert job.hold(await u.now())
    await u.save_job(job)


async def test_a_change_committed_after_a_read_that_saw_a_newer_one_is_read_next_time(scheduler_db):
    uow = SqlUnitOfWorkFactory(scheduler_db)
    slow_id, fast_id = await _queued(uow, uuid.uuid4(), 2)
    async with uow(system=True) as u:
        _, unsettled = await u.scheduling_jobs()
    async with uow(system=True) as slow:
        await _hold(slow, slow_id)  # takes its change number first, commits last
        async with uow(system=True) as fast:
            await _hold(fast, fast_id)
        async with uow(system=True) as reader:
            seen, unsettled = await reader.job_changes(unsettled, 0)
        ids = {j.id for j in seen}
        assert fast_id in ids and slow_id not in ids  # not committed yet
    async with uow(system=True) as reader:
        seen, _ = await reader.job_changes(unsettled, 0)
    late = [j for j in seen if j.id == slow_id]
    assert late and late[0].held  # read, as it is now


async def test_the_leaders_own_writes_are_left_out_until_someone_else_changes_the_row(scheduler_db):
    uow = SqlUnitOfWorkFactory(scheduler_db)
    own_id, other_id = await _queued(uow, uuid.uuid4(), 2)
    async with uow(system=True) as u:
        _, unsettled = await u.scheduling_jobs()
    async with uow(system=True) as cycle:
        await _hold(cycle, own_id)
        xid = await cycle.transaction_id()
    async with uow(system=True) as tenant:
        await _hold(tenant, other_id)
    async with uow(system=True) as reader:
        seen, after = await reader.job_changes(unsettled, 0, [xid])
    ids = {j.id for j in seen}
    assert other_id in ids and own_id not in ids
    async with uow(system=True) as reader:  # without the exclusion the row is there: it did change
        assert own_id in {j.id for j in (await reader.job_changes(unsettled, 0))[0]}

    async with uow(system=True) as tenant:  # released by its owner: a change the leader must read
        job = await tenant.get_job(own_id, for_update=True)
        assert job.release(await tenant.now())
        await tenant.save_job(job)
    async with uow(system=True) as reader:
        seen, _ = await reader.job_changes(after, 0, [xid])
    back = [j for j in seen if j.id == own_id]
    assert back and not back[0].held


async def test_reads_go_back_no_further_than_the_change_number_they_are_given(scheduler_db):
    uow = SqlUnitOfWorkFactory(scheduler_db)
    [job_id] = await _queued(uow, uuid.uuid4(), 1)
    async with uow(system=True) as u:
        _, unsettled = await u.scheduling_jobs()
        await _hold(u, job_id)
    async with uow(system=True) as u:
        low = await u.job_watermark()
        assert job_id not in {j.id for j in (await u.job_changes(unsettled, low))[0]}
        assert job_id in {j.id for j in (await u.job_changes(unsettled, low - 1))[0]}
