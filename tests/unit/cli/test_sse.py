"""The event stream reader: SSE framing, resuming with Last-Event-ID, giving up, refusals."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.cli import exits, sse
from services.cli.client import Api
from tests.unit.cli.conftest import KEY, Dropped, Gateway, frame

SSE = {"content-type": "text/event-stream"}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(sse, "FIRST_DELAY", 0.0)


def _collect(gateway: Gateway, n: int, **kwargs) -> list[sse.Event | sse.Opened]:
    async def run() -> list[sse.Event | sse.Opened]:
        out: list[sse.Event | sse.Opened] = []
        async with Api("http://gw.test", KEY, transport=httpx.MockTransport(gateway.handle)) as api:
            async for item in sse.stream(api, **kwargs):
                out.append(item)
                if sum(isinstance(i, sse.Event) for i in out) >= n:
                    return out
        return out

    return asyncio.run(run())


def test_frames_comments_multiline_data_and_ids():
    gateway = Gateway()
    body = (
        b": heartbeat\n\n"
        b'id: 1\nevent: gpufleet.job.submitted\ndata: {"id": "a",\ndata:  "data": {"job": {}}}\n\n'
        b"retry: 10\n\n"
        b'event: gpufleet.job.started\r\ndata: {"id": "b"}\r\n\r\n'  # no id: the last one carries over
    )
    gateway.on("GET", "/v1/events", httpx.Response(200, headers=SSE, content=body))
    items = _collect(gateway, 2)
    events = [i for i in items if isinstance(i, sse.Event)]
    assert isinstance(items[0], sse.Opened) and not items[0].resumed
    assert [(e.cursor, e.type, e.cloudevent["id"]) for e in events] == [
        ("1", "gpufleet.job.submitted", "a"),
        ("1", "gpufleet.job.started", "b"),
    ]
    assert events[0].data == {"job": {}}


def test_a_dropped_connection_resumes_after_the_last_id_seen():
    gateway = Gateway()
    gateway.on(
        "GET",
        "/v1/events",
        [
            # The second frame is cut before its blank line: it must not be delivered half-read.
            lambda r: httpx.Response(
                200,
                headers=SSE,
                content=Dropped(
                    frame("c1", "gpufleet.job.submitted", {}), b"id: c2\nevent: gpufleet.job.started\ndata: {"
                ),
            ),
            lambda r: httpx.Response(200, headers=SSE, content=frame("c2", "gpufleet.job.started", {})),
        ],
    )
    items = _collect(gateway, 2, job_id="j1", types=["gpufleet.job.started", "gpufleet.job.submitted"])
    events = [i for i in items if isinstance(i, sse.Event)]
    assert [e.cursor for e in events] == ["c1", "c2"]
    assert [type(i).__name__ for i in items] == ["Opened", "Event", "Opened", "Event"]
    assert items[2].resumed  # type: ignore[union-attr]
    first, second = gateway.sent("GET", "/v1/events")
    assert "last-event-id" not in first.headers
    assert second.headers["last-event-id"] == "c1"
    assert second.url.params["job_id"] == "j1"
    assert second.url.params["types"] == "gpufleet.job.started,gpufleet.job.submitted"


def test_from_start_only_without_a_cursor():
    gateway = Gateway()
    gateway.on(
        "GET",
        "/v1/events",
        httpx.Response(200, headers=SSE, content=frame("9", "gpufleet.cost.recorded", {})),
    )
    _collect(gateway, 1, from_start=True)
    _collect(gateway, 1, from_start=True, last_event_id="5")
    first, second = gateway.sent("GET", "/v1/events")
    assert first.url.params["from"] == "start"
    assert "from" not in second.url.params and second.headers["last-event-id"] == "5"


def test_gives_up_with_a_temporary_failure_after_repeated_failures():
    gateway = Gateway()
    gateway.on(
        "GET", "/v1/events", lambda r: httpx.Response(503, json={"title": "Service temporarily unavailable"})
    )

    async def run() -> None:
        async with Api("http://gw.test", KEY, transport=httpx.MockTransport(gateway.handle)) as api:
            async for _ in sse.stream(api, max_reconnects=3):
                pass

    with pytest.raises(exits.CliError) as caught:
        asyncio.run(run())
    assert caught.value.code == exits.TEMPORARY
    assert len(gateway.sent("GET", "/v1/events")) == 4


def test_a_refused_key_is_not_retried():
    gateway = Gateway()

    async def run() -> None:
        async with Api("http://gw.test", "gpf_revoked", transport=httpx.MockTransport(gateway.handle)) as api:
            async for _ in sse.stream(api):
                pass

    with pytest.raises(exits.ApiError) as caught:
        asyncio.run(run())
    assert caught.value.code == exits.PERMISSION and len(gateway.requests) == 1


def test_an_answer_that_is_not_an_event_stream_is_an_error():
    gateway = Gateway()
    gateway.on("GET", "/v1/events", httpx.Response(200, json={"not": "sse"}))
    with pytest.raises(exits.CliError) as caught:
        _collect(gateway, 1)
    assert caught.value.code == exits.SOFTWARE
