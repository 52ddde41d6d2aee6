"""GET /v1/utilization/series at the gateway, over a fake monitoring stub: query -> request,
reply -> body, bad queries -> 422 problems before any call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gpufleet.v1 import common_pb2, monitoring_pb2

from services.gateway.entrypoints.app import _build
from services.gateway.entrypoints.auth import Caller, authenticated, downstream

CALLER = Caller(
    principal=common_pb2.Principal(organization_id="o"), metadata=(("authorization", "k"),), timeout=5
)
GPU = "7c9e6679-7425-40de-944b-e07fc1f90a00"


@dataclass
class FakeMonitoring:
    calls: list[Any] = field(default_factory=list)

    async def GetUtilizationSeries(
        self, request: monitoring_pb2.GetUtilizationSeriesRequest, **kw: Any
    ) -> monitoring_pb2.UtilizationSeries:
        self.calls.append((request, kw))
        return monitoring_pb2.UtilizationSeries(
            from_time="2026-12-02T11:00:00Z",
            to_time="2026-12-02T12:00:00Z",
            step_seconds=60,
            series=[
                monitoring_pb2.GpuUtilizationSeries(
                    gpu_id=GPU,
                    gpu_name="GPU 0",
                    gpu_type="a100",
                    points=[
                        monitoring_pb2.UtilizationPoint(
                            t="2026-12-02T11:00:00Z", utilization=0.93, memory_used_mb=1234, samples=6
                        )
                    ],
                )
            ],
            aggregate=[
                monitoring_pb2.AggregateUtilizationPoint(t="2026-12-02T11:00:00Z", utilization=0.93, gpus=1)
            ],
        )


@dataclass
class FakeDownstream:
    monitoring: FakeMonitoring = field(default_factory=FakeMonitoring)


@pytest.fixture
def api() -> tuple[TestClient, FakeDownstream]:
    app = _build(None)
    down = FakeDownstream()
    app.dependency_overrides[authenticated] = lambda: CALLER
    app.dependency_overrides[downstream] = lambda: down
    return TestClient(app), down


def test_a_series_is_asked_with_the_callers_key_and_answered_per_the_contract(api) -> None:  # type: ignore[no-untyped-def]
    client, down = api
    r = client.get(
        "/v1/utilization/series",
        params={
            "from": "2026-12-02T11:00:00Z",
            "to": "2026-12-02T12:00:00Z",
            "step": 60,
            "gpu_id": GPU.upper(),
        },
    )
    assert r.status_code == 200, r.text
    [(request, kw)] = down.monitoring.calls
    assert (request.from_time, request.to_time, request.step_seconds, request.gpu_id) == (
        "2026-12-02T11:00:00Z",
        "2026-12-02T12:00:00Z",
        60,
        GPU,
    )
    assert kw["metadata"] == CALLER.metadata
    assert r.json() == {
        "from": "2026-12-02T11:00:00Z",
        "to": "2026-12-02T12:00:00Z",
        "step_seconds": 60,
        "series": [
            {
                "gpu_id": GPU,
                "gpu_name": "GPU 0",
                "gpu_type": "a100",
                "points": [
                    {"t": "2026-12-02T11:00:00Z", "utilization": 0.93, "memory_used_mb": 1234, "samples": 6}
                ],
            }
        ],
        "aggregate": {"points": [{"t": "2026-12-02T11:00:00Z", "utilization": 0.93, "gpus": 1}]},
    }


def test_without_a_query_the_service_chooses_the_window_and_step(api) -> None:  # type: ignore[no-untyped-def]
    client, down = api
    assert client.get("/v1/utilization/series").status_code == 200
    [(request, _)] = down.monitoring.calls
    assert (request.from_time, request.to_time, request.step_seconds, request.gpu_id) == ("", "", 0, "")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"step": 0}, "step"),
        ({"step": "ten"}, "step"),
        ({"from": "an hour ago"}, "from"),
        ({"to": "2026-12-02T12:00:00"}, "to"),
        ({"gpu_id": "gpu-0"}, "gpu_id"),
    ],
)
def test_bad_queries_are_422_problems_naming_the_field(api, params: dict, field: str) -> None:  # type: ignore[no-untyped-def]
    client, down = api
    r = client.get("/v1/utilization/series", params=params)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert down.monitoring.calls == []
