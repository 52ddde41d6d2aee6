"""What an API key looks like, recognised without any look-up (identity issues keys; every service that
resolves one refuses a malformed key before asking identity).

The format follows GitHub's (2021) token format::

    gpf_ <40 random base62 characters> <6 base62 characters: CRC32 of everything before them>

50 characters in all, only ``[0-9A-Za-z_]``, so a double click selects the whole key. The 40 random
characters carry 238 bits from :mod:`secrets`. The checksum is not a secret and protects nothing: it
lets a typo or a truncated paste be refused at once, without a database look-up, and it lets a secret
scanner tell a real key from a random string that happens to start with ``gpf_`` (it can verify the
checksum offline, so false positives are rare). The pattern for scanners is :data:`SCANNER_PATTERN`.

Keys issued before the checksum (``gpf_`` + 40 URL-safe base64 characters, 44 in all) keep working
until they expire or are revoked: identity counts their use
(``gpufleet_identity_legacy_key_authentications_total``) and the old shape will be refused only from a
release announced once that counter has stayed at zero for 90 days. No new key is issued in that shape.
"""

from __future__ import annotations

import secrets
import string
import zlib
from collections.abc import Callable

PREFIX = "gpf_"
RANDOM_CHARS = 40
CHECKSUM_CHARS = 6  # 62**6 > 2**32: any CRC32 fits
KEY_LENGTH = len(PREFIX) + RANDOM_CHARS + CHECKSUM_CHARS
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE62 = frozenset(BASE62)

LEGACY_KEY_LENGTH = len(PREFIX) + 40
_URLSAFE = frozenset(string.ascii_letters + string.digits + "-_")

# For secret scanners (GitHub push protection custom patterns, gitleaks, trufflehog): the current
# format, and the legacy one. A match of SCANNER_PATTERN can be confirmed with :func:`well_formed`.
SCANNER_PATTERN = r"\bgpf_[0-9A-Za-z]{46}\b"
LEGACY_SCANNER_PATTERN = r"(?<![0-9A-Za-z_-])gpf_[0-9A-Za-z_-]{40}(?![0-9A-Za-z_-])"


def checksum(body: str) -> str:
    """The 6-character base62 CRC32 of ``body`` (the prefix and the random part), zero-padded."""
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(CHECKSUM_CHARS):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def compose(random_part: str) -> str:
    """The key for ``random_part``: prefix, random part, checksum. Raises ValueError for a bad part."""
    if len(random_part) != RANDOM_CHARS or not set(random_part) <= _BASE62:
        raise ValueError(f"the random part must be {RANDOM_CHARS} base62 characters")
    body = PREFIX + random_part
    return body + checksum(body)


def new_key(choice: Callable[[str], str] = secrets.choice) -> str:
    """A fresh key; ``choice`` is injectable so that tests can pin the randomness."""
    return compose("".join(choice(BASE62) for _ in range(RANDOM_CHARS)))


def checksummed(candidate: str) -> bool:
    """Whether ``candidate`` is a key of the current format with a matching checksum."""
    if len(candidate) != KEY_LENGTH or not candidate.startswith(PREFIX):
        return False
    body, check = candidate[:-CHECKSUM_CHARS], candidate[-CHECKSUM_CHARS:]
    return set(candidate[len(PREFIX) :]) <= _BASE62 and checksum(body) == check


def legacy(candidate: str) -> bool:
    """Whether ``candidate`` has the shape of a key issued before checksums."""
    return (
        len(candidate) == LEGACY_KEY_LENGTH
        and candidate.startswith(PREFIX)
        and set(candidate[len(PREFIX) :]) <= _URLSAFE
    )


def well_formed(candidate: str) -> bool:
    """Whether ``candidate`` could be a key at all; anything else is refused without a look-up."""
    return checksummed(candidate) or legacy(candidate)
