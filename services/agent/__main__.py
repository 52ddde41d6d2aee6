"""``python -m services.agent``: settings -> GPU backend -> register with fleet -> loops -> clean stop.

``python -m services.agent --probe`` only initialises the configured GPU backend and prints what it
found as JSON (exit 0), or why it cannot (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.runtime import load_settings, run

from .bootstrap import bootstrap, make_backend
from .config import AgentSettings, GpuBackendSettings
from .entrypoints.probe import probe, render
from .service_layer.ports import GpuBackendError


async def main(settings: AgentSettings, stop: asyncio.Event) -> None:
    app = bootstrap(settings)
    try:
        await app.agent.run(stop)
    except GpuBackendError as exc:
        raise SystemExit(f"agent cannot start: {exc}") from exc
    finally:
        await app.close()


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.agent", description="GPU fleet node agent")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="initialise the configured GPU backend, print what it found as JSON, and exit",
    )
    args = parser.parse_args(argv)
    if args.probe:
        backend_settings = load_settings(GpuBackendSettings)
        assert isinstance(backend_settings, GpuBackendSettings)
        try:
            print(render(probe(make_backend(backend_settings))))
        except GpuBackendError as exc:
            sys.exit(f"probe failed: {exc}")
        return
    cfg = load_settings(AgentSettings)
    assert isinstance(cfg, AgentSettings)
    run("agent", cfg, lambda stop: main(cfg, stop))


if __name__ == "__main__":
    cli(sys.argv[1:])
