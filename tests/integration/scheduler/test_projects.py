"""Projects in the scheduler on the real schema, over gRPC (docs/projects.md): who may submit into and
change a project's jobs, what a project-bound key sees, identity's word on a project (a fake
ProjectService.ResolveProject served over gRPC), images on jobs and events, per-project weights and
caps set through PolicyService and honoured by a scheduling step."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from gpufleet.v1 import (
    common_pb2,
    identity_pb2,
    identity_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)
from sqlalchemy import text

from services.scheduler.adapters.allocations_read import SqlAllocationReader
from services.scheduler.adapters.identity_projects import IdentityProjectDirectory
from services.scheduler.adapters.policy_repository import SqlPolicyRepository
from services.scheduler.domain.engine import Policy
from services.scheduler.entrypoints.allocations import JobServicerWithAllocations
from services.scheduler.entrypoints.policy_api import PolicyServicer
from services.scheduler.service_layer.policy import PolicyDependencies, PolicyStore
from services.scheduler.service_layer.scheduling import Scheduler
from shared import api_keys
from shared.contracts import jobs as contract
from shared.contracts.fleet import CONTAINER_RUNTIME_LABEL
from shared.grpc import Authenticator, channel

from .conftest import Harness, _start
from .rounds import schedule_round


class FakeProjects(identity_pb2_grpc.ProjectServiceServicer):
    """identity's ResolveProject: the projects of each organization, as a key of it may see them."""

    def __init__(self, identity) -> None:  # type: ignore[no-untyped-def]
        self.identity = identity
        self.projects: dict[uuid.UUID, tuple[uuid.UUID, bool]] = {}  # id -> (organization, archived)
        self.calls = 0

    async def ResolveProject(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        principal = self.identity.keys.get(request.api_key)
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        found = self.projects.get(uuid.UUID(request.project_id))
        bound = principal.project_id
        if (
            found is None
            or str(found[0]) != principal.organization_id
            or (bound and bound != request.project_id)
        ):
            await context.abort(grpc.StatusCode.NOT_FOUND, "project not found")
        return identity_pb2.Project(
            id=request.project_id,
            organization_id=str(found[0]),
            archived_at="2026-01-01T00:00:00Z" if found[1] else "",
        )


class Org:
    def __init__(self, t: Tenancy) -> None:
        self.t = t
        self.id = uuid.uuid4()
        self.p1 = t.project(self.id)
        self.p2 = t.project(self.id)

    def key(self, role: str = "member", roles: dict | None = None, bound: uuid.UUID | None = None) -> tuple:
        return self.t.key(self.id, role, roles or {}, bound)


class Tenancy:
    def __init__(self, h: Harness, projects: FakeProjects, jobs, policy) -> None:  # type: ignore[no-untyped-def]
        self.h, self.projects, self.jobs, self.policy = h, projects, jobs, policy

    def project(self, org: uuid.UUID, archived: bool = False) -> uuid.UUID:
        pid = uuid.uuid4()
        self.projects.projects[pid] = (org, archived)
        return pid

    def key(self, org: uuid.UUID, role: str, roles: dict, bound: uuid.UUID | None) -> tuple:
        secret = api_keys.new_key()
        self.h.identity.keys[secret] = common_pb2.Principal(
            organization_id=str(org),
            user_id=str(uuid.uuid4()),
            role=role,
            api_key_id=str(uuid.uuid4()),
            project_id=str(bound) if bound else "",
            project_roles=[common_pb2.ProjectRole(project_id=str(p), role=r) for p, r in roles.items()],
        )
        return (("authorization", f"Bearer {secret}"),)

    async def submit(self, key: tuple, project: uuid.UUID | None = None, **kw) -> scheduler_pb2.Job:  # type: ignore[no-untyped-def]
        request = scheduler_pb2.SubmitJobRequest(
            command="python train.py", gpu_count=1, project_id=str(project) if project else "", **kw
        )
        return await self.jobs.SubmitJob(request, metadata=key)


@pytest.fixture
async def tenancy(harness: Harness) -> AsyncIterator[Tenancy]:
    projects = FakeProjects(harness.identity)

    def fakes(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_ProjectServiceServicer_to_server(projects, server)

    fake_server, fake_target = await _start(fakes)
    directory = IdentityProjectDirectory(fake_target, ttl=0)
    deps = dataclasses.replace(harness.deps, projects=directory)
    auth = Authenticator(harness.fleet_target, ttl=0)
    store = PolicyStore(SqlPolicyRepository(harness.db), Policy(), refresh_s=0)

    def scheduler(server: grpc.aio.Server) -> None:
        servicer = JobServicerWithAllocations(
            deps, auth, SqlAllocationReader(harness.db)
        )  # as bootstrap does
        scheduler_pb2_grpc.add_JobServiceServicer_to_server(servicer, server)
        policy_pb2_grpc.add_PolicyServiceServicer_to_server(
            PolicyServicer(PolicyDependencies(store.repo, store, deps.wakeup), auth), server
        )

    server, target = await _start(scheduler)
    client = channel(target)
    t = Tenancy(
        harness,
        projects,
        scheduler_pb2_grpc.JobServiceStub(client),
        policy_pb2_grpc.PolicyServiceStub(client),
    )
    t.store = store  # type: ignore[attr-defined]
    t.deps = deps  # type: ignore[attr-defined]
    yield t
    await client.close()
    await server.stop(None)
    await auth.close()
    await directory.close()
    await fake_server.stop(None)


async def code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_who_may_submit_into_a_project(tenancy: Tenancy):
    org, t = Org(tenancy), tenancy
    contributor = org.key(roles={org.p1: "contributor"})
    job = await t.submit(contributor, org.p1, image="nvcr.io/nvidia/pytorch:24.01-py3")
    assert (job.project_id, job.image) == (str(org.p1), "nvcr.io/nvidia/pytorch:24.01-py3")
    row = await t.jobs.GetJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=contributor)
    assert (row.project_id, row.image) == (job.project_id, job.image)
    # the submitted event carries both
    async with t.h.db.transaction(system=True) as s:
        payload = (
            await s.execute(
                text("SELECT payload FROM outbox WHERE key = :k ORDER BY id LIMIT 1"), {"k": job.id}
            )
        ).scalar_one()
    snap = contract.JobEventV1.model_validate_json(payload).job
    assert (snap.project_id, snap.image) == (org.p1, "nvcr.io/nvidia/pytorch:24.01-py3")

    owner = org.key("owner")  # owners and admins hold every project (identity sends no roles)
    assert (await t.submit(owner, org.p2)).project_id == str(org.p2)
    assert (await t.submit(org.key("admin"), org.p1)).project_id == str(org.p1)

    denied = grpc.StatusCode.PERMISSION_DENIED
    assert await code(t.submit(org.key(roles={org.p1: "viewer"}), org.p1)) == denied
    assert await code(t.submit(org.key(roles={org.p2: "owner"}), org.p1)) == denied  # no role in p1
    assert await code(t.submit(org.key("viewer"), org.p1)) == denied

    # unknown, malformed, or another organization's project: not found, whoever asks
    other = Org(tenancy)
    for project in (uuid.uuid4(), other.p1):
        assert await code(t.submit(owner, project)) == grpc.StatusCode.NOT_FOUND
    bad = scheduler_pb2.SubmitJobRequest(command="x", gpu_count=1, project_id="not-a-uuid")
    assert await code(t.jobs.SubmitJob(bad, metadata=owner)) == grpc.StatusCode.NOT_FOUND

    archived = t.project(org.id, archived=True)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await t.submit(owner, archived)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ("gpufleet-error-field", "project_id") in tuple(err.value.trailing_metadata() or ())

    assert await code(t.submit(owner, image="not an image")) == grpc.StatusCode.INVALID_ARGUMENT
    async with t.h.db.transaction(org_id=org.id) as s:
        rows = (await s.execute(text("SELECT project_id FROM jobs"))).scalars().all()
    assert sorted(map(str, rows)) == sorted([str(org.p1), str(org.p2), str(org.p1)])


async def test_project_roles_decide_who_changes_a_projects_jobs_and_everyone_reads_them(tenancy: Tenancy):
    org, t = Org(tenancy), tenancy
    owner = org.key("owner")
    job = await t.submit(owner, org.p1, hold=True)
    loose = await t.submit(owner, hold=True)  # no project: as before projects
    outsider = org.key(roles={org.p2: "contributor"})
    viewer = org.key(roles={org.p1: "viewer"})
    for key in (outsider, viewer):
        assert (await t.jobs.GetJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=key)).id == job.id
        listed = await t.jobs.ListJobs(scheduler_pb2.ListJobsRequest(project_id=str(org.p1)), metadata=key)
        assert [j.id for j in listed.jobs] == [job.id]
        for call in (
            t.jobs.ReleaseJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=key),
            t.jobs.HoldJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=key),
            t.jobs.UpdateJobPriority(
                scheduler_pb2.UpdateJobPriorityRequest(id=job.id, priority=9), metadata=key
            ),
            t.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=job.id), metadata=key),
        ):
            assert await code(call) == grpc.StatusCode.PERMISSION_DENIED
        # a job without a project stays any writer's
        await t.jobs.UpdateJobPriority(
            scheduler_pb2.UpdateJobPriorityRequest(id=loose.id, priority=7), metadata=key
        )
    contributor = org.key(roles={org.p1: "contributor"})
    changed = await t.jobs.UpdateJobPriority(
        scheduler_pb2.UpdateJobPriorityRequest(id=job.id, priority=80), metadata=contributor
    )
    assert changed.priority == 80
    assert (
        await t.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=job.id), metadata=contributor)
    ).status == ("cancelled")


