"""Bodies over MAX_REQUEST_BODY_BYTES are a 413 problem, with or without a Content-Length."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from shared.contracts.limits import MAX_REQUEST_BODY_BYTES
from tests.integration.gateway.test_errors import assert_problem

pytestmark = pytest.mark.integration

CHUNK = 8 * 1024
JSON = {"content-type": "application/json"}


def padded_job(size: int) -> bytes:
    """A valid job body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    body = json.dumps({"command": "echo hi"}).encode()
    return body + b" " * (size - len(body))


class Chunks:
    """A body sent in chunks without a Content-Length (httpx sends it chunked), counting what was read."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), CHUNK):
            self.sent += 1
            yield self.body[start : start + CHUNK]


async def test_a_body_at_the_limit_is_accepted(api, rec):
    r = await api.post("/v1/jobs", content=padded_job(MAX_REQUEST_BODY_BYTES), headers=JSON)
    assert r.status_code == 201, r.text
    assert rec.of("SubmitJob")[0].request.command == "echo hi"


async def test_a_declared_length_over_the_limit_is_refused_before_reading(api, rec):
    r = await api.post("/v1/jobs", content=padded_job(MAX_REQUEST_BODY_BYTES + 1), headers=JSON)
    assert r.request.headers["content-length"] == str(MAX_REQUEST_BODY_BYTES + 1)
    problem = assert_problem(r, 413, "request-too-large")
    assert str(MAX_REQUEST_BODY_BYTES) in problem["detail"]
    assert rec.calls == []


async def test_a_chunked_body_within_the_limit_is_accepted(api, rec):
    chunks = Chunks(padded_job(MAX_REQUEST_BODY_BYTES))
    r = await api.post("/v1/jobs", content=chunks, headers=JSON)
    assert "content-length" not in r.request.headers
    assert r.status_code == 201, r.text


async def test_a_chunked_body_over_the_limit_is_refused_while_streaming(api, rec):
    chunks = Chunks(padded_job(10 * MAX_REQUEST_BODY_BYTES))
    r = await api.post("/v1/jobs", content=chunks, headers=JSON)
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_problem(r, 413, "request-too-large")
    assert rec.calls == []
    # Reading stopped at the first chunk past the limit: the rest was never taken in.
    assert chunks.sent == MAX_REQUEST_BODY_BYTES // CHUNK + 1


async def test_a_body_too_large_on_an_unknown_route_is_still_413(api):
    # The limit is the gateway's, before routing: nothing large is read anywhere.
    assert_problem(
        await api.post("/v1/nothing", content=b"x" * (MAX_REQUEST_BODY_BYTES + 1)), 413, "request-too-large"
    )
