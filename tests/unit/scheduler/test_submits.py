"""Group commit of submits: concurrent submits share transactions, and every caller gets its own job."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager

import pytest

from services.scheduler.domain.spec import job_spec
from services.scheduler.service_layer.submits import SubmitWriter
from tests.unit.scheduler.fakes import FakeUnitOfWorkFactory

ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()


def spec(n: int):
    return job_spec(command=f"echo {n}", gpu_count=1)


async def test_concurrent_submits_share_one_transaction_and_each_gets_its_own_job():
    uow = FakeUnitOfWorkFactory()
    writer = SubmitWriter(uow)
    jobs = await asyncio.gather(*(writer.submit(spec(n), ORG_A if n % 2 else ORG_B, None) for n in range(50)))
    assert writer.batches == 1 and uow.units == 1
    assert [j.command for j in jobs] == [f"echo {n}" for n in range(50)]
    assert len({j.id for j in jobs}) == 50
    assert {j.organization_id for j in jobs[1::2]} == {ORG_A} and {j.organization_id for j in jobs[::2]} == {
        ORG_B
    }
    assert set(uow.store.jobs) == {j.id for j in jobs}


async def test_a_batch_is_capped_and_the_rest_goes_into_the_next_transaction():
    uow = FakeUnitOfWorkFactory()
    writer = SubmitWriter(uow, max_batch=20)
    await asyncio.gather(*(writer.submit(spec(n), ORG_A, None) for n in range(50)))
    assert writer.batches == 3
    assert len(uow.store.jobs) == 50


async def test_a_failed_transaction_fails_every_submit_of_its_batch_and_the_next_batch_still_runs():
    uow = FakeUnitOfWorkFactory()
    failures = [ConnectionError("database went away")]

    @asynccontextmanager
    async def flaky(**scope):
        if failures:
            raise failures.pop()
        async with uow(**scope) as unit:
            yield unit

    writer = SubmitWriter(flaky)  # type: ignore[arg-type]
    first = await asyncio.gather(
        *(writer.submit(spec(n), ORG_A, None) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in first)
    assert not uow.store.jobs
    job = await writer.submit(spec(9), ORG_A, None)
    assert set(uow.store.jobs) == {job.id}


async def test_a_caller_that_goes_away_does_not_stop_the_batch_carrying_others():
    uow = FakeUnitOfWorkFactory()
    gate = asyncio.Event()

    @asynccontextmanager
    async def slow(**scope):
        await gate.wait()
        async with uow(**scope) as unit:
            yield unit

    writer = SubmitWriter(slow)  # type: ignore[arg-type]
    leaving = asyncio.create_task(writer.submit(spec(1), ORG_A, None))
    staying = asyncio.create_task(writer.submit(spec(2), ORG_A, None))
    await asyncio.sleep(0)
    leaving.cancel()
    gate.set()
    job = await staying
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert job.id in uow.store.jobs


async def test_a_keyed_submit_is_not_taken():
    writer = SubmitWriter(FakeUnitOfWorkFactory())
    with pytest.raises(AssertionError):
        await writer.submit(job_spec(command="x", gpu_count=1, idempotency_key="k"), ORG_A, None)
