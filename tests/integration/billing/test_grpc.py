"""BillingService through its in-process gRPC server: answers, paging order and errors, tenants apart."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from gpufleet.v1 import billing_pb2

from shared.contracts import jobs
from shared.wire import ts

from .conftest import Billing, gpu, job_event

pytestmark = pytest.mark.integration


async def expect(code: grpc.StatusCode, call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value


async def test_get_job_cost_shows_every_line_to_its_organization_only(billing: Billing) -> None:
    org = uuid.uuid4()
    cheap, dear = gpu("0.9000", "t4"), gpu("3.0000", "h100")
    env = job_event(org, [cheap, dear], held=timedelta(seconds=90))
    assert await billing.consume(env) is not None
    job = env.data.job

    cost = await billing.stub.GetJobCost(
        billing_pb2.GetJobCostRequest(job_id=str(job.job_id)), metadata=billing.identity.key(org)
    )
    assert (cost.job_id, cost.organization_id, cost.currency) == (str(job.job_id), str(org), "USD")
    assert (cost.total_cost, cost.gpu_count, cost.held_seconds) == ("0.09750000", 2, "90.000000")
    lines = {line.gpu_id: line for line in cost.lines}
    assert (lines[str(cheap.gpu_id)].cost, lines[str(dear.gpu_id)].cost) == ("0.02250000", "0.07500000")
    assert lines[str(dear.gpu_id)].cost_per_hour == "3.0000" and lines[str(dear.gpu_id)].gpu_type == "h100"
    assert lines[str(cheap.gpu_id)].start_time == ts(job.scheduled_at)
    assert lines[str(cheap.gpu_id)].end_time == ts(job.finished_at)
    assert cost.recorded_at.endswith("Z")

    stranger = billing.identity.key(uuid.uuid4())
    for job_id in (str(job.job_id), "not-a-uuid", str(uuid.uuid4()), ""):
        await expect(
            grpc.StatusCode.NOT_FOUND,
            billing.stub.GetJobCost(billing_pb2.GetJobCostRequest(job_id=job_id), metadata=stranger),
        )


async def test_a_job_that_never_held_a_gpu_has_no_cost(billing: Billing) -> None:
    org = uuid.uuid4()
    env = job_event(org, [], event_type=jobs.JOB_CANCELLED)
    assert await billing.consume(env) is None
    await expect(
        grpc.StatusCode.NOT_FOUND,
        billing.stub.GetJobCost(
            billing_pb2.GetJobCostRequest(job_id=str(env.data.job.job_id)), metadata=billing.identity.key(org)
        ),
    )


async def test_list_pages_newest_first_with_the_page_total(billing: Billing) -> None:
    org = uuid.uuid4()
    key = billing.identity.key(org)
    # Recorded one after another: 1 USD, 2 USD, 3 USD (1 USD/h for 1, 2 and 3 hours).
    envs = [job_event(org, [gpu("1.0000")], held=timedelta(hours=h)) for h in (1, 2, 3)]
    for env in envs:
        await billing.consume(env)
    newest_first = [str(e.data.job.job_id) for e in reversed(envs)]

    first = await billing.stub.ListJobCosts(billing_pb2.ListJobCostsRequest(limit=2), metadata=key)
    assert [c.job_id for c in first.costs] == newest_first[:2]
    assert first.total_cost == "5.00000000" and first.next_cursor
    second = await billing.stub.ListJobCosts(
        billing_pb2.ListJobCostsRequest(limit=2, cursor=first.next_cursor), metadata=key
    )
    assert [c.job_id for c in second.costs] == newest_first[2:]
    assert second.total_cost == "1.00000000" and second.next_cursor == ""

    everything = await billing.stub.ListJobCosts(billing_pb2.ListJobCostsRequest(), metadata=key)
    assert [c.job_id for c in everything.costs] == newest_first and everything.next_cursor == ""
    assert Decimal(everything.total_cost) == Decimal(6)

    other = await billing.stub.ListJobCosts(
        billing_pb2.ListJobCostsRequest(), metadata=billing.identity.key(uuid.uuid4())
    )
    assert list(other.costs) == [] and other.total_cost == "0"


async def test_bad_arguments_and_missing_credentials(billing: Billing) -> None:
    key = billing.identity.key(uuid.uuid4())
    for request in (
        billing_pb2.ListJobCostsRequest(limit=201),
        billing_pb2.ListJobCostsRequest(limit=-1),
        billing_pb2.ListJobCostsRequest(cursor="not-one-of-ours"),
    ):
        await expect(grpc.StatusCode.INVALID_ARGUMENT, billing.stub.ListJobCosts(request, metadata=key))
    await expect(
        grpc.StatusCode.UNAUTHENTICATED,
        billing.stub.GetJobCost(billing_pb2.GetJobCostRequest(job_id=str(uuid.uuid4()))),
    )
    await expect(
        grpc.StatusCode.UNAUTHENTICATED,
        billing.stub.ListJobCosts(
            billing_pb2.ListJobCostsRequest(), metadata=(("authorization", "Bearer gpf_unknown"),)
        ),
    )
