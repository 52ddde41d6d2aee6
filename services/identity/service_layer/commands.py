"""What the entrypoints ask of the service layer (already translated from the wire).

Tenant commands carry the ``caller``: the principal the entrypoint resolved with :class:`Authenticate`
from the same request's key."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from ..domain.audit import AuditQuery, AuditRecord
from ..domain.model import Principal


@dataclass(frozen=True)
class Authenticate:
    api_key: str = field(repr=False)
    # The Authenticate RPC (other services asking who a caller is) also recognises the operator token;
    # identity's own tenant calls do not.
    operator_allowed: bool = False


@dataclass(frozen=True)
class AuthenticateKeys:
    """Many API keys at once (the services' caches re-verifying the keys in use): each with whether it
    was used since that caller last verified it (its last use is recorded only then)."""

    keys: tuple[tuple[str, bool], ...] = field(repr=False)


@dataclass(frozen=True)
class CreateOrganization:
    """An operator call: ``operator_token`` is what the caller presented (None: nothing)."""

    name: str
    owner_email: str
    owner_name: str = ""
    operator_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GetOrganization:
    caller: Principal


@dataclass(frozen=True)
class CreateApiKey:
    caller: Principal
    name: str
    scopes: tuple[str, ...] = ()
    expires_in_seconds: int = 0
    project_id: UUID | None = None  # bind the key to this project (docs/projects.md)


@dataclass(frozen=True)
class ListApiKeys:
    caller: Principal


@dataclass(frozen=True)
class RevokeApiKey:
    caller: Principal
    key_id: UUID | None  # None: the id on the wire was malformed, which reads as "not found"


# --- members and invites (docs/members.md)


@dataclass(frozen=True)
class CreateInvite:
    caller: Principal
    email: str = ""  # "": an invite code
    role: str = ""  # "": member
    expires_in_seconds: int = 0  # 0: the default lifetime
    max_uses: int = 0  # codes only; 0: once


@dataclass(frozen=True)
class ListInvites:
    caller: Principal


@dataclass(frozen=True)
class RevokeInvite:
    caller: Principal
    invite_id: UUID | None  # None: malformed on the wire, which reads as "not found"


@dataclass(frozen=True)
class AcceptInvite:
    """Unauthenticated: the token is the credential."""

    token: str = field(repr=False)
    email: str = ""
    name: str = ""


@dataclass(frozen=True)
class ListMembers:
    caller: Principal


@dataclass(frozen=True)
class UpdateMember:
    caller: Principal
    user_id: UUID | None
    role: str


@dataclass(frozen=True)
class RemoveMember:
    caller: Principal
    user_id: UUID | None


# --- projects (docs/projects.md). An id that is None was malformed on the wire: it reads as "not found".


@dataclass(frozen=True)
class CreateProject:
    caller: Principal
    name: str
    slug: str = ""  # "": made from the name
    description: str = ""


@dataclass(frozen=True)
class ListProjects:
    caller: Principal
    include_archived: bool = False


@dataclass(frozen=True)
class GetProject:
    caller: Principal
    project_id: UUID | None


@dataclass(frozen=True)
class UpdateProject:
    """None: keep what the project has."""

    caller: Principal
    project_id: UUID | None
    name: str | None = None
    slug: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ArchiveProject:
    caller: Principal
    project_id: UUID | None


@dataclass(frozen=True)
class ListProjectMembers:
    caller: Principal
    project_id: UUID | None


@dataclass(frozen=True)
class GetProjectMember:
    caller: Principal
    project_id: UUID | None
    user_id: UUID | None


@dataclass(frozen=True)
class SetProjectMember:
    caller: Principal
    project_id: UUID | None
    user_id: UUID | None
    role: str


@dataclass(frozen=True)
class RemoveProjectMember:
    caller: Principal
    project_id: UUID | None
    user_id: UUID | None


@dataclass(frozen=True)
class ResolveProject:
    """A service asking about a project its caller named: the key is the caller's own."""

    api_key: str = field(repr=False)
    project_id: UUID | None = None


# --- named operators: ``operator_token`` is what the caller presented (None: nothing)


@dataclass(frozen=True)
class CreateOperator:
    name: str
    operator_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ListOperators:
    operator_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RevokeOperator:
    operator_id: UUID | None
    operator_token: str | None = field(default=None, repr=False)


# --- the one audit log (docs/audit.md)


@dataclass(frozen=True)
class RecordAudit:
    """A record another service sent on gpufleet.audit.v1 (stored once per event id)."""

    event_id: UUID
    record: AuditRecord


@dataclass(frozen=True)
class RecordAudits:
    """A batch of consumed records, stored in one transaction (each once per event id)."""

    records: tuple[RecordAudit, ...]


@dataclass(frozen=True)
class ListAudit:
    """A tenant's question: ``query.organization_id`` is replaced by the caller's."""

    caller: Principal
    query: AuditQuery


@dataclass(frozen=True)
class ListAllAudit:
    """The operator's question; ``operator_token`` is what the caller presented."""

    query: AuditQuery
    operator_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PruneAudit:
    """Housekeeping: delete every organization's records older than ``retention_days``."""

    retention_days: int
    chunk: int = 10_000


Command = (
    Authenticate
    | AuthenticateKeys
    | CreateOrganization
    | GetOrganization
    | CreateApiKey
    | ListApiKeys
    | RevokeApiKey
    | CreateInvite
    | ListInvites
    | RevokeInvite
    | AcceptInvite
    | ListMembers
    | UpdateMember
    | RemoveMember
    | CreateProject
    | ListProjects
    | GetProject
    | UpdateProject
    | ArchiveProject
    | ListProjectMembers
    | GetProjectMember
    | SetProjectMember
    | RemoveProjectMember
    | ResolveProject
    | CreateOperator
    | ListOperators
    | RevokeOperator
    | RecordAudit
    | RecordAudits
    | ListAudit
    | ListAllAudit
    | PruneAudit
)
