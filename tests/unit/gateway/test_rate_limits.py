"""A limit's refusal as REST says it: 429 problem, Retry-After, and the IETF RateLimit-Policy/RateLimit
headers rendered from the scheduler's RESOURCE_EXHAUSTED trailers."""

from __future__ import annotations

import grpc
import httpx
import pytest
from fastapi import FastAPI

from services.gateway.domain import problems, rate_limits
from services.gateway.entrypoints import errors
from shared.errors import ResourceExhausted


def rate_refusal(retry_after_s: float = 0.4) -> ResourceExhausted:
    return ResourceExhausted(
        "this organization may submit 1 jobs a second in bursts of at most 5 on the free plan",
        limit="submits",
        quota=5,
        remaining=0,
        retry_after_s=retry_after_s,
        window_s=5,
    )


def queue_refusal() -> ResourceExhausted:
    return ResourceExhausted(
        "this organization has reached its cap of 10 queued jobs",
        limit="queued_jobs",
        quota=10,
        remaining=0,
        retry_after_s=10,
    )


def test_a_rate_refusal_renders_policy_remaining_and_reset():
    assert rate_limits.headers(dict(rate_refusal().trailers())) == {
        "Retry-After": "1",  # whole seconds, rounded up
        "RateLimit-Policy": '"submits";q=5;w=5',
        "RateLimit": '"submits";r=0;t=1',
    }
    assert rate_limits.headers(dict(rate_refusal(2.2).trailers()))["Retry-After"] == "3"


def test_a_queue_refusal_has_no_window():
    assert rate_limits.headers(dict(queue_refusal().trailers())) == {
        "Retry-After": "10",
        "RateLimit-Policy": '"queued_jobs";q=10',
        "RateLimit": '"queued_jobs";r=0',
    }


@pytest.mark.parametrize(
    "trailers",
    [
        {},
        {"gpufleet-limit": "submits"},
        {"gpufleet-limit": 'x";evil', "gpufleet-limit-quota": "5", "gpufleet-limit-remaining": "0"},
        {"gpufleet-limit": "submits", "gpufleet-limit-quota": "-5", "gpufleet-limit-remaining": "0"},
        {"retry-after-ms": "soon"},
    ],
)
def test_anything_malformed_is_left_out(trailers):
    assert rate_limits.headers(trailers) == {}


def test_resource_exhausted_is_429():
    assert problems.for_grpc_status("RESOURCE_EXHAUSTED") is problems.TOO_MANY_REQUESTS
    assert problems.TOO_MANY_REQUESTS.status == 429 and problems.TOO_MANY_REQUESTS.exposes_detail


def _app(exc: Exception) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.post("/v1/jobs")
    async def submit() -> None:
        raise exc

    return app


async def _post(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        return await http.post("/v1/jobs")


async def test_the_schedulers_refusal_becomes_a_429_problem_with_its_headers():
    refusal = rate_refusal()
    upstream = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*refusal.trailers()),
        details=refusal.message,
    )
    r = await _post(_app(upstream))
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "1"
    assert r.headers["ratelimit-policy"] == '"submits";q=5;w=5'
    assert r.headers["ratelimit"] == '"submits";r=0;t=1'
    body = r.json()
    assert body["type"].endswith("/too-many-requests") and body["status"] == 429
    assert body["detail"] == refusal.message


async def test_a_local_refusal_renders_the_same_way():
    r = await _post(_app(queue_refusal()))
    assert r.status_code == 429 and r.headers["retry-after"] == "10"
    assert r.headers["ratelimit"] == '"queued_jobs";r=0'
