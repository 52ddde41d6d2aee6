"""Organizations, users, memberships and API keys, with the rules on who may do what.

Plain Python: validation of names, emails, scopes and lifetimes; the state of a key (usable, revoked,
worth recording a use); and the role rules a :class:`Principal` is held to. Errors are the shared
domain errors so the entrypoints render them without translating.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from shared import scopes as scope_table
from shared.contracts import limits
from shared.errors import InvalidArgument, PermissionDenied

from .keys import GeneratedKey, generate_key


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def manages_keys(self) -> bool:
        return self in (Role.OWNER, Role.ADMIN)

    @property
    def holds_every_project(self) -> bool:
        """Owners and admins hold every project of their organization (docs/projects.md)."""
        return self in (Role.OWNER, Role.ADMIN)


class ProjectRole(StrEnum):
    """A user's role in one project (seed 004)."""

    OWNER = "owner"
    CONTRIBUTOR = "contributor"
    VIEWER = "viewer"

    @property
    def writes(self) -> bool:
        """Submits into the project and changes its jobs (and binds keys to it)."""
        return self in (ProjectRole.OWNER, ProjectRole.CONTRIBUTOR)


class AuthOutcome(StrEnum):
    """How an authentication ended. Callers only ever hear "invalid API key"; operators see which."""

    OK = "ok"
    MALFORMED = "malformed"  # could not be a key at all: no lookup was made
    INVALID = "invalid"  # no such key, or its owner is no longer a member of its organization
    EXPIRED = "expired"
    REVOKED = "revoked"
    OPERATOR = "operator"  # the operator token, presented where an operator principal is accepted


ADMIN_SCOPE = scope_table.ADMIN
KEYS_WRITE_SCOPE = scope_table.KEYS_WRITE
SCOPES: tuple[str, ...] = limits.KEY_SCOPES
DEFAULT_KEY_NAME = "default"
MAX_KEY_LIFETIME = timedelta(seconds=limits.MAX_KEY_LIFETIME_SECONDS)
# Authentication records a key's use at most this often: a busy key must not cost a write per call.
USE_RECORDING_INTERVAL = timedelta(seconds=60)

ORGANIZATION_NAME_MAX = 200
PERSON_NAME_MAX = 200
KEY_NAME_MAX = limits.MAX_KEY_NAME
EMAIL_MAX = 254  # RFC 5321 path limit
# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is not ours to judge.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(raw: str, field_name: str, label: str, maximum: int, *, required: bool = True) -> str:
    value = raw.strip()
    if not value and required:
        raise InvalidArgument(f"{label} is required", field=field_name)
    if len(value) > maximum:
        raise InvalidArgument(f"{label} must be at most {maximum} characters", field=field_name)
    if _CONTROL.search(value):
        raise InvalidArgument(f"{label} must not contain control characters", field=field_name)
    return value


def organization_name(raw: str) -> str:
    return _text(raw, "name", "organization name", ORGANIZATION_NAME_MAX)


def person_name(raw: str, field_name: str = "owner_name") -> str | None:
    label = "owner name" if field_name == "owner_name" else "name"
    return _text(raw, field_name, label, PERSON_NAME_MAX, required=False) or None


def key_name(raw: str) -> str:
    return _text(raw, "name", "API key name", KEY_NAME_MAX)


def email_address(raw: str, field_name: str = "owner_email") -> str:
    """Trimmed and lowercased: one person, one user, however they capitalise their address."""
    value = raw.strip().lower()
    if not value:
        raise InvalidArgument("email is required", field=field_name)
    if len(value) > EMAIL_MAX or not _EMAIL.match(value):
        raise InvalidArgument("email is not a valid address", field=field_name)
    return value


def requested_scopes(raw: Iterable[str]) -> tuple[str, ...]:
    """Sorted and de-duplicated; none requested means every scope (see ``Principal.scopes_to_grant``
    for a key minted by a restricted key)."""
    requested = list(raw)
    if len(requested) > limits.MAX_KEY_SCOPES:
        raise InvalidArgument(f"at most {limits.MAX_KEY_SCOPES} scopes may be requested", field="scopes")
    wanted = set(requested)
    unknown = wanted - set(SCOPES)
    if unknown:
        raise InvalidArgument(
            f"unknown scope(s) {', '.join(sorted(unknown))}; known: {', '.join(SCOPES)}", field="scopes"
        )
    return tuple(sorted(wanted)) if wanted else SCOPES


def key_lifetime(expires_in_seconds: int) -> timedelta | None:
    """0 means the key never expires."""
    if expires_in_seconds < 0:
        raise InvalidArgument("expires_in_seconds must not be negative", field="expires_in_seconds")
    lifetime = timedelta(seconds=expires_in_seconds)
    if lifetime > MAX_KEY_LIFETIME:
        raise InvalidArgument(
            f"expires_in_seconds must be at most {int(MAX_KEY_LIFETIME.total_seconds())}",
            field="expires_in_seconds",
        )
    return lifetime or None


@dataclass(frozen=True)
class Organization:
    id: UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class User:
    id: UUID
    email: str
    name: str | None


@dataclass(frozen=True)
class Membership:
    user_id: UUID
    organization_id: UUID
    role: Role


