"""A fake gateway behind httpx.MockTransport, and a clean environment for every CLI test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.cli.app import main

KEY = "gpf_" + "k" * 46
JOB_ID = "0b8a2c1e-4d5f-4a6b-9c7d-1e2f3a4b5c6d"
OTHER_ID = "7f00aa11-2222-4333-8444-955556666777"


def job(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": JOB_ID,
        "organization_id": "org",
        "user_id": "u",
        "name": "train",
        "command": "python train.py",
        "gpu_count": 1,
        "gpu_memory_mb": 0,
        "gpu_type": None,
        "priority": 50,
        "status": "queued",
        "node_id": None,
        "gpu_ids": [],
        "webhook_url": None,
        "exit_code": None,
        "output_tail": None,
        "error_message": None,
        "cancel_requested": False,
        "created_at": "2026-01-01T00:00:00Z",
        "scheduled_at": None,
        "started_at": None,
        "finished_at": None,
        "history": [{"status": "queued", "at": "2026-01-01T00:00:00Z", "reason": "submitted"}],
        "nodes": 1,
        "cpu_cores": 0,
        "ram_mb": 0,
        "time_limit_seconds": None,
        "held": False,
        "no_requeue": False,
        "attempt": 1,
        "pending_reason": {"code": "no_capacity", "message": "every GPU is busy"},
        "queue_position": 2,
        "estimated_start": None,
        "placements": [],
    }
    base.update(over)
    return base


def problem(status: int, title: str, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "https://gpufleet.dev/problems/x", "title": title, "status": status, "detail": detail}
    body.update(extra)
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def frame(cursor: str, type_: str, data: dict[str, Any]) -> bytes:
    ce = {
        "specversion": "1.0",
        "id": f"ce-{cursor}",
        "type": type_,
        "source": "gpufleet/scheduler",
        "data": data,
    }
    return f"id: {cursor}\nevent: {type_}\ndata: {json.dumps(ce)}\n\n".encode()


class Dropped:
    """An SSE/text body that sends its chunks, then fails like a connection reset."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        raise httpx.ReadError("connection reset by peer")


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Gateway:
    """Routes ``(METHOD, path)`` to canned answers; records every request."""

    routes: dict[tuple[str, str], Handler | list[Handler]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, answer: Handler | httpx.Response | dict | list[Any]) -> None:
        """A list of handlers answers successive calls (the last one repeats)."""
        if isinstance(answer, httpx.Response):
            response = answer
            self.routes[method, path] = lambda _r: response
        elif isinstance(answer, dict):
            body = answer
            self.routes[method, path] = lambda _r: httpx.Response(200, json=body)
        else:
            self.routes[method, path] = answer

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return problem(401, "Authentication required", "invalid API key")
        route = self.routes.get((request.method, request.url.path))
        if route is None:
            return problem(404, "Resource not found", f"nothing is at {request.url.path}")
        if isinstance(route, list):
            handler = route.pop(0) if len(route) > 1 else route[0]
            return handler(request)
        return route(request)

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("GPUFLEET_URL", "GPUFLEET_API_KEY", "GPUFLEET_PROFILE", "NO_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def gateway(monkeypatch) -> Gateway:
    monkeypatch.setenv("GPUFLEET_URL", "http://gw.test")
    monkeypatch.setenv("GPUFLEET_API_KEY", KEY)
    return Gateway()


@pytest.fixture
def cli(gateway) -> Callable[..., int]:
    def run(*argv: str) -> int:
        return main(list(argv), transport=httpx.MockTransport(gateway.handle))

    return run
