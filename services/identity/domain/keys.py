"""API key secrets: generation, hashing and recognition. Pure functions, no storage.

A key is ``gpf_`` followed by 40 URL-safe random characters (240 bits from ``secrets``). Only its
SHA-256 is stored, so a key is found by hashing what the caller presents and looking the digest up:
no stored secret is ever compared character by character, which makes the check constant-time by
design. Because the key is long and random, a plain (unsalted) hash is enough: there is nothing to
brute-force the way there is with a password. The first 12 characters are kept as ``prefix`` so that
people can tell their keys apart in a list without the secret being shown again.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field

KEY_PREFIX = "gpf_"
RANDOM_CHARS = 40
KEY_LENGTH = len(KEY_PREFIX) + RANDOM_CHARS
DISPLAY_PREFIX_LENGTH = 12
_RANDOM_BYTES = RANDOM_CHARS * 3 // 4  # base64 turns every 3 bytes into 4 characters, no padding here
_URLSAFE = frozenset(string.ascii_letters + string.digits + "-_")


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
    """Whether ``candidate`` could be a key at all; anything else is rejected without a lookup."""
    return (
        len(candidate) == KEY_LENGTH
        and candidate.startswith(KEY_PREFIX)
        and all(c in _URLSAFE for c in candidate[len(KEY_PREFIX) :])
    )


def generate_key(token_urlsafe: Callable[[int], str] = secrets.token_urlsafe) -> GeneratedKey:
    """A fresh key; ``token_urlsafe`` is injectable so tests can pin the randomness."""
    random_part = token_urlsafe(_RANDOM_BYTES)
    secret = KEY_PREFIX + random_part
    if not well_formed(secret):  # guards the length arithmetic above, and an injected source
        raise ValueError("generated key is malformed")
    return GeneratedKey(secret=secret, prefix=display_prefix(secret), key_hash=hash_key(secret))
