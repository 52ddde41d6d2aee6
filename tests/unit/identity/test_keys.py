"""API key generation, hashing and recognition (the format itself: tests/unit/shared/test_scopes.py)."""

from __future__ import annotations

import hashlib

import pytest

from services.identity.domain.keys import (
    KEY_LENGTH,
    display_prefix,
    generate_key,
    hash_key,
    legacy,
    well_formed,
)
from shared import api_keys


def test_generated_key_has_the_documented_shape() -> None:
    key = generate_key()
    assert key.secret.startswith("gpf_") and len(key.secret) == KEY_LENGTH == 50
    assert well_formed(key.secret) and api_keys.checksummed(key.secret) and not legacy(key.secret)
    assert key.prefix == key.secret[:12]
    assert key.key_hash == hashlib.sha256(key.secret.encode()).hexdigest()


def test_generated_keys_differ() -> None:
    assert len({generate_key().secret for _ in range(50)}) == 50


def test_secret_stays_out_of_repr() -> None:
    key = generate_key()
    assert key.secret not in repr(key)


def test_hash_is_sha256_hex_of_the_whole_key() -> None:
    assert hash_key("gpf_abc") == hashlib.sha256(b"gpf_abc").hexdigest()
    assert hash_key("gpf_abc") != hash_key("gpf_abd")
    assert display_prefix("gpf_0123456789abcdef") == "gpf_01234567"


def test_injected_randomness_is_used_and_checked() -> None:
    pinned = api_keys.compose("A" * 40)
    assert generate_key(lambda: pinned).secret == pinned
    with pytest.raises(ValueError):
        generate_key(lambda: "gpf_" + "A" * 40)  # the legacy shape is never issued
    with pytest.raises(ValueError):
        generate_key(lambda: pinned[:-1] + ("0" if pinned[-1] != "0" else "1"))


def test_keys_issued_before_checksums_are_still_recognised() -> None:
    old = "gpf_" + "Ab-_" * 10
    assert well_formed(old) and legacy(old)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "gpf_",
        "gpf_" + "a" * 39,
        "gpf_" + "a" * 41,
        "xyz_" + "a" * 40,
        "gpf_" + "a" * 39 + "=",
        "gpf_" + "a" * 39 + " ",
        "GPF_" + "a" * 40,
        "gpf_" + "a" * 46,  # the new length without a matching checksum
    ],
)
def test_malformed_candidates_are_recognised(candidate: str) -> None:
    assert not well_formed(candidate)
