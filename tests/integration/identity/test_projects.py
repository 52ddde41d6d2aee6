"""Projects over identity's gRPC against the real PostgreSQL (docs/projects.md): create, rename, archive;
members and their roles in the principal; project-bound keys; leaving the organization leaves its
projects; another organization sees nothing, in code and by row-level security and the schema's keys."""

from __future__ import annotations

from uuid import UUID, uuid4

import grpc
import pytest
from gpufleet.v1 import common_pb2, identity_pb2, identity_pb2_grpc
from sqlalchemy.exc import IntegrityError

from shared.grpc import ERROR_FIELD_KEY, channel, with_key

from .conftest import Identity
from .test_identity_service import create_org, rpc_error, sql
from .test_members import authenticate, join

pytestmark = pytest.mark.integration


@pytest.fixture
async def projects(identity: Identity):  # type: ignore[no-untyped-def]
    client = channel(identity.target)
    yield identity_pb2_grpc.ProjectServiceStub(client)
    await client.close()


def _field(err: grpc.aio.AioRpcError) -> str | None:
    return dict(err.trailing_metadata() or ()).get(ERROR_FIELD_KEY)


async def test_a_project_its_members_and_the_principal(identity: Identity, projects) -> None:  # type: ignore[no-untyped-def]
    org = await create_org(identity)
    owner = org.api_key.secret
    created = await projects.CreateProject(
        identity_pb2.CreateProjectRequest(name="Fraud Detection", description="cards"),
        metadata=with_key(owner),
    )
    assert (created.slug, created.organization_id, created.archived_at) == (
        "fraud-detection",
        org.organization.id,
        "",
    )
    dup = await rpc_error(
        projects.CreateProject(
            identity_pb2.CreateProjectRequest(name="x", slug="fraud-detection"), metadata=with_key(owner)
        )
    )
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS and _field(dup) == "slug"

    alice = await join(identity, owner, "member")
    vera = await join(identity, owner, "viewer")
    added = await projects.SetProjectMember(
        identity_pb2.SetProjectMemberRequest(
            project_id=created.id, user_id=alice.member.user_id, role="contributor"
        ),
        metadata=with_key(owner),
    )
    assert (added.role, added.email, added.added_by_user_id) == (
        "contributor",
        alice.member.email,
        org.owner.id,
    )
    await projects.SetProjectMember(
        identity_pb2.SetProjectMemberRequest(
            project_id=created.id, user_id=vera.member.user_id, role="viewer"
        ),
        metadata=with_key(owner),
    )
    refused = await rpc_error(
        projects.SetProjectMember(
            identity_pb2.SetProjectMemberRequest(
                project_id=created.id, user_id=vera.member.user_id, role="owner"
            ),
            metadata=with_key(owner),
        )
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    principal = await authenticate(identity, alice.api_key.secret)
    assert [(r.project_id, r.role) for r in principal.project_roles] == [(created.id, "contributor")]
    assert principal.project_id == ""
    assert list((await authenticate(identity, owner)).project_roles) == []  # owners hold every project
    # The services' batch (AuthenticateKeys, one look-up for all) answers exactly what Authenticate does.
    keys = [alice.api_key.secret, owner, vera.api_key.secret]
    batch = await identity.stub.AuthenticateKeys(
        identity_pb2.AuthenticateKeysRequest(keys=[identity_pb2.KeyToVerify(api_key=k) for k in keys])
    )
    assert [k.principal for k in batch.keys] == [await authenticate(identity, k) for k in keys]
    assert [(r.project_id, r.role) for r in batch.keys[2].principal.project_roles] == [(created.id, "viewer")]

    # A project-bound key made by a contributor: its principal names the project.
    bound = await identity.stub.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(name="ci", project_id=created.id),
        metadata=with_key(alice.api_key.secret),
    )
    assert bound.key.project_id == created.id
    bound_principal = await authenticate(identity, bound.secret)
    assert (bound_principal.project_id, bound_principal.user_id) == (created.id, alice.member.user_id)
    listed = await identity.stub.ListApiKeys(common_pb2.Empty(), metadata=with_key(owner))
    assert {k.id: k.project_id for k in listed.keys}[bound.key.id] == created.id
    stored = await sql(identity, "SELECT project_id FROM api_keys WHERE id = :i", i=UUID(bound.key.id))
    assert stored == [(UUID(created.id),)]

    members = await projects.ListProjectMembers(
        identity_pb2.ListProjectMembersRequest(project_id=created.id), metadata=with_key(vera.api_key.secret)
    )
    assert [(m.email, m.role) for m in members.members] == [
        (alice.member.email, "contributor"),
        (vera.member.email, "viewer"),
    ]

    # A viewer may not bind keys; the viewer role cannot manage members.
    no_key = await rpc_error(
        identity.stub.CreateApiKey(
            identity_pb2.CreateApiKeyRequest(name="v", project_id=created.id),
            metadata=with_key(vera.api_key.secret),
        )
    )
    assert no_key.code() == grpc.StatusCode.PERMISSION_DENIED

    # Rename, then archive: an archived project refuses new keys and member changes, and stays readable.
    renamed = await projects.UpdateProject(
        identity_pb2.UpdateProjectRequest(id=created.id, name="Fraud"), metadata=with_key(owner)
    )
    assert (renamed.name, renamed.slug, renamed.description) == ("Fraud", "fraud-detection", "cards")
    archived = await projects.ArchiveProject(
        identity_pb2.ArchiveProjectRequest(id=created.id), metadata=with_key(owner)
    )
    assert archived.archived_at
    late = await rpc_error(
        identity.stub.CreateApiKey(
            identity_pb2.CreateApiKeyRequest(name="late", project_id=created.id), metadata=with_key(owner)
        )
    )
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION and _field(late) == "project_id"
    seen = await projects.GetProject(
        identity_pb2.GetProjectRequest(id=created.id), metadata=with_key(bound.secret)
    )
    assert seen.archived_at == archived.archived_at
    resolved = await projects.ResolveProject(
        identity_pb2.ResolveProjectRequest(api_key=bound.secret, project_id=created.id)
    )
    assert resolved.id == created.id and resolved.archived_at

    actions = await sql(
        identity,
        "SELECT action FROM audit_log WHERE organization_id = :o AND action LIKE 'project%' ORDER BY id",
        o=UUID(org.organization.id),
    )
    assert [a for (a,) in actions] == [
        "project.created",
        "project_member.added",
        "project_member.added",
        "project.updated",
        "project.archived",
    ]


