"""What a process knows about its dependencies, and how it tells others.

Every process tracks the state of each dependency it has (``database``, ``broker``, ``outbox``; the
gateway tracks the services it calls). Two answers follow from it:

* **serving** — the process can do its core work (for a service: its database is reachable and at the
  expected schema). Only when it cannot does it answer NOT_SERVING / HTTP 503, so a load balancer keeps a
  degraded replica (say, broker down: submits still land in the outbox) in rotation.
* **degraded** — serving, but some dependency is down; the answer names it.

Over gRPC, the standard health service carries the overall state under ``""`` and one entry per
dependency under :func:`health_name` (``gpufleet.dependency.broker`` …), so any health client — the
gateway's ``/readyz``, ``grpc_health_probe -service gpufleet.dependency.broker`` — can see what is down.
Over HTTP, each process's ops listener answers ``/readyz`` with :meth:`Readiness.report` as JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

DATABASE = "database"
BROKER = "broker"
OUTBOX = "outbox"
DEPENDENCIES = (DATABASE, BROKER, OUTBOX)
HEALTH_PREFIX = "gpufleet.dependency."


def health_name(dependency: str) -> str:
    """The gRPC health service name under which a dependency's state is published."""
    return HEALTH_PREFIX + dependency


@dataclass
class DependencyState:
    up: bool = False
    detail: str = "not checked yet"
    since: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)


class Readiness:
    """The dependency states of one process; ``core`` names those it cannot work without."""

    def __init__(self, dependencies: Iterable[str], core: Iterable[str]) -> None:
        self.states: dict[str, DependencyState] = {d: DependencyState() for d in dependencies}
        self.core = frozenset(core) & set(self.states)
        self._listeners: list[Callable[[str, DependencyState], None]] = []

    def on_change(self, listener: Callable[[str, DependencyState], None]) -> None:
        self._listeners.append(listener)

    def set(self, dependency: str, up: bool, detail: str = "", **extra: Any) -> None:
        state = self.states.setdefault(dependency, DependencyState())
        changed = state.up != up or state.detail == "not checked yet"
        if state.up != up:
            state.since = time.time()
        state.up, state.detail, state.extra = up, detail or ("up" if up else "down"), extra
        if changed:
            for listener in self._listeners:
                listener(dependency, state)

    @property
    def serving(self) -> bool:
        return all(self.states[d].up for d in self.core)

    @property
    def down(self) -> list[str]:
        return [d for d, s in self.states.items() if not s.up]

    def status(self) -> str:
        """``ready``, ``degraded`` (serving, something named is down) or ``unavailable``."""
        if not self.serving:
            return "unavailable"
        return "degraded" if self.down else "ready"

    def report(self) -> dict[str, Any]:
        return {
            "status": self.status(),
            "dependencies": {
                name: {
                    "state": "up" if s.up else "down",
                    "detail": s.detail,
                    "since": s.since,
                    **s.extra,
                }
                for name, s in self.states.items()
            },
        }
