"""Submission rules."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from services.scheduler.domain.spec import (
    IdempotencyKeyReused,
    check_cancel_reason,
    check_gpu_type,
    check_same_request,
    job_spec,
    request_fingerprint,
)
from shared.contracts import limits
from shared.errors import ErrorCode, InvalidArgument


def spec(**kw):
    base = {"command": "echo hi", "gpu_count": 1}
    base.update(kw)
    return job_spec(**base)


def test_defaults():
    s = spec()
    assert (s.priority, s.gpu_memory_mb, s.gpu_type, s.webhook_url, s.name, s.idempotency_key) == (
        50,
        0,
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"command": ""}, "command"),
        ({"command": "   "}, "command"),
        ({"command": "x" * (limits.MAX_COMMAND + 1)}, "command"),
        ({"command": "a\x00b"}, "command"),
        ({"gpu_count": 0}, "gpu_count"),
        ({"gpu_count": limits.MAX_GPUS + 1}, "gpu_count"),
        ({"gpu_count": -1}, "gpu_count"),
        ({"gpu_memory_mb": -5}, "gpu_memory_mb"),
        ({"gpu_memory_mb": limits.MAX_GPU_MEMORY_MB + 1}, "gpu_memory_mb"),
        ({"gpu_type": "t" * (limits.MAX_GPU_TYPE + 1)}, "gpu_type"),
        ({"priority": -1}, "priority"),
        ({"priority": limits.MAX_PRIORITY + 1}, "priority"),
        ({"webhook_url": "ftp://example.com/x"}, "webhook_url"),
        ({"webhook_url": "http://"}, "webhook_url"),
        ({"webhook_url": "example.com/hook"}, "webhook_url"),
        ({"webhook_url": "http://host:99999/x"}, "webhook_url"),
        ({"webhook_url": "http://exa mple.com/"}, "webhook_url"),
        ({"webhook_url": "https://user:pw@example.com/"}, "webhook_url"),
        ({"webhook_url": "https://example.com/" + "p" * limits.MAX_URL}, "webhook_url"),
        ({"name": "n" * (limits.MAX_JOB_NAME + 1)}, "name"),
        ({"idempotency_key": "k" * (limits.MAX_IDEMPOTENCY_KEY + 1)}, "idempotency_key"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ],
)
def test_bad_input_names_the_field(kw, field):
    with pytest.raises(InvalidArgument) as err:
        spec(**kw)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("kw", "attr", "value"),
    [
        ({"command": "x" * limits.MAX_COMMAND}, "gpu_count", 1),
        ({"gpu_count": limits.MAX_GPUS}, "gpu_count", limits.MAX_GPUS),
        ({"gpu_memory_mb": limits.MAX_GPU_MEMORY_MB}, "gpu_memory_mb", limits.MAX_GPU_MEMORY_MB),
        ({"priority": 0}, "priority", 0),
        ({"priority": limits.MAX_PRIORITY}, "priority", limits.MAX_PRIORITY),
        ({"priority": None}, "priority", limits.DEFAULT_PRIORITY),
        ({"idempotency_key": "k" * limits.MAX_IDEMPOTENCY_KEY}, "idempotency_key", "k" * 200),
        (
            {"webhook_url": "https://hooks.example.com/a?b=c"},
            "webhook_url",
            "https://hooks.example.com/a?b=c",
        ),
        ({"webhook_url": "http://127.0.0.1:8080/x"}, "webhook_url", "http://127.0.0.1:8080/x"),
        ({"gpu_type": " h100-80gb "}, "gpu_type", "h100-80gb"),
        ({"gpu_type": "   "}, "gpu_type", None),
        ({"webhook_url": ""}, "webhook_url", None),
    ],
)
def test_boundaries_accepted(kw, attr, value):
    assert getattr(spec(**kw), attr) == value


def test_gpu_type_must_be_in_the_catalog():
    check_gpu_type(spec(), frozenset())  # no type asked: nothing to check
    check_gpu_type(spec(gpu_type="h100-80gb"), frozenset({"h100-80gb"}))
    with pytest.raises(InvalidArgument) as err:
        check_gpu_type(spec(gpu_type="quantum-9000"), frozenset({"h100-80gb", "l40s"}))
    assert err.value.field == "gpu_type" and "h100-80gb, l40s" in err.value.message


def test_cancel_reason():
    assert check_cancel_reason(None) is None and check_cancel_reason("") is None
    assert check_cancel_reason("because") == "because"
    with pytest.raises(InvalidArgument):
        check_cancel_reason("r" * 501)


def test_fingerprint_is_sha256_of_the_canonical_request_without_the_key():
    s = spec(gpu_type="h100-80gb", priority=0, idempotency_key="k-1")
    canonical = json.dumps(
        {"command": "echo hi", "gpu_count": 1, "gpu_memory_mb": 0, "gpu_type": "h100-80gb", "priority": 0},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert request_fingerprint(s) == hashlib.sha256(canonical.encode()).hexdigest()
    assert request_fingerprint(s) == request_fingerprint(replace(s, idempotency_key="another"))


def test_fingerprint_is_pinned():
    # Stored fingerprints must keep matching after an upgrade: a change of the canonical form shows here.
    s = spec(
        gpu_count=2,
        gpu_memory_mb=1024,
        gpu_type="h100-80gb",
        priority=0,
        webhook_url="https://example.com/h",
        name="n",
        idempotency_key="k",
    )
    assert request_fingerprint(s) == "924733070607647834f85e621e1641cfe3fdf3e602ae4bc8b1ead401683b4248"


def test_equivalent_requests_share_a_fingerprint_and_different_ones_do_not():
    base = spec(idempotency_key="k")
    # Normalization first: the default priority, a padded type and empty strings are the same request.
    assert request_fingerprint(spec(priority=50)) == request_fingerprint(base)
    assert request_fingerprint(spec(gpu_type=" l40s ")) == request_fingerprint(spec(gpu_type="l40s"))
    assert request_fingerprint(spec(webhook_url="", name="")) == request_fingerprint(base)
    variants = [
        spec(command="echo bye"),
        spec(gpu_count=2),
        spec(gpu_memory_mb=1),
        spec(gpu_type="l40s"),
        spec(priority=0),
        spec(webhook_url="https://example.com/h"),
        spec(name="n"),
    ]
    prints = {request_fingerprint(v) for v in variants}
    assert len(prints) == len(variants) and request_fingerprint(base) not in prints


def test_check_same_request():
    first = spec(idempotency_key="k")
    check_same_request(first, request_fingerprint(first))
    with pytest.raises(IdempotencyKeyReused) as err:
        check_same_request(spec(command="other", idempotency_key="k"), request_fingerprint(first))
    assert err.value.code is ErrorCode.CONFLICT and err.value.field == "idempotency_key"
    assert "different request" in err.value.message
