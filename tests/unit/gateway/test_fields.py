from __future__ import annotations

import pytest

from services.gateway.domain.fields import field_message, field_name


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        (("body", "gpu_count"), "gpu_count"),
        (("body", "events", 0), "events[0]"),
        (("query", "limit"), "limit"),
        (("body",), None),
        (("body", "a", "b"), "a.b"),
        (("header", "idempotency-key"), "idempotency-key"),
    ],
)
def test_field_name(loc, expected):
    assert field_name(loc) == expected


def test_field_messages():
    assert field_message("extra_forbidden", "Extra inputs are not permitted") == "unknown field"
    assert field_message("missing", "Field required") == "field required"
    assert field_message("int_type", "Input should be a valid integer") == "Input should be a valid integer"