async def test_a_project_bound_key_sees_and_changes_only_its_project(tenancy: Tenancy):
    org, t = Org(tenancy), tenancy
    owner = org.key("owner")
    other_job = await t.submit(owner, org.p2, hold=True)
    loose = await t.submit(owner, hold=True)
    bound = org.key(roles={org.p1: "contributor"}, bound=org.p1)
    mine = await t.submit(bound)  # lands in its project
    assert mine.project_id == str(org.p1)
    assert (await t.submit(bound, org.p1)).project_id == str(org.p1)
    assert await code(t.submit(bound, org.p2)) == grpc.StatusCode.PERMISSION_DENIED

    for hidden in (other_job.id, loose.id):
        for call in (
            t.jobs.GetJob(scheduler_pb2.GetJobRequest(id=hidden), metadata=bound),
            t.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=hidden), metadata=bound),
            t.jobs.ReleaseJob(scheduler_pb2.GetJobRequest(id=hidden), metadata=bound),
        ):
            assert await code(call) == grpc.StatusCode.NOT_FOUND
    listed = await t.jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=bound)
    assert {j.project_id for j in listed.jobs} == {str(org.p1)} and len(listed.jobs) == 2
    elsewhere = await t.jobs.ListJobs(scheduler_pb2.ListJobsRequest(project_id=str(org.p2)), metadata=bound)
    assert list(elsewhere.jobs) == []
    # the whole organization's keys still see everything
    everything = await t.jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=owner)
    assert {j.id for j in everything.jobs} == {other_job.id, loose.id, mine.id, *{j.id for j in listed.jobs}}

    # its writes still need the user's project role at the moment of the call
    demoted = org.key(roles={org.p1: "viewer"}, bound=org.p1)
    assert await code(t.submit(demoted)) == grpc.StatusCode.PERMISSION_DENIED
    assert (await t.jobs.GetJob(scheduler_pb2.GetJobRequest(id=mine.id), metadata=demoted)).id == mine.id
    cancel = t.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=mine.id), metadata=demoted)
    assert await code(cancel) == grpc.StatusCode.PERMISSION_DENIED


