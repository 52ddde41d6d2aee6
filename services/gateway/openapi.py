"""``python -m services.gateway.openapi`` prints the OpenAPI document (committed as docs/openapi.json)."""

from __future__ import annotations

import json
import sys

from services.gateway.entrypoints.app import openapi_spec


def render() -> str:
    return json.dumps(openapi_spec(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
