"""JobService/SubmitJobs over in-memory fakes: all or nothing, the refused job named in the error,
keyed replays and conflicts, the abuse limits counting each job, one transaction, one audit record per
job and one wake-up."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest

from services.scheduler.domain.limits import Limits
from services.scheduler.domain.model import JobStatus
from services.scheduler.domain.spec import BATCH_KEY_SEPARATOR, IdempotencyKeyReused
from services.scheduler.service_layer import commands, handlers
from services.scheduler.service_layer.limits import SubmitLimiter
from services.scheduler.service_layer.projects import ProjectState
from services.scheduler.service_layer.submits import SubmitWriter
from services.scheduler.service_layer.wakeup import Wakeup
from shared.contracts import limits as contract
from shared.errors import ErrorCode, InvalidArgument, NotFound, ResourceExhausted

from .fakes import FakeUnitOfWork, fake_dependencies
from .test_handlers import submit
from .test_limits import Clock, FixedStore, Queued, on_plan
from .test_projects_access import Directory


class CountingWakeup(Wakeup):
    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def set(self) -> None:
        self.sets += 1
        super().set()


class Shapes:
    """Admission that refuses jobs of more than ``most`` GPUs, and counts what it was asked."""

    def __init__(self, most: int = 2) -> None:
        self.most = most
        self.asked: list[Any] = []

    async def never_fits(self, shape: Any, organization: uuid.UUID) -> str | None:
        self.asked.append(shape)
        return (
            None
            if shape.gpus_per_node <= self.most
            else f"no node of this fleet has {shape.gpus_per_node} GPUs"
        )


def deps_with(*, writer: bool = True, **changes: Any):  # type: ignore[no-untyped-def]
    deps, uow, catalog = fake_dependencies()
    deps = dataclasses.replace(
        deps, wakeup=CountingWakeup(), submits=SubmitWriter(deps.uow) if writer else None, **changes
    )
    return deps, uow, catalog


def batch(
    org: uuid.UUID, *jobs: commands.JobRequest, key: str | None = None, **kw: Any
) -> commands.SubmitJobs:
    return commands.SubmitJobs(organization_id=org, user_id=None, jobs=jobs, idempotency_key=key, **kw)


def job(n: int = 0, **kw: Any) -> commands.JobRequest:
    return commands.JobRequest(**{"command": f"echo {n}", "gpu_count": 1, **kw})


def copies(count: int, **kw: Any) -> tuple[commands.JobRequest, ...]:
    return tuple(job(n, **kw) for n in range(count))


@pytest.mark.parametrize("writer", [True, False], ids=["group-commit", "own-transaction"])
async def test_a_batch_is_written_in_one_transaction_in_order_with_its_events_and_audits(writer):
    deps, uow, _ = deps_with(writer=writer)
    org = uuid.uuid4()
    units = uow.units
    jobs = await handlers.handle(batch(org, *copies(20), key=None), deps)
    assert uow.units == units + 1  # one transaction for the 20 jobs
    assert [j.command for j in jobs] == [f"echo {n}" for n in range(20)]
    assert all(j.status is JobStatus.QUEUED and j.organization_id == org for j in jobs)
    assert set(uow.store.jobs) == {j.id for j in jobs}
    assert [e.kind for e in uow.store.outbox] == ["submitted"] * 20
    audits = [a.data for a in uow.store.audits]
    assert [(a.action, a.target_id) for a in audits] == [("job.submit", str(j.id)) for j in jobs]
    assert deps.wakeup.sets == 1  # one wake-up for the whole batch
    # The queue orders equals by (created_at, id): the batch waits in its own order.
    assert sorted(jobs, key=lambda j: (j.created_at, j.id)) == jobs


@pytest.mark.parametrize(("max_batch", "transactions"), [(500, 1), (10, 2)])
async def test_a_batch_shares_a_transaction_with_concurrent_single_submits_and_is_never_split(
    max_batch, transactions
):
    deps, uow, _ = fake_dependencies()
    writer = SubmitWriter(deps.uow, max_batch=max_batch)
    deps = dataclasses.replace(deps, submits=writer)
    org = uuid.uuid4()
    single = [handlers.submit_job(submit(org, command=f"single {n}"), deps) for n in range(3)]
    big = handlers.submit_jobs(batch(org, *copies(25)), deps)
    *alone, many = await asyncio.gather(*single, big)
    assert len(many) == 25 and len(alone) == 3 and len(uow.store.jobs) == 28
    # Room for all: one transaction. A cap of 10: the three singles, then the 25 whole (never split).
    assert writer.batches == transactions
    assert len({j.created_at for j in many}) == 1
    assert (alone[0].created_at == many[0].created_at) is (transactions == 1)


async def test_one_bad_job_refuses_the_batch_naming_it_and_writes_nothing():
    deps, uow, _ = deps_with()
    org = uuid.uuid4()
    bad = (*copies(3), job(3, gpu_count=0), job(4, gpu_memory_mb=-1))
    with pytest.raises(InvalidArgument) as err:
        await handlers.submit_jobs(batch(org, *bad), deps)
    assert err.value.field == "jobs[3].gpu_count"  # the first bad job
    assert err.value.message.startswith("jobs[3]: gpu_count must be between")
    assert uow.store.jobs == {} and uow.store.outbox == [] and uow.store.audits == []
    assert deps.wakeup.sets == 0


async def test_an_unknown_gpu_type_asks_the_catalog_once_and_names_its_job():
    deps, uow, catalog = deps_with()
    org = uuid.uuid4()
    jobs = (*copies(2, gpu_type="h100-80gb"), job(2, gpu_type="quantum-9000"), job(3, gpu_type="a100-40gb"))
    with pytest.raises(InvalidArgument) as err:
        await handlers.submit_jobs(batch(org, *jobs, authorization="Bearer k"), deps)
    assert err.value.field == "jobs[2].gpu_type" and "quantum-9000" in err.value.message
    assert catalog.calls == ["Bearer k"] and uow.store.jobs == {}


async def test_admission_is_asked_once_per_shape_and_a_job_that_never_fits_refuses_the_batch():
    shapes = Shapes(most=2)
    deps, uow, _ = deps_with(capacity=shapes)
    org = uuid.uuid4()
    await handlers.submit_jobs(batch(org, *copies(50), *copies(50, gpu_count=2)), deps)
    assert len(shapes.asked) == 2 and len(uow.store.jobs) == 100
    with pytest.raises(InvalidArgument) as err:
        await handlers.submit_jobs(batch(org, *copies(5), job(5, gpu_count=4)), deps)
    assert err.value.field == "jobs[5].gpu_count" and "could ever run" in err.value.message
    assert len(uow.store.jobs) == 100


async def test_projects_are_asked_once_each_and_an_unknown_one_names_its_job():
    p1, p2 = uuid.uuid4(), uuid.uuid4()
    directory = Directory({p1: ProjectState.ACTIVE})
    deps, uow, _ = deps_with(projects=directory)
    org = uuid.uuid4()
    jobs = await handlers.submit_jobs(batch(org, *copies(10, project_id=str(p1)), job(10)), deps)
    assert [j.project_id for j in jobs] == [p1] * 10 + [None] and len(directory.asked) == 1
    with pytest.raises(NotFound) as err:
        await handlers.submit_jobs(batch(org, job(0, project_id=str(p1)), job(1, project_id=str(p2))), deps)
    assert err.value.field == "jobs[1].project_id"
    assert len(uow.store.jobs) == 11


@pytest.mark.parametrize("count", [0, contract.MAX_BATCH_SUBMIT + 1])
async def test_an_empty_or_too_large_batch_is_refused(count):
    deps, uow, _ = deps_with()
    with pytest.raises(InvalidArgument) as err:
        await handlers.submit_jobs(batch(uuid.uuid4(), *copies(count)), deps)
    assert err.value.field == "jobs" and str(contract.MAX_BATCH_SUBMIT) in err.value.message
    assert uow.store.jobs == {}


async def test_the_largest_batch_is_taken():
    deps, uow, _ = deps_with()
    jobs = await handlers.submit_jobs(batch(uuid.uuid4(), *copies(contract.MAX_BATCH_SUBMIT)), deps)
    assert len(jobs) == len(uow.store.jobs) == contract.MAX_BATCH_SUBMIT


async def test_keys_the_batch_cannot_take_are_refused():
    deps, _, _ = deps_with()
    org = uuid.uuid4()
    with pytest.raises(InvalidArgument) as err:
        await handlers.submit_jobs(
            batch(org, job(), key="k" * (contract.MAX_BATCH_IDEMPOTENCY_KEY + 1)), deps
        )
    assert err.value.field == "idempotency_key"
    await handlers.submit_jobs(batch(org, job(), key="k" * contract.MAX_BATCH_IDEMPOTENCY_KEY), deps)
    with pytest.raises(InvalidArgument) as err:
        await handlers.submit_jobs(batch(org, job(0), job(1, idempotency_key="mine")), deps)
    assert err.value.field == "jobs[1].idempotency_key"


@pytest.mark.parametrize("writer", [True, False], ids=["with-writer", "without-writer"])
async def test_a_keyed_retry_answers_the_same_jobs_and_writes_nothing(writer):
    deps, uow, _ = deps_with(writer=writer)
    org, other = uuid.uuid4(), uuid.uuid4()
    first = await handlers.submit_jobs(batch(org, *copies(5), key="array-1"), deps)
    assert [j.idempotency_key for j in first] == [f"array-1{BATCH_KEY_SEPARATOR}{i}" for i in range(5)]
    outbox, audits, wakes = len(uow.store.outbox), len(uow.store.audits), deps.wakeup.sets
    # The same batch after normalization (the default priority spelled out) is a retry.
    again = await handlers.submit_jobs(batch(org, *copies(5, priority=50), key="array-1"), deps)
    assert [j.id for j in again] == [j.id for j in first]
    assert [h.status for h in again[0].history] == ["queued"]
    assert (len(uow.store.jobs), len(uow.store.outbox), len(uow.store.audits)) == (5, outbox, audits)
    assert deps.wakeup.sets == wakes  # nothing new to schedule
    elsewhere = await handlers.submit_jobs(batch(other, *copies(5), key="array-1"), deps)
    assert {j.id for j in elsewhere}.isdisjoint({j.id for j in first})


@pytest.mark.parametrize(
    "changed",
    [
        (job(0), job(1), job(2, command="other"), job(3), job(4)),  # one job differs
        copies(4),  # fewer jobs
        copies(6),  # more jobs
        tuple(reversed(copies(5))),  # the same jobs in another order
    ],
    ids=["one-job-differs", "fewer", "more", "reordered"],
)
async def test_the_same_key_with_another_batch_is_a_conflict(changed):
    deps, uow, _ = deps_with()
    org = uuid.uuid4()
    first = await handlers.submit_jobs(batch(org, *copies(5), key="array-1"), deps)
    with pytest.raises(IdempotencyKeyReused) as err:
        await handlers.submit_jobs(batch(org, *changed, key="array-1"), deps)
    assert err.value.code is ErrorCode.CONFLICT and err.value.field == "idempotency_key"
    assert set(uow.store.jobs) == {j.id for j in first}


async def test_no_single_submit_can_hold_a_batch_jobs_key_nor_a_batch_a_single_submits():
    deps, uow, _ = deps_with()
    org = uuid.uuid4()
    await handlers.submit_job(submit(org, command="echo 1", idempotency_key="array-1/1"), deps)
    jobs = await handlers.submit_jobs(batch(org, *copies(3), key="array-1"), deps)  # no clash with it
    assert len(uow.store.jobs) == 4 and len(jobs) == 3
    for forged in (f"array-1{BATCH_KEY_SEPARATOR}1", f"x{BATCH_KEY_SEPARATOR}"):
        with pytest.raises(InvalidArgument) as err:
            await handlers.submit_job(submit(org, command="echo 1", idempotency_key=forged), deps)
        assert err.value.field == "idempotency_key"
        with pytest.raises(InvalidArgument):
            await handlers.submit_jobs(batch(org, *copies(1), key=forged), deps)
    assert len(uow.store.jobs) == 4


async def test_losing_a_race_on_the_key_answers_the_winners_jobs(monkeypatch):
    deps, uow, _ = deps_with()
    org = uuid.uuid4()
    winner = await handlers.submit_jobs(batch(org, *copies(3), key="race"), deps)
    lookup = FakeUnitOfWork.jobs_by_idempotency_keys
    misses = {"left": 1}

    async def first_lookup_misses(self, organization_id, keys):
        # The concurrent batch is not visible to the first read; the insert then meets its keys.
        if misses["left"]:
            misses["left"] -= 1
            return {}
        return await lookup(self, organization_id, keys)

    monkeypatch.setattr(FakeUnitOfWork, "jobs_by_idempotency_keys", first_lookup_misses)
    assert [j.id for j in await handlers.submit_jobs(batch(org, *copies(3), key="race"), deps)] == [
        j.id for j in winner
    ]
    misses["left"] = 1
    with pytest.raises(IdempotencyKeyReused):
        await handlers.submit_jobs(batch(org, *copies(3, name="other"), key="race"), deps)
    assert len(uow.store.jobs) == 3


def _limited(deps, org: uuid.UUID, value: Limits, queued: Queued | None = None):  # type: ignore[no-untyped-def]
    lim = SubmitLimiter(FixedStore(on_plan(org, value)), queued or Queued(), clock=Clock())
    return dataclasses.replace(deps, limits=lim), lim


async def test_the_rate_counts_each_job_and_refuses_a_batch_whole():
    deps, uow, _ = deps_with()
    org = uuid.uuid4()
    deps, _ = _limited(deps, org, Limits(None, 1.0, 10))
    await handlers.submit_jobs(batch(org, *copies(6)), deps)  # 4 tokens left
    with pytest.raises(ResourceExhausted) as err:
        await handlers.submit_jobs(batch(org, *copies(5)), deps)
    assert (err.value.limit, err.value.quota, err.value.remaining) == ("submits", 10, 4)
    assert err.value.retry_after_s == pytest.approx(1.0)  # one more token, a second away
    assert len(uow.store.jobs) == 6  # nothing of the refused batch
    await handlers.submit_jobs(batch(org, *copies(4)), deps)  # what is left still fits
    assert len(uow.store.jobs) == 10
    with pytest.raises(ResourceExhausted) as never:
        await handlers.submit_jobs(batch(org, *copies(11)), deps)  # more than the bucket ever holds
    assert "more than this organization's burst of 10" in never.value.message
    assert never.value.retry_after_s == 10  # the bucket's window: no wait would do, never "now"


async def test_the_queued_cap_counts_each_job_and_refuses_a_batch_whole():
    deps, uow, _ = deps_with()
    org = uuid.uuid4()

    class StoreQueued(Queued):
        async def count(self, o: uuid.UUID) -> int:
            return sum(
                1 for j in uow.store.jobs.values() if j.organization_id == o and j.status is JobStatus.QUEUED
            )

    deps, _ = _limited(deps, org, Limits(max_queued_jobs=10), StoreQueued())
    await handlers.submit_jobs(batch(org, *copies(7)), deps)
    with pytest.raises(ResourceExhausted) as err:
        await handlers.submit_jobs(batch(org, *copies(4)), deps)
    assert (err.value.limit, err.value.quota, err.value.remaining) == ("queued_jobs", 10, 3)
    assert "a batch of 4 jobs does not fit (3 more may queue now)" in err.value.message
    assert len(uow.store.jobs) == 7
    # A refused batch and a keyed replay give their places back.
    with pytest.raises(InvalidArgument):
        await handlers.submit_jobs(batch(org, job(0), job(1, gpu_type="no-such-type")), deps)
    await handlers.submit_jobs(batch(org, job(7), key="k"), deps)
    await handlers.submit_jobs(batch(org, job(7), key="k"), deps)  # the same job
    await handlers.submit_jobs(batch(org, job(8), job(9)), deps)
    assert len(uow.store.jobs) == 10
