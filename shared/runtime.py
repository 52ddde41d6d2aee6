"""Process life cycle shared by every service's ``__main__``: settings, logs, traces, clean stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from shared.logging import configure_logging
from shared.settings import BaseServiceSettings
from shared.telemetry import configure_tracing

log = logging.getLogger("gpufleet.runtime")


def load_settings(cls: type[BaseServiceSettings]) -> BaseServiceSettings:
    """Validate settings or exit with the names of the missing/invalid variables (never their values)."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"GPUFLEET_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        sys.exit(f"invalid configuration: {problems}")


def run(
    service: str, settings: BaseServiceSettings, main: Callable[[asyncio.Event], Awaitable[None]]
) -> None:
    """Run ``main(stop)`` until SIGINT/SIGTERM sets ``stop``; ``main`` returns after a clean shutdown."""
    configure_logging(service, settings.log_level, settings.log_format)
    configure_tracing(service, settings.otel_exporter)

    async def _runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("starting", extra={"service": service})
        await main(stop)
        log.info("stopped", extra={"service": service})

    try:
        asyncio.run(_runner())
    except SystemExit:
        raise
    except KeyboardInterrupt:
        pass


async def supervise(stop: asyncio.Event, *tasks: asyncio.Task) -> None:
    """Wait for ``stop`` or for any background task to die (which is fatal: exit non-zero)."""
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t is not waiter and not t.cancelled() and t.exception()]
    for t in tasks:
        t.cancel()
    waiter.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if failed:
        exc = failed[0].exception()
        log.error("background task failed", exc_info=exc)
        raise SystemExit(f"fatal: {exc!r}")
