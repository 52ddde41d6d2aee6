"""Page size and cursor rules of ListJobCosts (pure functions; no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.billing.service_layer.handlers import DEFAULT_PAGE, decode_cursor, encode_cursor, page_size
from shared.errors import InvalidArgument


def test_page_size_defaults_and_bounds() -> None:
    assert page_size(0) == DEFAULT_PAGE
    assert (page_size(1), page_size(200)) == (1, 200)
    for bad in (-1, 201):
        with pytest.raises(InvalidArgument) as err:
            page_size(bad)
        assert err.value.field == "limit"


def test_cursor_round_trips_time_and_job() -> None:
    at, job = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(at, job)) == (at, job)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "bm8tYmFy",  # base64 of "no-bar": no separator
        "w6k=",  # base64 of a lone non-ASCII letter
        encode_cursor(datetime(2026, 1, 1), uuid.uuid4()),  # a time without a zone: never one we issue
    ],
)
def test_a_cursor_this_api_did_not_issue_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        decode_cursor(cursor)
    assert err.value.field == "cursor"
