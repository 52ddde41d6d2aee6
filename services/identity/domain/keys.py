"""API key secrets: generation, hashing and recognition. Pure functions, no storage.

The key's format (``gpf_`` + 40 random base62 characters + a 6-character CRC32 checksum) is defined
once in :mod:`shared.api_keys`, so every service refuses a mistyped key without asking identity.
Only the key's SHA-256 is stored, so a key is found by hashing what the caller presents and looking
the digest up: no stored secret is ever compared character by character, which makes the check
constant-time by design. Because the key is long and random, a plain (unsalted) hash is enough: there
is nothing to brute-force the way there is with a password. The first 12 characters are kept as
``prefix`` so that people can tell their keys apart in a list without the secret being shown again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from shared import api_keys

KEY_PREFIX = api_keys.PREFIX
KEY_LENGTH = api_keys.KEY_LENGTH
DISPLAY_PREFIX_LENGTH = 12


@dataclass(frozen=True)
class GeneratedKey:
    secret: str = field(repr=False)  # shown to its owner once, never stored nor logged
    prefix: str
    key_hash: str


def hash_key(secret: str) -> str:
    """The stored form of a key: SHA-256 of the whole key, lowercase hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:DISPLAY_PREFIX_LENGTH]


def well_formed(candidate: str) -> bool:
    """Whether ``candidate`` could be a key at all (either format); anything else is refused
    without a look-up."""
    return api_keys.well_formed(candidate)


def legacy(candidate: str) -> bool:
    """A key of the format issued before checksums (still accepted; see :mod:`shared.api_keys`)."""
    return api_keys.legacy(candidate)


def generate_key(new_secret: Callable[[], str] = api_keys.new_key) -> GeneratedKey:
    """A fresh key; ``new_secret`` is injectable so tests can pin the randomness."""
    secret = new_secret()
    if not api_keys.checksummed(secret):  # guards an injected source
        raise ValueError("generated key is malformed")
    return GeneratedKey(secret=secret, prefix=display_prefix(secret), key_hash=hash_key(secret))