async def test_a_bound_key_sees_only_its_project_and_binds_what_it_makes(
    identity: Identity, projects
) -> None:  # type: ignore[no-untyped-def]
    org = await create_org(identity)
    owner = org.api_key.secret
    mine = await projects.CreateProject(
        identity_pb2.CreateProjectRequest(name="Mine"), metadata=with_key(owner)
    )
    other = await projects.CreateProject(
        identity_pb2.CreateProjectRequest(name="Other"), metadata=with_key(owner)
    )
    bound = await identity.stub.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(name="b", project_id=mine.id), metadata=with_key(owner)
    )
    listed = await projects.ListProjects(identity_pb2.ListProjectsRequest(), metadata=with_key(bound.secret))
    assert [p.id for p in listed.projects] == [mine.id]
    for call in (
        projects.GetProject(identity_pb2.GetProjectRequest(id=other.id), metadata=with_key(bound.secret)),
        projects.ListProjectMembers(
            identity_pb2.ListProjectMembersRequest(project_id=other.id), metadata=with_key(bound.secret)
        ),
        projects.ResolveProject(
            identity_pb2.ResolveProjectRequest(api_key=bound.secret, project_id=other.id)
        ),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.NOT_FOUND
    child = await identity.stub.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(name="c"), metadata=with_key(bound.secret)
    )
    assert child.key.project_id == mine.id
    escape = await rpc_error(
        identity.stub.CreateApiKey(
            identity_pb2.CreateApiKeyRequest(name="e", project_id=other.id), metadata=with_key(bound.secret)
        )
    )
    assert escape.code() == grpc.StatusCode.PERMISSION_DENIED
    create = await rpc_error(
        projects.CreateProject(identity_pb2.CreateProjectRequest(name="New"), metadata=with_key(bound.secret))
    )
    assert create.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_leaving_the_organization_leaves_its_projects(identity: Identity, projects) -> None:  # type: ignore[no-untyped-def]
    org = await create_org(identity)
    owner = org.api_key.secret
    project = await projects.CreateProject(
        identity_pb2.CreateProjectRequest(name="P"), metadata=with_key(owner)
    )
    alice = await join(identity, owner, "member")
    await projects.SetProjectMember(
        identity_pb2.SetProjectMemberRequest(
            project_id=project.id, user_id=alice.member.user_id, role="owner"
        ),
        metadata=with_key(owner),
    )
    await identity.stub.RemoveMember(
        identity_pb2.RemoveMemberRequest(user_id=alice.member.user_id), metadata=with_key(owner)
    )
    members = await projects.ListProjectMembers(
        identity_pb2.ListProjectMembersRequest(project_id=project.id), metadata=with_key(owner)
    )
    assert list(members.members) == []
    rows = await sql(
        identity,
        "SELECT details->>'project_id', details->>'role' FROM audit_log "
        "WHERE action = 'project_member.removed' AND target_id = :u",
        u=alice.member.user_id,
    )
    assert rows == [(project.id, "owner")]


