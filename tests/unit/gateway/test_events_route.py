"""GET /v1/events's SSE framing and relay over a fake gRPC stream: frames as the contract says, the
stream ends with notification's, with the client, or when the caller's key stops authenticating."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from gpufleet.v1 import notification_pb2

from services.gateway.entrypoints import sse
from services.gateway.entrypoints.routes import events
from shared.errors import Unauthenticated

CLOUDEVENT = json.dumps({"specversion": "1.0", "id": "e1", "type": "gpufleet.job.started", "data": {"a": 1}})


def event(cursor: str, data: str = CLOUDEVENT) -> notification_pb2.StreamedEvent:
    return notification_pb2.StreamedEvent(cursor=cursor, type="gpufleet.job.started", cloudevent_json=data)


def parse(raw: bytes) -> list[dict[str, str] | str]:
    """Frames as an SSE client reads them: dicts of fields, or the text of a comment."""
    out: list[dict[str, str] | str] = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            out.append(block[1:].strip())
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            fields[name] = fields[name] + "\n" + value if name in fields else value
        out.append(fields)
    return out


def test_an_event_frame_has_id_event_and_one_data_line() -> None:
    raw = events.frame(event("17"))
    assert raw == f"id: 17\nevent: gpufleet.job.started\ndata: {CLOUDEVENT}\n\n".encode()
    assert parse(raw) == [{"id": "17", "event": "gpufleet.job.started", "data": CLOUDEVENT}]


def test_a_heartbeat_is_a_comment() -> None:
    assert events.frame(notification_pb2.StreamedEvent(heartbeat=True)) == b": heartbeat\n\n"


def test_line_breaks_cannot_end_a_frame_early_or_forge_a_field() -> None:
    raw = sse.sse_event("5\n\nid: 999", "gpufleet.job.started\r\nretry: 1", "a\n\nid: 6\r\nb")
    assert raw == (
        b"id: 5  id: 999\nevent: gpufleet.job.started  retry: 1\ndata: a\ndata: \ndata: id: 6\ndata: b\n\n"
    )
    assert parse(raw) == [
        {"id": "5  id: 999", "event": "gpufleet.job.started  retry: 1", "data": "a\n\nid: 6\nb"}
    ]


def test_types_are_split_on_commas() -> None:
    assert events.split_types(" gpufleet.job.started, ,gpufleet.cost.recorded ") == [
        "gpufleet.job.started",
        "gpufleet.cost.recorded",
    ]
    assert events.split_types(None) == [] == events.split_types("")


class FakeCall:
    def __init__(self, *messages: Any) -> None:
        self.messages = list(messages)
        self.more = asyncio.Event()
        self.cancelled = False

    async def read(self) -> Any:
        while not self.messages:
            self.more.clear()
            await self.more.wait()
        item = self.messages.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def push(self, item: Any) -> None:
        self.messages.append(item)
        self.more.set()

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeAuthenticator:
    def __init__(self) -> None:
        self.revoked = False
        self.calls = 0

    async def authenticate(self, key: str | None) -> Any:
        self.calls += 1
        if self.revoked:
            raise Unauthenticated("invalid API key")
        return object()


class FakeDownstream:
    def __init__(self) -> None:
        self.authenticator = FakeAuthenticator()


async def collect(stream: Any, count: int) -> list[bytes]:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(count)]


async def test_relay_sends_the_first_message_then_the_rest_and_ends_with_the_call() -> None:
    call = FakeCall(event("2"), notification_pb2.StreamedEvent(heartbeat=True), event("3"), grpc.aio.EOF)
    down = FakeDownstream()
    body = events.relay(call, notification_pb2.StreamedEvent(heartbeat=True), down, "k")  # type: ignore[arg-type]
    got = [chunk async for chunk in body]
    assert [parse(c)[0] for c in got] == [
        "heartbeat",
        {"id": "2", "event": "gpufleet.job.started", "data": CLOUDEVENT},
        "heartbeat",
        {"id": "3", "event": "gpufleet.job.started", "data": CLOUDEVENT},
    ]
    assert call.cancelled


async def test_relay_ends_when_notification_ends_the_call_with_an_error() -> None:
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAUTHENTICATED, grpc.aio.Metadata(), grpc.aio.Metadata(), "x"
    )
    call = FakeCall(event("1"), error)
    body = events.relay(call, event("0"), FakeDownstream(), "k")  # type: ignore[arg-type]
    assert [parse(c)[0]["id"] for c in [chunk async for chunk in body]] == ["0", "1"]  # type: ignore[index]


async def test_relay_ends_when_the_key_is_revoked_even_while_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "REAUTH_SECONDS", 0.01)
    call = FakeCall()  # nothing ever arrives
    down = FakeDownstream()
    body = events.relay(call, event("1"), down, "k")  # type: ignore[arg-type]
    assert await collect(body, 1)
    ticking = asyncio.ensure_future(anext(body))
    while down.authenticator.calls < 2:  # re-checked while idle, and still accepted
        await asyncio.sleep(0.01)
    assert not ticking.done()
    down.authenticator.revoked = True
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(ticking, 5)
    assert call.cancelled


async def test_relay_cancels_the_call_when_the_client_goes_away() -> None:
    call = FakeCall()
    body = events.relay(call, event("1"), FakeDownstream(), "k")  # type: ignore[arg-type]
    await collect(body, 1)
    await body.aclose()
    assert call.cancelled


def test_the_route_is_documented_as_an_event_stream() -> None:
    from services.gateway.entrypoints.app import openapi_spec

    op = openapi_spec()["paths"]["/v1/events"]["get"]
    assert list(op["responses"]["200"]["content"]) == ["text/event-stream"]
    assert {p["name"] for p in op["parameters"]} == {
        "job_id",
        "types",
        "last_event_id",
        "from",
        "Last-Event-ID",
    }
    assert "422" in op["responses"] and "401" in op["responses"]
