"""GET /v1/costs/summary at the gateway, over a fake billing stub: query -> request, reply -> body,
bad queries -> 422 problems before any call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient
from gpufleet.v1 import billing_pb2, common_pb2

from services.gateway.entrypoints.app import _build
from services.gateway.entrypoints.auth import Caller, authenticated, downstream
from services.gateway.entrypoints.routes.billing import CostGroupBy
from shared.contracts import limits

CALLER = Caller(
    principal=common_pb2.Principal(organization_id="o"), metadata=(("authorization", "k"),), timeout=5
)


@dataclass
class FakeBilling:
    calls: list[Any] = field(default_factory=list)

    async def SummarizeCosts(
        self, request: billing_pb2.SummarizeCostsRequest, **kw: Any
    ) -> billing_pb2.CostSummary:
        self.calls.append((request, kw))
        return billing_pb2.CostSummary(
            group_by=request.group_by,
            from_time="2026-11-02T12:00:00Z",
            to_time="2026-12-02T12:00:00Z",
            currency="USD",
            groups=[
                billing_pb2.CostGroup(
                    key="2026-12-01", gpu_seconds="8400.000000", cost="4.93333333", running_cost="0.5", jobs=4
                )
            ],
            total=billing_pb2.CostGroup(
                gpu_seconds="8400.000000", cost="4.93333333", running_cost="0.5", jobs=4
            ),
            as_of="2026-12-02T12:00:00Z",
            include_running=True,
        )


@dataclass
class FakeDownstream:
    billing: FakeBilling = field(default_factory=FakeBilling)


@pytest.fixture
def api() -> tuple[TestClient, FakeDownstream]:
    app = _build(None)
    down = FakeDownstream()
    app.dependency_overrides[authenticated] = lambda: CALLER
    app.dependency_overrides[downstream] = lambda: down
    return TestClient(app), down


def test_the_groupings_are_the_shared_enumeration() -> None:
    assert get_args(CostGroupBy) == limits.COST_GROUP_BY


def test_a_summary_is_asked_with_the_callers_key_and_answered_per_the_contract(api) -> None:  # type: ignore[no-untyped-def]
    client, down = api
    r = client.get(
        "/v1/costs/summary",
        params={"group_by": "day", "from": "2026-11-02T13:00:00+01:00", "include_running": "false"},
    )
    assert r.status_code == 200, r.text
    [(request, kw)] = down.billing.calls
    assert (request.group_by, request.from_time, request.to_time) == ("day", "2026-11-02T12:00:00Z", "")
    assert request.HasField("include_running") and request.include_running is False
    assert kw["metadata"] == CALLER.metadata
    assert r.json() == {
        "group_by": "day",
        "from": "2026-11-02T12:00:00Z",
        "to": "2026-12-02T12:00:00Z",
        "currency": "USD",
        "include_running": True,
        "as_of": "2026-12-02T12:00:00Z",
        "groups": [
            {
                "key": "2026-12-01",
                "gpu_seconds": 8400.0,
                "cost": "4.93333333",
                "running_cost": "0.5",
                "jobs": 4,
            }
        ],
        "total": {"gpu_seconds": 8400.0, "cost": "4.93333333", "running_cost": "0.5", "jobs": 4},
    }


def test_running_jobs_are_included_unless_asked_otherwise(api) -> None:  # type: ignore[no-untyped-def]
    client, down = api
    assert client.get("/v1/costs/summary", params={"group_by": "gpu_type"}).status_code == 200
    [(request, _)] = down.billing.calls
    assert request.include_running is True and request.from_time == request.to_time == ""


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "group_by"),
        ({"group_by": "week"}, "group_by"),
        ({"group_by": "day", "from": "yesterday"}, "from"),
        ({"group_by": "day", "to": "2026-12-01T00:00:00"}, "to"),  # no offset: not RFC 3339
        ({"group_by": "day", "include_running": "maybe"}, "include_running"),
    ],
)
def test_bad_queries_are_422_problems_naming_the_field(api, params: dict, field: str) -> None:  # type: ignore[no-untyped-def]
    client, down = api
    r = client.get("/v1/costs/summary", params=params)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert down.billing.calls == []
