"""docs/openapi.json is what ``python -m services.gateway.openapi`` prints, and it is complete."""

from __future__ import annotations

import json
from pathlib import Path

from services.gateway.openapi import render

DOC = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


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
                if int(code) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, code)
            if path.startswith("/v1/"):
                assert "401" in codes and op["security"], f"{method} {path} is not marked as authenticated"
