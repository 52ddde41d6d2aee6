"""Projects: names and slugs, the rules of who may do what (docs/projects.md), and the handlers over the
in-memory unit of work (create, rename, archive, members, bound keys, the principal, isolation)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from services.identity.domain import projects as rules
from services.identity.domain.model import Principal, ProjectRole, Role
from services.identity.domain.operator import OperatorToken
from services.identity.domain.projects import Project
from services.identity.service_layer import commands, handlers
from services.identity.service_layer.handlers import Dependencies, handle
from shared.contracts import limits
from shared.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from .fakes import OPERATOR_TOKEN, FakeMetrics, FakeUnitOfWorkFactory

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
ORG = uuid4()


def _principal(role: Role, project_id: UUID | None = None, org: UUID = ORG) -> Principal:
    return Principal(org, uuid4(), role, uuid4(), limits.KEY_SCOPES, project_id=project_id)


def _project(org: UUID = ORG) -> Project:
    return rules.new_project(org, "Vision", "vision", "", uuid4(), NOW)


# ----------------------------------------------------------------------------- domain


def test_names_slugs_and_descriptions() -> None:
    assert rules.project_name("  Fraud Detection ") == "Fraud Detection"
    assert rules.slug_from("Fraud Détection — v2!") == "fraud-detection-v2"
    assert rules.slug_from("x" * 100) == "x" * limits.MAX_PROJECT_SLUG
    assert rules.project_slug("ml-2") == "ml-2"
    for bad in ("", "-ml", "ml-", "ML", "m l", "a" * (limits.MAX_PROJECT_SLUG + 1)):
        with pytest.raises(InvalidArgument) as err:
            rules.project_slug(bad)
        assert err.value.field == "slug"
    with pytest.raises(InvalidArgument):
        rules.slug_from("!!!")
    for bad_name in ("", " ", "a\x00b", "x" * (limits.MAX_PROJECT_NAME + 1)):
        with pytest.raises(InvalidArgument):
            rules.project_name(bad_name)
    assert rules.project_description("line one\nline two") == "line one\nline two"
    with pytest.raises(InvalidArgument):
        rules.project_description("x" * (limits.MAX_PROJECT_DESCRIPTION + 1))
    assert rules.project_role(" Contributor ") is ProjectRole.CONTRIBUTOR
    with pytest.raises(InvalidArgument):
        rules.project_role("admin")
    assert tuple(r.value for r in ProjectRole) == limits.PROJECT_ROLES


def test_a_project_is_visible_only_in_its_organization_and_to_its_bound_keys() -> None:
    project = _project()
    assert rules.visible(_principal(Role.VIEWER), project) is project
    assert rules.visible(_principal(Role.MEMBER, project_id=project.id), project) is project
    for caller in (_principal(Role.OWNER, org=uuid4()), _principal(Role.OWNER, project_id=uuid4())):
        with pytest.raises(NotFound, match=rules.PROJECT_NOT_FOUND):
            rules.visible(caller, project)
    with pytest.raises(NotFound):
        rules.visible(_principal(Role.OWNER), None)


def test_who_may_create_manage_members_and_bind_keys() -> None:
    for role in (Role.OWNER, Role.ADMIN):
        rules.require_project_admin(_principal(role))
        rules.require_member_manager(_principal(role), None)
        rules.require_may_bind_key(_principal(role), None)
    for role in (Role.MEMBER, Role.VIEWER):
        with pytest.raises(PermissionDenied):
            rules.require_project_admin(_principal(role))
    with pytest.raises(PermissionDenied, match="project-bound"):
        rules.require_project_admin(_principal(Role.OWNER, project_id=uuid4()))
    member = _principal(Role.MEMBER)
    rules.require_member_manager(member, ProjectRole.OWNER)
    for weaker in (ProjectRole.CONTRIBUTOR, ProjectRole.VIEWER, None):
        with pytest.raises(PermissionDenied):
            rules.require_member_manager(member, weaker)
    rules.require_may_bind_key(member, ProjectRole.OWNER)
    rules.require_may_bind_key(member, ProjectRole.CONTRIBUTOR)
    for weaker in (ProjectRole.VIEWER, None):
        with pytest.raises(PermissionDenied):
            rules.require_may_bind_key(member, weaker)
    # An organization viewer is read-only everywhere, whatever it was once made in a project.
    with pytest.raises(PermissionDenied):
        rules.require_may_bind_key(_principal(Role.VIEWER), ProjectRole.OWNER)
    with pytest.raises(PermissionDenied):
        rules.require_member_manager(_principal(Role.VIEWER), ProjectRole.OWNER)
    rules.require_may_hold(Role.VIEWER, ProjectRole.VIEWER)
    with pytest.raises(FailedPrecondition):
        rules.require_may_hold(Role.VIEWER, ProjectRole.CONTRIBUTOR)


def test_a_bound_key_binds_what_it_creates_to_its_own_project() -> None:
    mine = uuid4()
    assert rules.bound_project(_principal(Role.OWNER), None) is None
    assert rules.bound_project(_principal(Role.OWNER), mine) == mine
    assert rules.bound_project(_principal(Role.OWNER, project_id=mine), None) == mine
    assert rules.bound_project(_principal(Role.OWNER, project_id=mine), mine) == mine
    with pytest.raises(PermissionDenied):
        rules.bound_project(_principal(Role.OWNER, project_id=mine), uuid4())


def test_an_archived_project_refuses_and_keeps_its_first_archive_time() -> None:
    project = _project()
    project.require_active("new API keys")
    archived = project.archive(NOW)
    assert archived.archived and archived.archive(datetime(2026, 1, 1, tzinfo=UTC)).archived_at == NOW
    with pytest.raises(FailedPrecondition) as err:
        archived.require_active("new API keys")
    assert err.value.field == "project_id" and err.value.details["reason"] == rules.ARCHIVED_REASON


# ----------------------------------------------------------------------------- handlers


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def deps(uow: FakeUnitOfWorkFactory) -> Dependencies:
    return Dependencies(uow=uow, operator=OperatorToken(OPERATOR_TOKEN), metrics=FakeMetrics())


async def _org(deps: Dependencies, email: str = "owner@example.com") -> Principal:
    done = await handle(
        commands.CreateOrganization("Acme", email, "Ada", operator_token=OPERATOR_TOKEN), deps
    )
    return await handle(commands.Authenticate(done.api_key.secret), deps)


async def _join(deps: Dependencies, owner: Principal, email: str, role: str) -> tuple[Principal, str]:
    created = await handle(commands.CreateInvite(owner, email=email, role=role), deps)
    accepted = await handle(commands.AcceptInvite(created.issued.token), deps)
    return await handle(commands.Authenticate(accepted.api_key.secret), deps), accepted.api_key.secret


async def _auth(deps: Dependencies, secret: str) -> Principal:
    return await handle(commands.Authenticate(secret), deps)


async def test_an_owner_creates_renames_and_archives_with_audit_rows(deps, uow) -> None:
    owner = await _org(deps)
    project = await handle(commands.CreateProject(owner, "Fraud Detection", description="cards"), deps)
    assert (project.slug, project.organization_id, project.created_by) == (
        "fraud-detection",
        owner.organization_id,
        owner.user_id,
    )
    with pytest.raises(Conflict):
        await handle(commands.CreateProject(owner, "Other", slug="fraud-detection"), deps)
    renamed = await handle(commands.UpdateProject(owner, project.id, name="Fraud", slug="fraud"), deps)
    assert (renamed.name, renamed.slug, renamed.description) == ("Fraud", "fraud", "cards")
    unchanged = await handle(commands.UpdateProject(owner, project.id, name="Fraud"), deps)
    assert unchanged == renamed
    archived = await handle(commands.ArchiveProject(owner, project.id), deps)
    assert archived.archived
    assert await handle(commands.ArchiveProject(owner, project.id), deps) == archived  # idempotent
    with pytest.raises(FailedPrecondition):
        await handle(commands.UpdateProject(owner, project.id, name="Again"), deps)
    assert await handle(commands.ListProjects(owner), deps) == []
    assert [p.id for p in await handle(commands.ListProjects(owner, include_archived=True), deps)] == [
        project.id
    ]
    actions = [(a.action, a.details.get("before")) for a in uow.state.audit if a.target_type == "project"]
    assert actions == [
        ("project.created", None),
        ("project.updated", {"name": "Fraud Detection", "slug": "fraud-detection", "description": "cards"}),
        ("project.archived", None),
    ]


async def test_members_and_viewers_cannot_create_projects(deps) -> None:
    owner = await _org(deps)
    member, _ = await _join(deps, owner, "m@example.com", "member")
    with pytest.raises(PermissionDenied):
        await handle(commands.CreateProject(member, "Mine"), deps)
    project = await handle(commands.CreateProject(owner, "Shared"), deps)
    with pytest.raises(PermissionDenied):
        await handle(commands.ArchiveProject(member, project.id), deps)
    # ... but every member reads the organization's projects (the tenant boundary is the organization).
    assert [p.id for p in await handle(commands.ListProjects(member), deps)] == [project.id]
    assert (await handle(commands.GetProject(member, project.id), deps)).id == project.id


async def test_project_members_roles_and_the_principal(deps, uow) -> None:
    owner = await _org(deps)
    project = await handle(commands.CreateProject(owner, "Vision"), deps)
    alice, alice_key = await _join(deps, owner, "alice@example.com", "member")
    bob, bob_key = await _join(deps, owner, "bob@example.com", "member")
    vera, _ = await _join(deps, owner, "vera@example.com", "viewer")
    assert alice.project_roles == ()
    added = await handle(commands.SetProjectMember(owner, project.id, alice.user_id, "owner"), deps)
    assert (added.role, added.email, added.added_by) == (
        ProjectRole.OWNER,
        "alice@example.com",
        owner.user_id,
    )
    assert (await _auth(deps, alice_key)).project_roles == ((project.id, ProjectRole.OWNER),)
    # A project owner manages that project's members.
    alice = await _auth(deps, alice_key)
    await handle(commands.SetProjectMember(alice, project.id, bob.user_id, "contributor"), deps)
    assert (await _auth(deps, bob_key)).project_roles == ((project.id, ProjectRole.CONTRIBUTOR),)
    bob = await _auth(deps, bob_key)
    with pytest.raises(PermissionDenied):  # a contributor does not
        await handle(commands.SetProjectMember(bob, project.id, vera.user_id, "viewer"), deps)
    with pytest.raises(FailedPrecondition):  # an organization viewer is only ever a project viewer
        await handle(commands.SetProjectMember(owner, project.id, vera.user_id, "contributor"), deps)
    await handle(commands.SetProjectMember(owner, project.id, vera.user_id, "viewer"), deps)
    with pytest.raises(NotFound):  # not a member of the organization
        await handle(commands.SetProjectMember(owner, project.id, uuid4(), "viewer"), deps)
    changed = await handle(commands.SetProjectMember(alice, project.id, bob.user_id, "viewer"), deps)
    assert changed.role is ProjectRole.VIEWER
    listed = await handle(commands.ListProjectMembers(bob, project.id), deps)
    assert [(m.email, m.role.value) for m in listed] == [
        ("alice@example.com", "owner"),
        ("bob@example.com", "viewer"),
        ("vera@example.com", "viewer"),
    ]
    # Owners and admins hold every project: their principal lists no roles.
    assert owner.project_roles == ()
    await handle(commands.RemoveProjectMember(bob, project.id, bob.user_id), deps)  # anyone may leave
    with pytest.raises(NotFound):
        await handle(commands.GetProjectMember(owner, project.id, bob.user_id), deps)
    actions = [a.action for a in uow.state.audit if a.action.startswith("project_member.")]
    assert actions == [
        "project_member.added",
        "project_member.added",
        "project_member.added",
        "project_member.role_changed",
        "project_member.removed",
    ]


async def test_leaving_the_organization_leaves_its_projects(deps, uow) -> None:
    owner = await _org(deps)
    project = await handle(commands.CreateProject(owner, "Vision"), deps)
    alice, _ = await _join(deps, owner, "alice@example.com", "member")
    await handle(commands.SetProjectMember(owner, project.id, alice.user_id, "contributor"), deps)
    await handle(commands.RemoveMember(owner, alice.user_id), deps)
    assert await handle(commands.ListProjectMembers(owner, project.id), deps) == []
    removed = [a for a in uow.state.audit if a.action == "project_member.removed"]
    assert [(a.target_id, a.details["project_id"]) for a in removed] == [
        (str(alice.user_id), str(project.id))
    ]


async def test_bound_keys_who_may_make_them_and_what_they_see(deps) -> None:
    owner = await _org(deps)
    vision = await handle(commands.CreateProject(owner, "Vision"), deps)
    speech = await handle(commands.CreateProject(owner, "Speech"), deps)
    alice, _ = await _join(deps, owner, "alice@example.com", "member")
    with pytest.raises(PermissionDenied):  # no role in the project, and members make no unbound keys
        await handle(commands.CreateApiKey(alice, "ci", project_id=vision.id), deps)
    with pytest.raises(PermissionDenied):
        await handle(commands.CreateApiKey(alice, "ci"), deps)
    await handle(commands.SetProjectMember(owner, vision.id, alice.user_id, "contributor"), deps)
    issued = await handle(commands.CreateApiKey(alice, "ci", project_id=vision.id), deps)
    assert issued.key.project_id == vision.id
    bound = await _auth(deps, issued.secret)
    assert (bound.project_id, bound.user_id) == (vision.id, alice.user_id)
    # A bound key sees its project only; another reads as absent.
    assert [p.id for p in await handle(commands.ListProjects(bound), deps)] == [vision.id]
    with pytest.raises(NotFound):
        await handle(commands.GetProject(bound, speech.id), deps)
    with pytest.raises(NotFound):
        await handle(commands.ListProjectMembers(bound, speech.id), deps)
    # What it creates stays in its project.
    again = await handle(commands.CreateApiKey(bound, "child"), deps)
    assert again.key.project_id == vision.id
    with pytest.raises(PermissionDenied):
        await handle(commands.CreateApiKey(bound, "escape", project_id=speech.id), deps)
    # Unknown and archived projects refuse new keys.
    with pytest.raises(NotFound):
        await handle(commands.CreateApiKey(owner, "nope", project_id=uuid4()), deps)
    await handle(commands.ArchiveProject(owner, vision.id), deps)
    with pytest.raises(FailedPrecondition) as err:
        await handle(commands.CreateApiKey(owner, "late", project_id=vision.id), deps)
    assert err.value.field == "project_id"
    # ... but its keys still read it (its jobs and costs stay readable).
    assert (await handle(commands.GetProject(bound, vision.id), deps)).archived
    assert (await handle(commands.ResolveProject(issued.secret, vision.id), deps)).archived
    with pytest.raises(NotFound):
        await handle(commands.ResolveProject(issued.secret, speech.id), deps)


async def test_another_organization_never_sees_a_project(deps) -> None:
    owner = await _org(deps)
    project = await handle(commands.CreateProject(owner, "Vision"), deps)
    other = await _org(deps, "other@example.com")
    for cmd in (
        commands.GetProject(other, project.id),
        commands.ListProjectMembers(other, project.id),
        commands.ArchiveProject(other, project.id),
        commands.UpdateProject(other, project.id, name="Mine"),
        commands.SetProjectMember(other, project.id, other.user_id, "owner"),
        commands.CreateApiKey(other, "k", project_id=project.id),
    ):
        with pytest.raises(NotFound, match=rules.PROJECT_NOT_FOUND):
            await handle(cmd, deps)
    assert await handle(commands.ListProjects(other, include_archived=True), deps) == []
    # The same slug is free in another organization.
    assert (await handle(commands.CreateProject(other, "Vision"), deps)).slug == project.slug


def test_every_project_command_is_handled() -> None:
    for name in (
        "CreateProject",
        "ListProjects",
        "GetProject",
        "UpdateProject",
        "ArchiveProject",
        "ListProjectMembers",
        "GetProjectMember",
        "SetProjectMember",
        "RemoveProjectMember",
        "ResolveProject",
    ):
        assert getattr(commands, name) in handlers.HANDLERS


async def test_a_bound_key_cannot_invite_or_revoke_outside_its_project(deps) -> None:
    owner = await _org(deps)
    project = await handle(commands.CreateProject(owner, "Vision"), deps)
    bound = await _auth(
        deps, (await handle(commands.CreateApiKey(owner, "ci", project_id=project.id), deps)).secret
    )
    # An invite would hand out an unbound key: org-level member management needs an unbound key.
    with pytest.raises(PermissionDenied, match="project-bound"):
        await handle(commands.CreateInvite(bound, email="x@example.com", role="owner"), deps)
    with pytest.raises(PermissionDenied, match="project-bound"):
        await handle(commands.ListInvites(bound), deps)
    with pytest.raises(PermissionDenied, match="project-bound"):
        await handle(commands.RevokeApiKey(bound, owner.api_key_id), deps)
    sibling = await handle(commands.CreateApiKey(bound, "sibling"), deps)
    assert (await handle(commands.RevokeApiKey(bound, sibling.key.id), deps)).revoked_at is not None
