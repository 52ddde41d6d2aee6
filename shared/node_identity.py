"""What node agents' secrets look like, recognised without any look-up (fleet issues them).

Two kinds, both in the API keys' format (:mod:`shared.api_keys`: a prefix, 40 random base62 characters,
a 6-character base62 CRC32 of what comes before; 51 characters, only ``[0-9A-Za-z_]``):

* ``gpfj_…`` a **join token**: created by an operator, used once by an agent's first registration;
* ``gpfn_…`` a **node credential**: issued by fleet to one node in exchange for a join token, presented
  by that node's agent on every call from then on (to fleet and to the scheduler).

Only SHA-256 hashes of either are stored (:func:`digest`). The checksum protects nothing: it lets a
typo be refused without a database look-up and lets secret scanners recognise a leaked one
(:data:`SCANNER_PATTERN`). The prefixes differ from the API keys' ``gpf_``, so no string is ever both an
API key and an agent's secret: the agent RPCs refuse API keys and the operator token by shape.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from shared.api_keys import BASE62, CHECKSUM_CHARS, RANDOM_CHARS, checksum

JOIN_TOKEN_PREFIX = "gpfj_"
CREDENTIAL_PREFIX = "gpfn_"
LENGTH = len(JOIN_TOKEN_PREFIX) + RANDOM_CHARS + CHECKSUM_CHARS
SCANNER_PATTERN = r"\bgpf[jn]_[0-9A-Za-z]{46}\b"
_BASE62 = frozenset(BASE62)


def _new(prefix: str, choice: Callable[[str], str]) -> str:
    body = prefix + "".join(choice(BASE62) for _ in range(RANDOM_CHARS))
    return body + checksum(body)


def new_join_token(choice: Callable[[str], str] = secrets.choice) -> str:
    return _new(JOIN_TOKEN_PREFIX, choice)


def new_credential(choice: Callable[[str], str] = secrets.choice) -> str:
    return _new(CREDENTIAL_PREFIX, choice)


def _well_formed(candidate: str, prefix: str) -> bool:
    if len(candidate) != LENGTH or not candidate.startswith(prefix):
        return False
    body, check = candidate[:-CHECKSUM_CHARS], candidate[-CHECKSUM_CHARS:]
    return set(candidate[len(prefix) :]) <= _BASE62 and checksum(body) == check


def is_join_token(candidate: str) -> bool:
    """A join token's shape with a matching checksum."""
    return _well_formed(candidate, JOIN_TOKEN_PREFIX)


def is_credential(candidate: str) -> bool:
    """A node credential's shape with a matching checksum."""
    return _well_formed(candidate, CREDENTIAL_PREFIX)


def digest(secret: str) -> bytes:
    """What is stored and looked up: the SHA-256 of the whole secret (random enough for no salt)."""
    return hashlib.sha256(secret.encode()).digest()
