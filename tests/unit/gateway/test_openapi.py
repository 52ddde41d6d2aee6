"""docs/openapi.json is what ``python -m services.gateway.openapi`` prints, and it is complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from services.gateway.openapi import render
from shared.contracts import limits
from shared.contracts.jobs import JobStatus

DOC = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
# /readyz answers 503 with the same readiness report as its 200 (what a load balancer and a person read).
OWN_ERROR_BODIES = {("/readyz", "503")}


def _spec() -> dict:
    return json.loads(render())


def _param(path: str, name: str, method: str = "get") -> dict:
    [param] = [p for p in _spec()["paths"][path][method]["parameters"] if p["name"] == name]
    return param["schema"]


def _schema(name: str) -> dict:
    return _spec()["components"]["schemas"][name]


def test_committed_openapi_is_up_to_date():
    assert DOC.read_text() == render(), "run: python -m services.gateway.openapi > docs/openapi.json"


def test_every_operation_declares_its_answers_and_errors_are_problems():
    spec = json.loads(render())
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            codes = op["responses"]
            ok = [c for c in codes if c.startswith("2")]
            assert ok, f"{method} {path} declares no success"
            for code in ok:
                if code != "204":
                    assert "$ref" in json.dumps(codes[code]["content"]), (
                        f"{method} {path} has no response model"
                    )
            for code, response in codes.items():
                if int(code) >= 400 and (path, code) not in OWN_ERROR_BODIES:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, code)
            if path.startswith("/v1/"):
                assert "401" in codes and op["security"], f"{method} {path} is not marked as authenticated"


def test_the_readiness_503_declares_the_report():
    response = _spec()["paths"]["/readyz"]["get"]["responses"]["503"]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ReadyOut"}
    assert _schema("ReadyOut")["properties"]["status"]["enum"] == ["ready", "degraded", "unavailable"]


def test_enumerations_the_server_enforces_are_stated():
    assert _schema("ApiKeyCreate")["properties"]["scopes"]["items"]["enum"] == list(limits.KEY_SCOPES)
    assert _schema("WebhookCreate")["properties"]["events"]["items"]["enum"] == list(
        limits.WEBHOOK_EVENT_NAMES
    )
    status = _param("/v1/jobs", "status")["anyOf"][0]
    assert set(status["enum"]) == set(get_args(JobStatus))


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/costs"])
def test_cursors_state_their_format_and_length(path):
    cursor = _param(path, "cursor")["anyOf"][0]
    assert cursor["pattern"] == limits.CURSOR_PATTERN and cursor["maxLength"] == limits.MAX_CURSOR
    assert _param(path, "limit")["anyOf"][0]["maximum"] == limits.MAX_PAGE


def test_numbers_are_the_shared_limits():
    hours = _param("/v1/utilization", "hours")
    assert (hours["maximum"], hours["default"]) == (
        limits.MAX_UTILIZATION_HOURS,
        limits.DEFAULT_UTILIZATION_HOURS,
    )
    key = _param("/v1/jobs", "Idempotency-Key", "post")["anyOf"][0]
    assert key["maxLength"] == limits.MAX_IDEMPOTENCY_KEY
    job = _schema("JobCreate")["properties"]
    assert job["command"]["maxLength"] == limits.MAX_COMMAND
    assert job["gpu_count"]["maximum"] == limits.MAX_GPUS
    assert job["gpu_memory_mb"]["maximum"] == limits.MAX_GPU_MEMORY_MB
    assert job["webhook_url"]["anyOf"][0]["maxLength"] == limits.MAX_URL


def test_413_is_in_the_problem_catalog_of_the_description():
    assert "413" in _spec()["info"]["description"]
