"""What identity's handlers depend on (ports), and the results several handler modules share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..domain.model import ApiKey, AuthOutcome, Role
from .unit_of_work import UnitOfWorkFactory


class OperatorGate(Protocol):
    def admits(self, presented: str | None) -> bool:
        """Whether ``presented`` is the bootstrap operator's credential."""


class IdentityMetrics(Protocol):
    def count_authentication(self, outcome: AuthOutcome) -> None:
        """Told how every authentication ended; the caller itself only ever learns ok or not."""

    def count_legacy_key(self) -> None:
        """Told of every successful authentication with a key of the format before checksums."""


@dataclass(frozen=True)
class InviteMail:
    to: str
    organization_name: str
    role: Role
    token: str = field(repr=False)
    expires_at: datetime


class Mailer(Protocol):
    async def send_invite(self, mail: InviteMail) -> bool:
        """Hand the invite to the mail server; False when it could not (or no server is configured).
        Never raises: the invite exists and its token went back to the inviter either way."""


class NoMailer:
    """No SMTP server configured: invites are passed on by the inviter."""

    async def send_invite(self, mail: InviteMail) -> bool:
        return False


@dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    operator: OperatorGate
    metrics: IdentityMetrics
    mailer: Mailer = field(default_factory=NoMailer)


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str = field(repr=False)


def key_details(key: ApiKey) -> dict:
    details = {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
    }
    if key.project_id is not None:  # a project-bound key (docs/projects.md)
        details["project_id"] = str(key.project_id)
    return details
