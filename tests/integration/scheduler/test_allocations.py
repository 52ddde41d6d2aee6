"""JobService/ListAllocations against real PostgreSQL: who holds a GPU, as each organization may learn it.

The owner of a job sees its job id on the GPUs it holds; another organization sees a shared-pool GPU
held without any job, never a GPU of a node dedicated to someone else, and never another's job id.
"""

from __future__ import annotations

import uuid

import grpc
import pytest
from gpufleet.v1 import common_pb2, scheduler_pb2, scheduler_pb2_grpc

from shared import api_keys

from .conftest import Harness
from .rounds import schedule_round

pytestmark = pytest.mark.integration


@pytest.fixture
def allocations(harness: Harness) -> scheduler_pb2_grpc.JobServiceStub:
    """The harness's JobService, registered as bootstrap registers it (with ListAllocations)."""
    return harness.jobs


async def held(stub, key, gpu_ids=()) -> dict[str, tuple[str, bool]]:
    reply = await stub.ListAllocations(
        scheduler_pb2.ListAllocationsRequest(gpu_ids=list(gpu_ids)), metadata=key
    )
    return {a.gpu_id: (a.job_id, a.mine) for a in reply.allocations}


async def place(harness: Harness, key, gpu_type: str) -> scheduler_pb2.Job:
    submitted = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="sleep 1", gpu_count=1, gpu_type=gpu_type), metadata=key
    )
    for _ in range(5):  # leftovers of other tests may compete for the shared pool; fair share favours us
        await schedule_round(harness.deps)
        job = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=submitted.id), metadata=key)
        if job.status == "scheduled":
            return job
    raise AssertionError(f"job {submitted.id} was not placed")


async def finish(harness: Harness, job: scheduler_pb2.Job) -> None:
    started = scheduler_pb2.ReportJobStartedRequest(node_id=job.node_id, job_id=job.id)
    await harness.agents.ReportJobStarted(started, metadata=harness.agent)
    done = scheduler_pb2.ReportJobFinishedRequest(node_id=job.node_id, job_id=job.id, has_exit_code=True)
    await harness.agents.ReportJobFinished(done, metadata=harness.agent)


async def test_the_owner_sees_its_job_and_another_org_sees_a_held_shared_gpu_without_it(
    harness: Harness, allocations
) -> None:
    _, key_a = harness.tenant()
    _, key_b = harness.tenant()
    shared = await harness.add_gpus(None, uuid.uuid4(), 4, gpu_type="l40s", memory=49152)
    ids = [str(g.gpu_id) for g in shared]
    job = await place(harness, key_a, "l40s")
    [gpu_id] = job.gpu_ids

    assert (await held(allocations, key_a, ids)).get(gpu_id) == (job.id, True)
    seen_by_b = await held(allocations, key_b, ids)
    assert seen_by_b.get(gpu_id) == ("", False)
    everything_b_sees = await held(allocations, key_b)
    assert everything_b_sees[gpu_id] == ("", False)
    assert job.id not in {j for j, _ in everything_b_sees.values()}
    assert all(not mine for _, mine in everything_b_sees.values())

    await finish(harness, job)
    assert gpu_id not in await held(allocations, key_a, ids)
    assert gpu_id not in await held(allocations, key_b, ids)


async def test_a_gpu_dedicated_to_another_org_is_never_listed(harness: Harness, allocations) -> None:
    org_a, key_a = harness.tenant()
    _, key_b = harness.tenant()
    dedicated = await harness.add_gpus(org_a, uuid.uuid4(), 2)
    job = await place(harness, key_a, "h100-80gb")
    [gpu_id] = job.gpu_ids
    assert gpu_id in {str(g.gpu_id) for g in dedicated}

    assert (await held(allocations, key_a, [gpu_id])) == {gpu_id: (job.id, True)}
    assert await held(allocations, key_b, [gpu_id]) == {}  # asked by id: still nothing
    assert gpu_id not in await held(allocations, key_b)
    await finish(harness, job)
    assert await held(allocations, key_a, [gpu_id]) == {}


async def test_bad_requests_and_scopes(harness: Harness, allocations) -> None:
    _, key = harness.tenant()
    for request in (
        scheduler_pb2.ListAllocationsRequest(gpu_ids=["nope"]),
        scheduler_pb2.ListAllocationsRequest(gpu_ids=[str(uuid.uuid4())] * 10_001),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await allocations.ListAllocations(request, metadata=key)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await held(allocations, key, [str(uuid.uuid4())]) == {}  # unknown GPUs: nobody holds them

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await allocations.ListAllocations(scheduler_pb2.ListAllocationsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    secret = api_keys.new_key()  # a key restricted to jobs:read lacks fleet:read
    harness.identity.keys[secret] = common_pb2.Principal(
        organization_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
        role="member",
        api_key_id=str(uuid.uuid4()),
        scopes=["jobs:read"],
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await allocations.ListAllocations(
            scheduler_pb2.ListAllocationsRequest(), metadata=(("authorization", f"Bearer {secret}"),)
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "fleet:read" in err.value.details()
