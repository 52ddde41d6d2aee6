"""Projects in billing, no I/O: the job's project travels from job events to cost records and the cost
topic; reads are limited to one project when asked, and always for a project-bound key."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from services.billing.adapters.events import cost_recorded
from services.billing.domain.costs import cost_of, job_cost
from services.billing.domain.projects import ProjectScope, project_scope, visible
from services.billing.domain.summary import CostGroup, GroupedSums
from services.billing.entrypoints.consumers import to_command, to_running_command
from services.billing.service_layer import commands
from services.billing.service_layer.handlers import handle
from shared.contracts import jobs
from shared.errors import NotFound
from shared.events import Envelope

from .fakes import fake_dependencies
from .helpers import allocation, job_event, requeued_event

PROJECT, OTHER = uuid.uuid4(), uuid.uuid4()


def in_project(envelope: Envelope, project: uuid.UUID | None) -> Envelope:
    """The same event with the job in ``project`` (a scheduler that knows projects)."""
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


@pytest.mark.parametrize("project", [PROJECT, None])
def test_an_ended_attempt_carries_its_jobs_project_to_the_cost_and_the_cost_event(
    project: uuid.UUID | None,
) -> None:
    cmd = to_command(in_project(job_event(jobs.JOB_SUCCEEDED, allocation("2.0000")), project))
    assert cmd is not None and cmd.attempt.project_id == project
    cost = cost_of(cmd.attempt)
    assert cost is not None and cost.project_id == project
    assert cost_recorded(cost).data.project_id == project


def test_a_requeue_bills_the_lost_attempt_in_the_jobs_project() -> None:
    cmd = to_command(in_project(requeued_event(allocation("1.0000")), PROJECT))
    assert cmd is not None and cmd.attempt.outcome == "requeued"
    assert cmd.attempt.project_id == PROJECT


@pytest.mark.parametrize("event_type", [jobs.JOB_SCHEDULED, jobs.JOB_STARTED])
def test_a_running_attempt_carries_its_jobs_project(event_type: str) -> None:
    cmd = to_running_command(in_project(job_event(event_type, allocation("1.0000")), PROJECT))
    assert cmd is not None and cmd.attempt.project_id == PROJECT


def test_an_event_from_before_projects_is_in_no_project() -> None:
    envelope = job_event(jobs.JOB_FAILED, allocation("1.0000"))
    old = envelope.data.model_dump(mode="json")
    del old["job"]["project_id"]  # what a scheduler from before projects published
    decoded = jobs.JobEventV1.model_validate(old)
    cmd = to_command(in_project(envelope, decoded.job.project_id))
    assert cmd is not None and cmd.attempt.project_id is None


def test_an_unbound_key_reads_what_it_asks_a_bound_key_only_its_project() -> None:
    assert project_scope(None, None) == ProjectScope(None)
    assert project_scope(None, OTHER) == ProjectScope(OTHER)
    assert project_scope(PROJECT, None) == ProjectScope(PROJECT)
    assert project_scope(PROJECT, PROJECT) == ProjectScope(PROJECT)
    assert project_scope(PROJECT, OTHER).nothing  # another project: nothing, as an unknown one
    assert visible(None, None) and visible(OTHER, None) and visible(PROJECT, PROJECT)
    assert not visible(OTHER, PROJECT) and not visible(None, PROJECT)


async def bill(deps, org: uuid.UUID, project: uuid.UUID | None) -> uuid.UUID:  # type: ignore[no-untyped-def]
    envelope = in_project(job_event(jobs.JOB_SUCCEEDED, allocation("1.0000"), org=org), project)
    cmd = to_command(envelope)
    assert cmd is not None and await handle(cmd, deps) is not None
    return envelope.data.job.job_id


async def test_a_bound_key_sees_its_projects_job_cost_and_no_other_job_at_all() -> None:
    deps, _ = fake_dependencies()
    org = uuid.uuid4()
    mine, theirs, loose = [await bill(deps, org, p) for p in (PROJECT, OTHER, None)]

    found = await handle(commands.GetJobCost(org, str(mine), bound_project=PROJECT), deps)
    assert found.cost.project_id == PROJECT
    for job in (theirs, loose, uuid.uuid4()):
        with pytest.raises(NotFound) as absent:
            await handle(commands.GetJobCost(org, str(job), bound_project=PROJECT), deps)
        assert str(absent.value) == "no cost recorded for this job"  # as for a job that does not exist
    unbound = await handle(commands.GetJobCost(org, str(theirs)), deps)
    assert unbound.cost.project_id == OTHER


async def test_the_list_is_filtered_by_project_and_a_bound_key_lists_only_its_own() -> None:
    deps, _ = fake_dependencies()
    org = uuid.uuid4()
    mine = [await bill(deps, org, PROJECT) for _ in range(3)]
    theirs = await bill(deps, org, OTHER)
    loose = await bill(deps, org, None)

    def ids(page) -> set[uuid.UUID]:  # type: ignore[no-untyped-def]
        return {c.cost.job_id for c in page.costs}

    assert ids(await handle(commands.ListJobCosts(org), deps)) == {*mine, theirs, loose}
    assert ids(await handle(commands.ListJobCosts(org, project_id=OTHER), deps)) == {theirs}
    assert ids(await handle(commands.ListJobCosts(org, bound_project=PROJECT), deps)) == set(mine)
    first = await handle(commands.ListJobCosts(org, limit=2, bound_project=PROJECT), deps)
    rest = await handle(
        commands.ListJobCosts(org, limit=2, cursor=first.next_cursor, bound_project=PROJECT), deps
    )
    assert ids(first) | ids(rest) == set(mine) and not ids(first) & ids(rest) and rest.next_cursor is None
    # A bound key naming another project finds nothing (the project exists and has a cost).
    none = await handle(commands.ListJobCosts(org, project_id=OTHER, bound_project=PROJECT), deps)
    assert (none.costs, none.next_cursor) == ([], None)


async def test_the_summary_is_limited_to_the_asked_or_bound_project() -> None:
    deps, store = fake_dependencies()
    org = uuid.uuid4()
    await handle(commands.SummarizeCosts(org, "project"), deps)
    await handle(commands.SummarizeCosts(org, "day", project_id=OTHER), deps)
    await handle(commands.SummarizeCosts(org, "gpu_type", bound_project=PROJECT), deps)
    assert store.summary_projects == [None, OTHER, PROJECT]
    store.sums = GroupedSums(
        [CostGroup(str(OTHER), Decimal(60), Decimal(1), Decimal(0), 1)],
        CostGroup("", Decimal(60), Decimal(1), Decimal(0), 1),
    )
    nothing = await handle(
        commands.SummarizeCosts(org, "project", project_id=OTHER, bound_project=PROJECT), deps
    )
    assert (nothing.groups, nothing.total.cost, nothing.total.jobs) == ([], Decimal(0), 0)
    assert len(store.summary_calls) == 3  # answered without asking the database


def test_a_jobs_cost_over_attempts_is_in_its_project() -> None:
    attempts = []
    for n in (1, 2):
        env = in_project(
            job_event(jobs.JOB_SUCCEEDED, allocation("1.0000"), held=timedelta(minutes=n)), PROJECT
        )
        cmd = to_command(env)
        assert cmd is not None
        cost = cost_of(cmd.attempt)
        assert cost is not None
        attempts.append(cost)
    assert job_cost(attempts).project_id == PROJECT
