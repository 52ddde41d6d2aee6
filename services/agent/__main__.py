"""``python -m services.agent``: settings -> GPU backend -> register with fleet -> loops -> clean stop.
``--probe`` only initialises the GPU backend and prints what it found as JSON, or why it cannot (exit 1).
"""

from __future__ import annotations

import argparse
import sys

from shared.runtime import Runtime, load_settings

from .bootstrap import bootstrap, make_backend
from .config import AgentSettings, GpuBackendSettings
from .entrypoints.probe import probe, render
from .service_layer.ports import GpuBackendError


def build(settings: AgentSettings) -> Runtime:
    rt = Runtime("agent", settings)
    app = bootstrap(settings)
    rt.task("agent", app.run)
    rt.task("credential-rotation", app.rotate_credentials)
    rt.on_close(app.close)
    return rt


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.agent", description="GPU fleet node agent")
    parser.add_argument("--probe", action="store_true", help="print what the GPU backend finds (JSON)")
    if parser.parse_args(argv).probe:
        try:
            print(render(probe(make_backend(load_settings(GpuBackendSettings)))))
        except GpuBackendError as exc:
            sys.exit(f"probe failed: {exc}")
        return
    build(load_settings(AgentSettings)).run()


if __name__ == "__main__":
    main(sys.argv[1:])
