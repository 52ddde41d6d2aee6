"""Submission rules."""

from __future__ import annotations

import pytest

from services.scheduler.domain.spec import check_cancel_reason, check_gpu_type, job_spec
from shared.errors import InvalidArgument


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
        ({"command": "x" * 10_001}, "command"),
        ({"command": "a\x00b"}, "command"),
        ({"gpu_count": 0}, "gpu_count"),
        ({"gpu_count": 17}, "gpu_count"),
        ({"gpu_count": -1}, "gpu_count"),
        ({"gpu_memory_mb": -5}, "gpu_memory_mb"),
        ({"priority": -1}, "priority"),
        ({"priority": 101}, "priority"),
        ({"webhook_url": "ftp://example.com/x"}, "webhook_url"),
        ({"webhook_url": "http://"}, "webhook_url"),
        ({"webhook_url": "example.com/hook"}, "webhook_url"),
        ({"webhook_url": "http://host:99999/x"}, "webhook_url"),
        ({"webhook_url": "http://exa mple.com/"}, "webhook_url"),
        ({"name": "n" * 201}, "name"),
        ({"idempotency_key": "k" * 201}, "idempotency_key"),
    ],
)
def test_bad_input_names_the_field(kw, field):
    with pytest.raises(InvalidArgument) as err:
        spec(**kw)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("kw", "attr", "value"),
    [
        ({"command": "x" * 10_000}, "gpu_count", 1),
        ({"gpu_count": 16}, "gpu_count", 16),
        ({"priority": 0}, "priority", 0),
        ({"priority": 100}, "priority", 100),
        ({"priority": None}, "priority", 50),
        (
            {"webhook_url": "https://hooks.example.com/a?b=c"},
            "webhook_url",
            "https://hooks.example.com/a?b=c",
        ),
        ({"webhook_url": "http://127.0.0.1:8080/x"}, "webhook_url", "http://127.0.0.1:8080/x"),
        ({"gpu_type": " h100-80gb "}, "gpu_type", "h100-80gb"),
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
