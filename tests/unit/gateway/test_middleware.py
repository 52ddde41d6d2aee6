"""The gateway's ASGI middleware against tiny ASGI apps: no server, no network."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from services.gateway.entrypoints.middleware import BodySizeLimitMiddleware, HttpMetricsMiddleware

LIMIT = 100


def scope(headers: list[tuple[bytes, bytes]] | None = None, path: str = "/v1/things") -> dict:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or [], "query_string": b""}


def body_of(chunks: list[bytes]) -> Callable[[], Awaitable[dict]]:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    taken = {"n": 0}

    async def receive() -> dict:
        taken["n"] += 1
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    receive.taken = taken  # type: ignore[attr-defined]
    return receive


class Sent(list):
    async def __call__(self, message: dict) -> None:
        self.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self if m["type"] == "http.response.start")

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self if m["type"] == "http.response.body")


async def echo_length(scope, receive, send) -> None:
    """Reads the whole body, then answers 200 with its length (or 400 when reading failed, like
    FastAPI's body parsing does with an error it does not know)."""
    size = 0
    try:
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
    except Exception:
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"parse error"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.mark.parametrize("chunks", [[b"x" * LIMIT], [b"x" * 60, b"x" * 40], []])
async def test_bodies_up_to_the_limit_pass(chunks):
    sent = Sent()
    await BodySizeLimitMiddleware(echo_length, LIMIT)(scope(), body_of(chunks or [b""]), sent)
    assert sent.status == 200 and sent.body == str(sum(map(len, chunks))).encode()


async def test_a_declared_length_over_the_limit_is_refused_without_running_the_app():
    ran = []

    async def app(scope, receive, send):
        ran.append(True)

    sent, receive = Sent(), body_of([b"x" * (LIMIT + 1)])
    await BodySizeLimitMiddleware(app, LIMIT)(scope([(b"content-length", b"101")]), receive, sent)
    assert sent.status == 413 and ran == [] and receive.taken["n"] == 0
    problem = json.loads(sent.body)
    assert problem["type"].endswith("/request-too-large") and problem["status"] == 413


async def test_a_streamed_body_is_cut_at_the_limit_and_the_apps_answer_replaced():
    chunks = [b"x" * 40] * 10
    sent, receive = Sent(), body_of(chunks)
    await BodySizeLimitMiddleware(echo_length, LIMIT)(scope(), receive, sent)
    assert sent.status == 413 and b"parse error" not in sent.body
    assert receive.taken["n"] == 3  # 40 + 40 + 40 > 100: nothing after the third chunk was read
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]


async def test_an_app_that_lets_the_failed_read_escape_still_gets_a_413():
    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass

    sent = Sent()
    await BodySizeLimitMiddleware(app, LIMIT)(scope(), body_of([b"x" * 80, b"x" * 80]), sent)
    assert sent.status == 413


async def test_other_errors_of_the_app_are_not_swallowed():
    async def app(scope, receive, send):
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await BodySizeLimitMiddleware(app, LIMIT)(scope(), body_of([b"{}"]), Sent())


def _count(route: str, status: str) -> float:
    labels = {"method": "POST", "route": route, "status": status}
    return REGISTRY.get_sample_value("gpufleet_http_requests_total", labels) or 0.0


async def test_an_exception_escaping_the_app_counts_as_500():
    async def app(scope, receive, send):
        raise RuntimeError("bug")

    before = _count("unmatched", "500")
    with pytest.raises(RuntimeError):
        await HttpMetricsMiddleware(app)(scope(path="/crash"), body_of([b""]), Sent())
    assert _count("unmatched", "500") == before + 1


async def test_lifespan_and_other_scopes_pass_untouched():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    for middleware in (HttpMetricsMiddleware(app), BodySizeLimitMiddleware(app, LIMIT)):
        await middleware({"type": "lifespan"}, body_of([b""]), Sent())
    assert seen == ["lifespan", "lifespan"]
