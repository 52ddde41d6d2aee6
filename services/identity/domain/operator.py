"""The operator: whoever holds the admin token may create organizations (tenants).

There is no operator account, only a shared secret from the settings; the comparison is constant-time
so that the time an answer takes tells nothing about how much of a guess was right."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OperatorToken:
    secret: str = field(repr=False)

    def admits(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(str(presented).encode(), self.secret.encode())


@dataclass(frozen=True)
class OperatorPrincipal:
    """What ``Authenticate`` answers for the operator token: no organization, user, role or scopes.
    Services that offer operator calls ask for it (``shared.grpc.Authenticator.operator``); every
    tenant path refuses it, since it has no organization to act in."""


OPERATOR = OperatorPrincipal()
