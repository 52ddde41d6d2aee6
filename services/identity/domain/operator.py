"""Operators: the people who run the fleet (create organizations, set the scheduling policy).

Each operator is a named principal with a token of its own, so that every audit can say which operator
did what. Two kinds:

* the **bootstrap operator**, named ``admin``: whoever holds ``GPUFLEET_ADMIN_TOKEN`` (a shared secret
  from the settings, compared in constant time so that the time an answer takes tells nothing about
  how much of a guess was right). It is how the first named operators are made.
* **named operators**, rows of identity's ``operators`` table, created by an operator: a ``gpo_``
  token whose SHA-256 alone is stored (found by hashing what is presented, like API keys, so the look-up
  is constant-time by design), revocable.

An operator token is never key-shaped (``gpf_``), so an API key can never become an operator."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID, uuid4

from shared.api_keys import BASE62
from shared.contracts import limits
from shared.errors import InvalidArgument

BOOTSTRAP_NAME = "admin"
TOKEN_PREFIX = "gpo_"
TOKEN_RANDOM_CHARS = 43  # 256 bits of base62
DISPLAY_PREFIX_LENGTH = 12
_NAME = re.compile(limits.OPERATOR_NAME_PATTERN)
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}[0-9A-Za-z]{{{TOKEN_RANDOM_CHARS}}}$")


@dataclass(frozen=True)
class OperatorToken:
    """The bootstrap operator's secret (``GPUFLEET_ADMIN_TOKEN``)."""

    secret: str = field(repr=False)

    def admits(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(str(presented).encode(), self.secret.encode())


@dataclass(frozen=True)
class OperatorPrincipal:
    """What ``Authenticate`` answers for an operator token: a name, and no organization, user, role or
    scopes. Services that offer operator calls ask for it (``shared.grpc.Authenticator.operator``); every
    tenant path refuses it, since it has no organization to act in."""

    name: str = BOOTSTRAP_NAME
    operator_id: UUID | None = None  # None: the bootstrap operator (not a row)


OPERATOR = OperatorPrincipal()  # the bootstrap operator


@dataclass(frozen=True)
class NamedOperator:
    id: UUID
    name: str
    prefix: str
    token_hash: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> OperatorPrincipal:
        return OperatorPrincipal(name=self.name, operator_id=self.id)

    def revoked(self, by: str, now: datetime) -> NamedOperator:
        """Revoked at ``now`` by ``by``; an operator revoked before keeps its first revocation."""
        return self if self.revoked_at is not None else replace(self, revoked_at=now, revoked_by=by)


def operator_name(raw: str) -> str:
    value = raw.strip()
    if value == BOOTSTRAP_NAME:
        raise InvalidArgument(
            f'"{BOOTSTRAP_NAME}" is the bootstrap operator (GPUFLEET_ADMIN_TOKEN); choose another name',
            field="name",
        )
    if not _NAME.match(value):
        raise InvalidArgument(
            "an operator name is 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
            field="name",
        )
    return value


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_shaped(candidate: str | None) -> bool:
    """Whether ``candidate`` could be a named operator's token (anything else is refused unlooked-up)."""
    return bool(candidate) and _TOKEN.match(str(candidate)) is not None


def new_token() -> str:
    return TOKEN_PREFIX + "".join(secrets.choice(BASE62) for _ in range(TOKEN_RANDOM_CHARS))


def issue_operator(
    name: str, created_by: str, now: datetime, new_secret: Callable[[], str] = new_token
) -> tuple[NamedOperator, str]:
    """A new named operator and its token (the only time the token exists outside the caller's hands)."""
    secret = new_secret()
    if not token_shaped(secret):  # guards an injected source
        raise ValueError("generated operator token is malformed")
    return (
        NamedOperator(
            id=uuid4(),
            name=name,
            prefix=secret[:DISPLAY_PREFIX_LENGTH],
            token_hash=hash_token(secret),
            created_by=created_by,
            created_at=now,
        ),
        secret,
    )