async def test_a_project_bound_key_sees_only_its_projects_jobs_on_the_gpus(tenancy: Tenancy):
    org, t = Org(tenancy), tenancy
    gpus = await t.h.add_gpus(org.id, uuid.uuid4(), 2)  # dedicated to org: no other test's jobs land here
    owner = org.key("owner")
    theirs = await t.submit(owner, org.p2)
    ours = await t.submit(owner, org.p1)
    for _ in range(5):
        await schedule_round(t.deps)
    placed = {
        j.id: j.gpu_ids[0]
        for j in (await t.jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=owner)).jobs
        if j.gpu_ids
    }
    assert set(placed) == {theirs.id, ours.id}

    async def held(key: tuple) -> dict[str, tuple[str, bool]]:
        request = scheduler_pb2.ListAllocationsRequest(gpu_ids=[str(g.gpu_id) for g in gpus])
        reply = await t.jobs.ListAllocations(request, metadata=key)
        return {a.gpu_id: (a.job_id, a.mine) for a in reply.allocations}

    # the organization's keys see both jobs; a key bound to p1 sees p2's GPU held, by nobody it may know
    assert await held(owner) == {placed[theirs.id]: (theirs.id, True), placed[ours.id]: (ours.id, True)}
    bound = org.key(roles={org.p1: "contributor"}, bound=org.p1)
    assert await held(bound) == {placed[theirs.id]: ("", False), placed[ours.id]: (ours.id, True)}


