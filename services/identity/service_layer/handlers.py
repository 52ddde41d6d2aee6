"""Use cases of the identity service: async handlers (command, dependencies) -> result.

Operator work and authentication run in the system scope (they find an organization rather than act
inside one); every tenant call runs in its caller's organization, so row-level security backs up the
explicit organization filters. Entrypoints call :func:`handle`; every handler is listed in
:data:`HANDLERS`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from shared.errors import InvalidArgument, NotFound, Unauthenticated
from shared.handlers import dispatch

from ..domain import model
from ..domain import projects as project_rules
from ..domain.keys import hash_key, legacy, well_formed
from ..domain.model import ApiKey, AuditEntry, AuthOutcome, Membership, Organization, Principal, Role, User
from ..domain.operator import OperatorPrincipal
from . import audit, commands, members, operators, projects
from .dependencies import (  # re-exported: the entrypoints and tests import them from here
    Dependencies,
    IdentityMetrics,
    InviteMail,
    IssuedKey,
    Mailer,
    NoMailer,
    OperatorGate,
)
from .dependencies import key_details as _key_details
from .members import AcceptedInvite, CreatedInvite
from .operators import OPERATOR_REQUIRED, CreatedOperator, resolve_operator
from .unit_of_work import Credential, IdentityUnitOfWork

__all__ = [
    "OPERATOR_REQUIRED",
    "AcceptedInvite",
    "CreatedInvite",
    "CreatedOperator",
    "Dependencies",
    "IdentityMetrics",
    "InviteMail",
    "IssuedKey",
    "Mailer",
    "NoMailer",
    "OperatorGate",
    "handle",
]

# One message for every failure, so a caller cannot tell unknown, revoked and expired keys apart.
INVALID_KEY = "invalid API key"


@dataclass(frozen=True)
class CreatedOrganization:
    organization: Organization
    owner: User
    api_key: IssuedKey


async def authenticate(cmd: commands.Authenticate, deps: Dependencies) -> Principal | OperatorPrincipal:
    # An operator token is recognised only where asked for and only if it cannot be a key: an API key
    # (anything key-shaped) is always looked up as a key, so it never becomes an operator.
    if cmd.operator_allowed and not well_formed(cmd.api_key):
        found_operator = await resolve_operator(cmd.api_key, deps)
        if found_operator is not None:
            deps.metrics.count_authentication(AuthOutcome.OPERATOR)
            return found_operator
    # A string that cannot be a key is refused before any lookup; that reveals nothing about keys.
    if not well_formed(cmd.api_key):
        deps.metrics.count_authentication(AuthOutcome.MALFORMED)
        raise Unauthenticated(INVALID_KEY)
    async with deps.uow(system=True) as tx:
        found = await tx.credential(hash_key(cmd.api_key))
        principal = await _verify_key(tx, cmd.api_key, found, await tx.now(), used=True, deps=deps)
    if principal is None:
        raise Unauthenticated(INVALID_KEY)
    return principal


# Keys per AuthenticateKeys call: what a service's cache sends in one batch (shared/grpc.py).
MAX_KEYS_PER_CALL = 1000


async def authenticate_keys(cmd: commands.AuthenticateKeys, deps: Dependencies) -> list[Principal | None]:
    """One answer per key, in order (None: not valid, never saying why), all in one transaction. An
    operator token is not a key and is never valid here."""
    if not 1 <= len(cmd.keys) <= MAX_KEYS_PER_CALL:
        raise InvalidArgument(f"between 1 and {MAX_KEYS_PER_CALL} keys per call", field="keys")
    answers: list[Principal | None] = [None] * len(cmd.keys)
    shaped = []
    for i, (key, used) in enumerate(cmd.keys):
        if well_formed(key):
            shaped.append((i, key, used))
        else:
            deps.metrics.count_authentication(AuthOutcome.MALFORMED)
    if shaped:
        async with deps.uow(system=True) as tx:
            now = await tx.now()
            found = await tx.credentials([hash_key(key) for _, key, _ in shaped])  # one look-up for all
            for i, key, used in shaped:
                answers[i] = await _verify_key(tx, key, found.get(hash_key(key)), now, used=used, deps=deps)
    return answers


async def _verify_key(
    tx: IdentityUnitOfWork,
    api_key: str,
    found: Credential | None,
    now: datetime,
    *,
    used: bool,
    deps: Dependencies,
) -> Principal | None:
    """The principal of a well-formed ``api_key`` (``found``: its credential, None: unknown) at ``now``
    (None: unknown, revoked or expired); a use is recorded (at most once per interval) when ``used``."""
    refusal = AuthOutcome.INVALID if found is None else found.key.refusal_at(now)
    if found is not None and refusal is None and used and found.key.use_worth_recording(now):
        await tx.record_key_use(found.key.id, now)
    deps.metrics.count_authentication(refusal or AuthOutcome.OK)
    if found is None or refusal is not None:
        return None
    if used and legacy(api_key):
        deps.metrics.count_legacy_key()
    key = found.key
    return Principal(
        organization_id=key.organization_id,
        user_id=key.user_id,
        role=found.role,
        api_key_id=key.id,
        scopes=key.scopes,
        expires_at=key.expires_at,
        project_id=key.project_id,
        project_roles=found.project_roles,
    )


async def create_organization(cmd: commands.CreateOrganization, deps: Dependencies) -> CreatedOrganization:
    """The organization, its owner (an existing user with that email is reused) and a first key."""
    by = await resolve_operator(cmd.operator_token, deps)
    if by is None:
        raise Unauthenticated(OPERATOR_REQUIRED)
    op = by.name
    name = model.organization_name(cmd.name)
    email = model.email_address(cmd.owner_email)
    owner_name = model.person_name(cmd.owner_name)
    async with deps.uow(system=True) as tx:
        now = await tx.now()
        org = Organization(id=uuid4(), name=name, created_at=now)
        await tx.add_organization(org)
        await tx.audit(
            AuditEntry.by_operator(
                org.id, "organization.created", "organization", org.id, operator=op, name=name
            )
        )
        owner, created = await tx.ensure_user(User(id=uuid4(), email=email, name=owner_name), org.id)
        if created:
            await tx.audit(
                AuditEntry.by_operator(org.id, "user.created", "user", owner.id, operator=op, email=email)
            )
        await tx.add_membership(Membership(user_id=owner.id, organization_id=org.id, role=Role.OWNER))
        await tx.audit(
            AuditEntry.by_operator(
                org.id, "member.added", "user", owner.id, operator=op, role=Role.OWNER.value
            )
        )
        key, secret = model.issue_key(org.id, owner.id, model.DEFAULT_KEY_NAME, model.SCOPES, now)
        await tx.add_api_key(key)
        await tx.audit(
            AuditEntry.by_operator(
                org.id, "api_key.created", "api_key", key.id, operator=op, **_key_details(key)
            )
        )
    return CreatedOrganization(organization=org, owner=owner, api_key=IssuedKey(key, secret))


async def get_organization(cmd: commands.GetOrganization, deps: Dependencies) -> Organization:
    caller = cmd.caller
    async with deps.uow(org_id=caller.organization_id) as tx:
        org = await tx.organization(caller.organization_id)
    if org is None:  # deleted after the key was checked
        raise NotFound("organization not found")
    return org


async def create_api_key(cmd: commands.CreateApiKey, deps: Dependencies) -> IssuedKey:
    """A key for the caller's own user in the caller's organization, no stronger than the caller's
    key: no scope it lacks, no later expiry, and bound to the caller's project if the caller's is. A
    key bound to a project may also be made by that project's owners and contributors
    (docs/projects.md); an archived project refuses new keys."""
    caller = cmd.caller
    project_id = project_rules.bound_project(caller, cmd.project_id)
    if project_id is None:
        caller.require_key_manager()
    else:
        caller.require_key_scope()
    name = model.key_name(cmd.name)
    scopes = caller.scopes_to_grant(cmd.scopes)
    lifetime = model.key_lifetime(cmd.expires_in_seconds)
    caller.require_grantable(scopes)
    async with deps.uow(org_id=caller.organization_id) as tx:
        if project_id is not None:
            project = project_rules.visible(caller, await tx.project(project_id))
            mine = await tx.project_member(project.id, caller.user_id)
            project_rules.require_may_bind_key(caller, mine.role if mine else None)
            project.require_active("new API keys")
        now = await tx.now()
        caller.require_outlived_by(lifetime, now)
        key, secret = model.issue_key(
            caller.organization_id, caller.user_id, name, scopes, now, lifetime, project_id=project_id
        )
        await tx.add_api_key(key)
        await tx.audit(AuditEntry.by(caller, "api_key.created", "api_key", key.id, **_key_details(key)))
    return IssuedKey(key, secret)


async def list_api_keys(cmd: commands.ListApiKeys, deps: Dependencies) -> list[ApiKey]:
    async with deps.uow(org_id=cmd.caller.organization_id) as tx:
        return await tx.api_keys(cmd.caller.organization_id)


async def revoke_api_key(cmd: commands.RevokeApiKey, deps: Dependencies) -> ApiKey:
    """Revokes a key of the caller's organization; revoking a revoked key changes nothing."""
    caller = cmd.caller
    async with deps.uow(org_id=caller.organization_id) as tx:
        key = await tx.api_key(cmd.key_id) if cmd.key_id else None
        # Another organization's key reads exactly like a missing one.
        if key is None or key.organization_id != caller.organization_id:
            raise NotFound("API key not found", field="id")
        caller.require_may_revoke(key)
        if key.revoked_at is not None:
            return key
        key = key.revoked(await tx.now())
        await tx.save_revocation(key)
        await tx.audit(
            AuditEntry.by(caller, "api_key.revoked", "api_key", key.id, name=key.name, prefix=key.prefix)
        )
    return key


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.Authenticate: authenticate,
    commands.AuthenticateKeys: authenticate_keys,
    commands.CreateOrganization: create_organization,
    commands.GetOrganization: get_organization,
    commands.CreateApiKey: create_api_key,
    commands.ListApiKeys: list_api_keys,
    commands.RevokeApiKey: revoke_api_key,
    **members.HANDLERS,
    **operators.HANDLERS,
    **projects.HANDLERS,
    **audit.HANDLERS,
}


async def handle(cmd: commands.Command, deps: Dependencies) -> Any:
    """Run the handler registered for ``cmd``'s type."""
    return await dispatch(HANDLERS, cmd, deps)