@dataclass(frozen=True)
class ApiKey:
    id: UUID
    organization_id: UUID
    user_id: UUID
    name: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    last_used: datetime | None = None
    revoked_at: datetime | None = None
    project_id: UUID | None = None  # the project the key is bound to (docs/projects.md)

    def refusal_at(self, now: datetime) -> AuthOutcome | None:
        """Why the key cannot be used at ``now`` (None: it can); revocation wins over expiry."""
        if self.revoked_at is not None:
            return AuthOutcome.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return AuthOutcome.EXPIRED
        return None

    def usable_at(self, now: datetime) -> bool:
        return self.refusal_at(now) is None

    def use_worth_recording(self, now: datetime) -> bool:
        return self.last_used is None or now - self.last_used >= USE_RECORDING_INTERVAL

    def revoked(self, now: datetime) -> ApiKey:
        """The key revoked at ``now``; a key revoked before keeps its first revocation time."""
        return self if self.revoked_at is not None else replace(self, revoked_at=now)


def issue_key(
    organization_id: UUID,
    user_id: UUID,
    name: str,
    scopes: tuple[str, ...],
    now: datetime,
    lifetime: timedelta | None = None,
    generate: Callable[[], GeneratedKey] = generate_key,
    project_id: UUID | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (the only time the secret exists outside the caller's hands)."""
    generated = generate()
    key = ApiKey(
        id=uuid4(),
        organization_id=organization_id,
        user_id=user_id,
        name=name,
        prefix=generated.prefix,
        key_hash=generated.key_hash,
        scopes=scopes,
        created_at=now,
        expires_at=now + lifetime if lifetime else None,
        project_id=project_id,
    )
    return key, generated.secret


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's organization, its owner and the owner's role there, and what the
    key itself is limited to (its scopes, its expiry and the project it is bound to). ``project_roles``:
    the owner's roles in the organization's projects (empty for owners and admins, who hold them all)."""

    organization_id: UUID
    user_id: UUID
    role: Role
    api_key_id: UUID
    scopes: tuple[str, ...]
    expires_at: datetime | None = None
    project_id: UUID | None = None
    project_roles: tuple[tuple[UUID, ProjectRole], ...] = ()

    @property
    def _manages_keys(self) -> bool:
        return KEYS_WRITE_SCOPE in scope_table.granted(self.scopes)

    def require_key_scope(self) -> None:
        """Creating any key needs a key that carries ``keys:write`` (or ``admin``)."""
        if not self._manages_keys:
            raise PermissionDenied(f"this API key lacks the {KEYS_WRITE_SCOPE} scope")

    def require_key_manager(self) -> None:
        """Creating keys hands out access: owners and admins only, with a key that carries
        ``keys:write`` (or ``admin``)."""
        if not self.role.manages_keys:
            raise PermissionDenied(f"the {self.role} role cannot create API keys")
        if not self._manages_keys:
            raise PermissionDenied(f"this API key lacks the {KEYS_WRITE_SCOPE} scope")

    def scopes_to_grant(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        """What a key this caller creates gets: the scopes requested, or, when none are, everything
        the caller's own key amounts to (every scope for an unrestricted or admin key)."""
        wanted = requested_scopes(requested)
        if requested:
            return wanted
        return tuple(sorted(scope_table.granted(self.scopes))) if self._restricted else wanted

    @property
    def _restricted(self) -> bool:
        return bool(self.scopes) and ADMIN_SCOPE not in self.scopes

    def require_grantable(self, scopes: Iterable[str]) -> None:
        """A key cannot create a key stronger than itself."""
        missing = scope_table.missing(self.scopes, scopes)
        if missing:
            raise PermissionDenied(
                f"this API key cannot grant scope(s) it lacks: {', '.join(sorted(missing))}"
            )

    def require_outlived_by(self, lifetime: timedelta | None, now: datetime) -> None:
        """An expiring key cannot mint a key that outlives it (else expiry would be escapable)."""
        if self.expires_at is None:
            return
        left = int((self.expires_at - now).total_seconds())
        if lifetime is None or now + lifetime > self.expires_at:
            raise PermissionDenied(
                f"this API key expires at {self.expires_at.isoformat()}; a key it creates cannot "
                f"outlive it: set expires_in_seconds to at most {max(left, 0)}",
                field="expires_in_seconds",
            )

    def require_may_revoke(self, key: ApiKey) -> None:
        """Anyone may give up their own keys; other people's keys need a key manager. A project-bound key
        touches only keys bound to its own project (docs/projects.md)."""
        if self.project_id is not None and key.project_id != self.project_id:
            raise PermissionDenied("a project-bound API key may only revoke keys bound to its project")
        if key.user_id == self.user_id:
            return
        if not self.role.manages_keys or not self._manages_keys:
            raise PermissionDenied("only owners and admins may revoke other users' API keys")


@dataclass(frozen=True)
class AuditEntry:
    organization_id: UUID
    action: str
    target_type: str
    target_id: str
    actor_user_id: UUID | None = None  # None: an operator
    actor_api_key_id: UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)
    actor_operator: str | None = None  # which operator (None: a member acted)

    @classmethod
    def by(
        cls, principal: Principal, action: str, target_type: str, target_id: object, **details: Any
    ) -> AuditEntry:
        return cls(
            principal.organization_id,
            action,
            target_type,
            str(target_id),
            principal.user_id,
            principal.api_key_id,
            details,
        )

    @classmethod
    def by_operator(
        cls,
        organization_id: UUID,
        action: str,
        target_type: str,
        target_id: object,
        *,
        operator: str = "admin",
        **details: Any,
    ) -> AuditEntry:
        """``operator``: the operator's name (``admin``: the bootstrap operator)."""
        return cls(
            organization_id, action, target_type, str(target_id), details=details, actor_operator=operator
        )