async def test_another_organization_sees_nothing(identity: Identity, projects) -> None:  # type: ignore[no-untyped-def]
    a = await create_org(identity)
    b = await create_org(identity)
    project = await projects.CreateProject(
        identity_pb2.CreateProjectRequest(name="Secret"), metadata=with_key(a.api_key.secret)
    )
    key_b = with_key(b.api_key.secret)
    for call in (
        projects.GetProject(identity_pb2.GetProjectRequest(id=project.id), metadata=key_b),
        projects.ArchiveProject(identity_pb2.ArchiveProjectRequest(id=project.id), metadata=key_b),
        projects.UpdateProject(identity_pb2.UpdateProjectRequest(id=project.id, name="x"), metadata=key_b),
        projects.ListProjectMembers(
            identity_pb2.ListProjectMembersRequest(project_id=project.id), metadata=key_b
        ),
        projects.SetProjectMember(
            identity_pb2.SetProjectMemberRequest(project_id=project.id, user_id=b.owner.id, role="owner"),
            metadata=key_b,
        ),
        projects.GetProject(identity_pb2.GetProjectRequest(id="not-a-uuid"), metadata=key_b),
        identity.stub.CreateApiKey(
            identity_pb2.CreateApiKeyRequest(name="k", project_id=project.id), metadata=key_b
        ),
        projects.ResolveProject(
            identity_pb2.ResolveProjectRequest(api_key=b.api_key.secret, project_id=project.id)
        ),
    ):
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND and "Secret" not in (err.details() or "")
    listed = await projects.ListProjects(
        identity_pb2.ListProjectsRequest(include_archived=True), metadata=key_b
    )
    assert list(listed.projects) == []
    # Row-level security: B's scope reads none of A's projects; the schema refuses a cross-org binding.
    assert await sql(identity, "SELECT id FROM projects", org_id=b.organization.id) == []
    with pytest.raises(IntegrityError):
        await sql(
            identity,
            "INSERT INTO api_keys (organization_id, user_id, name, prefix, key_hash, project_id) "
            "VALUES (:o, :u, 'x', 'gpf_x', :h, :p)",
            o=UUID(b.organization.id),
            u=UUID(b.owner.id),
            h=uuid4().hex * 2,
            p=UUID(project.id),
        )


async def test_the_project_scopes(identity: Identity, projects) -> None:  # type: ignore[no-untyped-def]
    org = await create_org(identity)
    owner = org.api_key.secret

    async def key(*held: str) -> tuple[tuple[str, str], ...]:
        made = await identity.stub.CreateApiKey(
            identity_pb2.CreateApiKeyRequest(name="s", scopes=list(held)), metadata=with_key(owner)
        )
        return with_key(made.secret)

    jobs_only, reader, writer = (
        await key("jobs:read"),
        await key("projects:read"),
        await key("projects:write"),
    )
    denied = await rpc_error(projects.ListProjects(identity_pb2.ListProjectsRequest(), metadata=jobs_only))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and _field(denied) == "scopes"
    await projects.ListProjects(identity_pb2.ListProjectsRequest(), metadata=reader)
    create = identity_pb2.CreateProjectRequest(name="Scoped")
    assert (
        await rpc_error(projects.CreateProject(create, metadata=reader))
    ).code() == grpc.StatusCode.PERMISSION_DENIED
    made = await projects.CreateProject(create, metadata=writer)
    # projects:write includes projects:read; ResolveProject (the services' call) needs no scope at all.
    await projects.GetProject(identity_pb2.GetProjectRequest(id=made.id), metadata=writer)
    jobs_key = jobs_only[0][1].removeprefix("Bearer ")
    resolved = await projects.ResolveProject(
        identity_pb2.ResolveProjectRequest(api_key=jobs_key, project_id=made.id)
    )
    assert resolved.id == made.id
    bad = await rpc_error(
        projects.ResolveProject(identity_pb2.ResolveProjectRequest(api_key="gpf_nope", project_id=made.id))
    )
    assert bad.code() == grpc.StatusCode.UNAUTHENTICATED
