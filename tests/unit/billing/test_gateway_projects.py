"""The project filter of GET /v1/costs and /v1/costs/summary at the gateway, over a fake billing stub:
query -> request field, the job cost's project in the body, a malformed id a 422 before any call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gpufleet.v1 import billing_pb2

from services.gateway.entrypoints.app import _build
from services.gateway.entrypoints.auth import authenticated, downstream

from .test_gateway_summary import CALLER

PROJECT = str(uuid.uuid4())


@dataclass
class FakeBilling:
    calls: list[Any] = field(default_factory=list)

    async def ListJobCosts(
        self, request: billing_pb2.ListJobCostsRequest, **kw: Any
    ) -> billing_pb2.ListJobCostsResponse:
        self.calls.append(request)
        cost = billing_pb2.JobCost(
            job_id=str(uuid.uuid4()), organization_id="o", currency="USD", total_cost="1", project_id=PROJECT
        )
        loose = billing_pb2.JobCost(
            job_id=str(uuid.uuid4()), organization_id="o", currency="USD", total_cost="2"
        )
        return billing_pb2.ListJobCostsResponse(costs=[cost, loose], total_cost="3")

    async def SummarizeCosts(
        self, request: billing_pb2.SummarizeCostsRequest, **kw: Any
    ) -> billing_pb2.CostSummary:
        self.calls.append(request)
        at = "2026-12-02T12:00:00Z"
        return billing_pb2.CostSummary(
            group_by=request.group_by,
            from_time=at,
            to_time=at,
            as_of=at,
            currency="USD",
            groups=[billing_pb2.CostGroup(key=PROJECT, gpu_seconds="1", cost="1", running_cost="0", jobs=1)],
            total=billing_pb2.CostGroup(gpu_seconds="1", cost="1", running_cost="0", jobs=1),
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


def test_the_costs_list_passes_the_project_and_shows_each_jobs_project(api) -> None:  # type: ignore[no-untyped-def]
    client, down = api
    r = client.get("/v1/costs", params={"project_id": PROJECT.upper()})
    assert r.status_code == 200, r.text
    assert [c.project_id for c in down.billing.calls] == [PROJECT]  # canonical form
    assert [c["project_id"] for c in r.json()["costs"]] == [PROJECT, None]
    assert client.get("/v1/costs").status_code == 200
    assert down.billing.calls[-1].project_id == ""


def test_the_summary_passes_the_project(api) -> None:  # type: ignore[no-untyped-def]
    client, down = api
    r = client.get("/v1/costs/summary", params={"group_by": "project", "project_id": PROJECT})
    assert r.status_code == 200, r.text
    assert (down.billing.calls[0].group_by, down.billing.calls[0].project_id) == ("project", PROJECT)
    assert [g["key"] for g in r.json()["groups"]] == [PROJECT]


@pytest.mark.parametrize("path", ["/v1/costs", "/v1/costs/summary?group_by=day"])
def test_a_malformed_project_id_is_a_422_naming_it_before_any_call(api, path: str) -> None:  # type: ignore[no-untyped-def]
    client, down = api
    r = client.get(path, params={"project_id": "not-a-project"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert any(e.get("field") == "project_id" for e in r.json()["errors"]), r.json()
    assert down.billing.calls == []
