"""Projects in billing against real PostgreSQL, through the gRPC servicer: every cost line and running
attempt keeps its job's project, the cost event announces it, ListJobCosts and SummarizeCosts filter by
it, and a project-bound key (Principal.project_id) sees only its project's costs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from gpufleet.v1 import billing_pb2, common_pb2

from services.billing.entrypoints.consumers import job_event_handler
from services.billing.service_layer.handlers import Dependencies
from shared import api_keys
from shared.contracts import costs, jobs
from shared.events import Envelope
from shared.wire import ts

from .conftest import Billing, gpu, job_event, requeued_event

pytestmark = pytest.mark.integration

# The servicer values running attempts at the real clock: the jobs are placed relative to it.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
FROM = NOW - timedelta(days=1)
Metadata = tuple[tuple[str, str], ...]


def in_project(envelope: Envelope, project: uuid.UUID | None) -> Envelope:
    event: jobs.JobEventV1 = envelope.data
    data = event.model_copy(update={"job": event.job.model_copy(update={"project_id": project})})
    return Envelope(
        id=envelope.id,
        type=envelope.type,
        source=envelope.source,
        data=data,
        subject=envelope.subject,
        organization_id=envelope.organization_id,
    )


def key(billing: Billing, org: uuid.UUID, project: uuid.UUID | None = None, role: str = "member") -> Metadata:
    """A key of ``org``, bound to ``project`` when given (what identity answers for such a key)."""
    secret = api_keys.new_key()
    billing.identity.keys[secret] = common_pb2.Principal(
        organization_id=str(org),
        user_id=str(uuid.uuid4()),
        role=role,
        api_key_id=str(uuid.uuid4()),
        project_id=str(project) if project else "",
    )
    return (("authorization", f"Bearer {secret}"),)


async def expect(code: grpc.StatusCode, call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value


async def feed(billing: Billing, *envelopes: Envelope) -> None:
    sink = job_event_handler(Dependencies(uow=billing.app.deps.uow, clock=lambda: NOW))
    for envelope in envelopes:
        await sink([envelope])


async def three_projects(billing: Billing) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, dict[str, uuid.UUID]]:
    """One organization: job A in project P (1 h of a 2.00 GPU), job B in project Q (an attempt lost
    and credited, then 30 min of a 1.00 GPU), job C in no project (1 h of 1.00), job D in P running for
    the last hour or so (1.00/h), all within the last day."""
    org, p, q = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    b = uuid.uuid4()
    a_env = in_project(
        job_event(org, [gpu("2.0000")], scheduled=NOW - timedelta(hours=5), held=timedelta(hours=1)),
        p,
    )
    lost = requeued_event(
        org, [gpu("1.0000")], held=timedelta(hours=1), scheduled=NOW - timedelta(hours=10), job_id=b
    )
    b_env = job_event(
        org,
        [gpu("1.0000")],
        scheduled=NOW - timedelta(hours=8),
        held=timedelta(minutes=30),
        job_id=b,
        attempt=2,
    )
    c_env = job_event(org, [gpu("1.0000")], scheduled=NOW - timedelta(hours=7), held=timedelta(hours=1))
    d_env = in_project(
        job_event(org, [gpu("1.0000")], event_type=jobs.JOB_STARTED, scheduled=NOW - timedelta(hours=1)),
        p,
    )
    await feed(billing, a_env, in_project(lost, q), in_project(b_env, q), c_env, d_env)
    jobs_ = {n: e.data.job.job_id for n, e in zip("ABCD", (a_env, b_env, c_env, d_env), strict=True)}
    return org, p, q, jobs_


async def test_every_line_and_running_attempt_keeps_its_jobs_project_and_the_event_says_it(
    billing: Billing,
) -> None:
    org, p, q, job = await three_projects(billing)
    lines = await billing.rows(
        "SELECT job_id, attempt, project_id FROM cost_tracking WHERE organization_id = :o", o=org
    )
    assert {(r.job_id, r.attempt, r.project_id) for r in lines} == {
        (job["A"], 1, p),
        (job["B"], 1, q),
        (job["B"], 2, q),
        (job["C"], 1, None),
    }
    running = await billing.rows(
        "SELECT job_id, project_id FROM running_attempts WHERE organization_id = :o AND ended_at IS NULL",
        o=org,
    )
    assert [(r.job_id, r.project_id) for r in running] == [(job["D"], p)]
    outbox = await billing.rows(
        "SELECT key, payload FROM outbox WHERE event_type = :t AND key IN (:a, :b, :c)",
        t=costs.COST_RECORDED,
        a=str(job["A"]),
        b=str(job["B"]),
        c=str(job["C"]),
    )
    announced = {
        (r.key, costs.CostRecordedV1.model_validate_json(bytes(r.payload)).project_id) for r in outbox
    }
    assert announced == {(str(job["A"]), p), (str(job["B"]), q), (str(job["C"]), None)}


async def test_costs_are_listed_by_project_and_a_bound_key_sees_only_its_own(billing: Billing) -> None:
    org, p, q, job = await three_projects(billing)
    anyone = key(billing, org)

    async def listed(metadata: Metadata, project: str = "", limit: int = 0) -> list[str]:
        found: list[str] = []
        cursor = ""
        while True:
            page = await billing.stub.ListJobCosts(
                billing_pb2.ListJobCostsRequest(project_id=project, limit=limit, cursor=cursor),
                metadata=metadata,
            )
            found += [c.job_id for c in page.costs]
            if not (cursor := page.next_cursor):
                return found

    assert set(await listed(anyone)) == {str(job[n]) for n in "ABC"}
    assert await listed(anyone, str(q)) == [str(job["B"])]
    assert await listed(anyone, str(uuid.uuid4())) == []  # an unknown project: nothing, no error
    bound = key(billing, org, p)
    assert await listed(bound) == [str(job["A"])]
    assert await listed(bound, str(p), limit=1) == [str(job["A"])]
    # Another project (one with costs) finds nothing for it, exactly as an unknown one.
    assert await listed(bound, str(q)) == [] == await listed(bound, str(uuid.uuid4()))
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        billing.stub.ListJobCosts(billing_pb2.ListJobCostsRequest(project_id="not-a-uuid"), metadata=anyone),
    )
    # Another organization's key, bound or not, finds nothing of this one's projects.
    stranger = uuid.uuid4()
    assert await listed(key(billing, stranger), str(p)) == []
    assert await listed(key(billing, stranger, p)) == []


async def test_a_bound_key_reads_its_projects_job_cost_and_another_job_as_absent(billing: Billing) -> None:
    org, p, _, job = await three_projects(billing)
    cost = await billing.stub.GetJobCost(
        billing_pb2.GetJobCostRequest(job_id=str(job["A"])), metadata=key(billing, org, p)
    )
    assert (cost.job_id, cost.project_id, cost.total_cost) == (str(job["A"]), str(p), "2.00000000")
    loose = await billing.stub.GetJobCost(
        billing_pb2.GetJobCostRequest(job_id=str(job["C"])), metadata=key(billing, org)
    )
    assert loose.project_id == ""
    bound = key(billing, org, p)
    answers = []
    for other in (job["B"], job["C"], uuid.uuid4()):
        err = await expect(
            grpc.StatusCode.NOT_FOUND,
            billing.stub.GetJobCost(billing_pb2.GetJobCostRequest(job_id=str(other)), metadata=bound),
        )
        answers.append(err.details())
    assert len(set(answers)) == 1  # another project's job answers as a job that does not exist


async def test_the_summary_groups_by_real_projects_and_a_bound_key_sums_only_its_own(
    billing: Billing,
) -> None:
    org, p, q, _ = await three_projects(billing)
    window = {"from_time": ts(FROM)}  # to now
    by_project = await billing.stub.SummarizeCosts(
        billing_pb2.SummarizeCostsRequest(group_by="project", **window), metadata=key(billing, org)
    )
    got = {g.key: (g.cost, g.jobs) for g in by_project.groups}
    assert got == {"": ("1.00000000", 1), str(p): ("2.00000000", 2), str(q): ("0.50000000", 1)}
    # Running job D of P so far (an hour or more of 1.00/h), valued at the request's instant.
    running = {g.key: Decimal(g.running_cost) for g in by_project.groups}
    assert running[""] == running[str(q)] == 0 and running[str(p)] >= 1
    assert [g.key for g in by_project.groups] == sorted(got)

    bound = await billing.stub.SummarizeCosts(
        billing_pb2.SummarizeCostsRequest(group_by="gpu_type", include_running=False, **window),
        metadata=key(billing, org, p),
    )
    assert [(g.key, g.cost, g.jobs) for g in bound.groups] == [("a100", "2.00000000", 1)]
    filtered = await billing.stub.SummarizeCosts(
        billing_pb2.SummarizeCostsRequest(group_by="project", project_id=str(q), **window),
        metadata=key(billing, org),
    )
    assert [(g.key, g.cost) for g in filtered.groups] == [(str(q), "0.50000000")]
    assert filtered.total.cost == "0.50000000"
    for other in (q, uuid.uuid4()):
        nothing = await billing.stub.SummarizeCosts(
            billing_pb2.SummarizeCostsRequest(group_by="project", project_id=str(other), **window),
            metadata=key(billing, org, p),
        )
        assert (list(nothing.groups), nothing.total.cost, nothing.total.jobs) == ([], "0.00000000", 0)
