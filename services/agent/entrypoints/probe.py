"""``python -m services.agent --probe``: initialise the configured GPU backend and print what it sees.

Used on a new GPU host to check that NVML works before the agent joins the fleet. Touches nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ..service_layer.ports import GpuBackend


def probe(backend: GpuBackend) -> dict[str, Any]:
    """Raises GpuBackendError when the backend cannot start."""
    try:
        driver_version, devices = backend.discover()
        readings = {r.index: r for r in backend.sample(frozenset())}
    finally:
        backend.close()
    gpus = []
    for d in devices:
        entry: dict[str, Any] = asdict(d)
        reading = readings.get(d.index)
        if reading is not None:
            entry["reading"] = {
                k: v for k, v in asdict(reading).items() if k not in ("index", "memory_total_mb")
            }
        gpus.append(entry)
    return {
        "gpu_backend": backend.name,
        "real_gpus": backend.real,
        "driver_version": driver_version,
        "gpu_count": len(devices),
        "gpus": gpus,
    }


def render(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)