async def test_project_policies_are_set_by_org_admins_audited_and_cap_a_scheduling_step(tenancy: Tenancy):
    org, t = Org(tenancy), tenancy
    owner = org.key("owner")
    request = policy_pb2.SetProjectPoliciesRequest(
        policies=[
            policy_pb2.ProjectPolicy(project_id=str(org.p1), max_gpus=1),
            policy_pb2.ProjectPolicy(project_id=str(org.p2), weight=3.0),
        ]
    )
    done = await t.policy.SetProjectPolicies(request, metadata=owner)
    assert [(p.project_id, p.HasField("weight"), p.HasField("max_gpus")) for p in done.policies] == sorted(
        [(str(org.p1), False, True), (str(org.p2), True, False)]
    )
    got = await t.policy.GetProjectPolicies(policy_pb2.GetProjectPoliciesRequest(), metadata=owner)
    assert got.policies == done.policies
    for refused in (org.key("member", {org.p1: "owner"}), org.key("viewer")):
        assert (
            await code(t.policy.SetProjectPolicies(request, metadata=refused))
            == grpc.StatusCode.PERMISSION_DENIED
        )
    bad = policy_pb2.SetProjectPoliciesRequest(policies=[policy_pb2.ProjectPolicy(project_id="x")])
    assert await code(t.policy.SetProjectPolicies(bad, metadata=owner)) == grpc.StatusCode.INVALID_ARGUMENT
    audit = await t.policy.ListOrganizationAudit(policy_pb2.ListAuditRequest(), metadata=owner)
    assert audit.entries[0].method == "PolicyService/SetProjectPolicies"
    assert {e["project_id"] for e in json.loads(audit.entries[0].after_json)} == {str(org.p1), str(org.p2)}
    # another organization sees none of it
    other = Org(tenancy)
    theirs = await t.policy.GetProjectPolicies(
        policy_pb2.GetProjectPoliciesRequest(), metadata=other.key("owner")
    )
    assert list(theirs.policies) == []

    # a step under the stored policy: p1 holds at most 1 GPU, its second job waits with project_cap
    await t.h.add_gpus(org.id, uuid.uuid4(), 4)
    first = await t.submit(owner, org.p1)
    second = await t.submit(owner, org.p1)
    free = await t.submit(owner, org.p2)
    scheduler = Scheduler(t.deps, "integration-leader", policies=t.store)  # type: ignore[attr-defined]
    report = await scheduler.step()
    assert report is not None
    assert {j.id for j in report.placed} & {uuid.UUID(first.id), uuid.UUID(second.id)} and len(
        {j.id for j in report.placed} & {uuid.UUID(first.id), uuid.UUID(second.id)}
    ) == 1
    assert uuid.UUID(free.id) in {j.id for j in report.placed}
    waiting = [
        await t.jobs.GetJob(scheduler_pb2.GetJobRequest(id=j.id), metadata=owner) for j in (first, second)
    ]
    held = [j for j in waiting if j.status == "queued"]
    assert len(held) == 1 and held[0].pending_reason.code == "project_cap"
    assert "project's cap of 1 GPUs" in held[0].pending_reason.message


async def test_the_agent_is_told_the_image_to_run_in(tenancy: Tenancy):
    org, t = Org(tenancy), tenancy
    owner = org.key("owner")
    node = uuid.uuid4()
    await t.h.add_gpus(org.id, node, 2, labels={CONTAINER_RUNTIME_LABEL: "podman"})
    boxed = await t.submit(owner, org.p1, image="ghcr.io/acme/train:v3")
    plain = await t.submit(owner)
    await schedule_round(t.h.deps)
    answer = await t.h.agents.GetAssignments(
        scheduler_pb2.GetAssignmentsRequest(node_id=str(node)), metadata=t.h.agent_of(node)
    )
    images = {a.job_id: a.image for a in answer.assignments}
    assert images == {boxed.id: "ghcr.io/acme/train:v3", plain.id: ""}
