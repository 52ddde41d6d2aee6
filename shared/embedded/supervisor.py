"""Keep the local processes of the embedded stack running: restart what dies, never give up.

A process that exits is started again after a delay that doubles with each failure in a row (1 s, 2 s,
4 s … capped at 30 s by default). Once it has run for ``stable_after`` seconds its count starts over, so a
process that crashes once a day is not punished for last week's crashes. The supervisor never stops the
stack because one part keeps failing: it keeps retrying at the capped delay and says what is down, so that
the rest stays usable and the broken part comes back as soon as whatever broke it is fixed.

:class:`RestartPolicy` and :class:`RestartState` are pure (the clock is passed in) so the policy is
tested without processes; :class:`Supervisor` applies them to anything with ``alive``/``start``/``stop``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Supervised(Protocol):
    """A restartable local process: a service, PostgreSQL or the broker."""

    def alive(self) -> bool: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...

    def exit_code(self) -> int | None: ...

    def log_tail(self, lines: int = 30) -> str: ...


@dataclass(frozen=True)
class RestartPolicy:
    initial_delay: float = 1.0
    max_delay: float = 30.0
    # Running this long without exiting counts as healthy again: the failure count starts over.
    stable_after: float = 60.0

    def delay(self, failures: int) -> float:
        """Wait before restart number ``failures`` of a run of failures (1 = the first)."""
        exponent = min(max(failures - 1, 0), 62)  # no float overflow however long it keeps failing
        return min(self.max_delay, self.initial_delay * 2.0**exponent)


@dataclass
class RestartState:
    """One process's restart bookkeeping. ``restart_at`` is set exactly while the process is down."""

    policy: RestartPolicy
    failures: int = 0
    started_at: float | None = None
    restart_at: float | None = None

    @property
    def down(self) -> bool:
        return self.restart_at is not None

    def started(self, now: float) -> None:
        self.started_at = now
        self.restart_at = None

    def exited(self, now: float) -> float:
        """The process died (or failed to start): returns the delay until the next start."""
        if self.started_at is not None and now - self.started_at >= self.policy.stable_after:
            self.failures = 0
        self.failures += 1
        self.started_at = None
        delay = self.policy.delay(self.failures)
        self.restart_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        return self.restart_at is not None and now >= self.restart_at

    def settled(self, now: float) -> bool:
        """True once, when a process that had failed has now run stably: its count starts over."""
        if (
            self.failures
            and self.started_at is not None
            and now - self.started_at >= self.policy.stable_after
        ):
            self.failures = 0
            return True
        return False


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Supervisor:
    """Watches registered processes (already started) and restarts those that die.

    ``say`` gets one line per event (the devstack prints it); ``tail_lines`` of the dead process's log
    follow its exit line (0: none, for the soak's frequent kills).
    """

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    say: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    tail_lines: int = 15
    processes: dict[str, Supervised] = field(default_factory=dict)
    states: dict[str, RestartState] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, proc: Supervised) -> None:
        self.processes[name] = proc
        state = RestartState(self.policy)
        state.started(self.clock())
        self.states[name] = state
        self.restarts.setdefault(name, 0)

    def down(self) -> list[str]:
        return [name for name, state in self.states.items() if state.down]

    def tick(self) -> None:
        """One look at every process. Blocking: starting PostgreSQL or the broker waits until it answers."""
        for name, proc in self.processes.items():
            state = self.states[name]
            if state.down:
                if state.due(self.clock()):
                    self._restart(name, proc, state)
            elif not proc.alive():
                delay = state.exited(self.clock())
                lines = [
                    f"! {name} exited ({describe_exit(proc.exit_code())}); "
                    f"restart #{state.failures} in {delay:g}s; down now: {', '.join(self.down())}"
                ]
                if self.tail_lines:
                    lines.append(f"  last log lines of {name}:\n{proc.log_tail(self.tail_lines)}")
                self.say("\n".join(lines))
            elif state.settled(self.clock()):
                self.say(f"+ {name} has run stably for {self.policy.stable_after:g}s; restart count reset")

    def _restart(self, name: str, proc: Supervised, state: RestartState) -> None:
        try:
            proc.stop()  # reap what is left (a half-started PostgreSQL, an open log)
            proc.start()
        except Exception as exc:
            delay = state.exited(self.clock())
            self.say(
                f"! {name} did not start ({exc}); retry #{state.failures} in {delay:g}s; "
                f"down now: {', '.join(self.down())}"
            )
            return
        state.started(self.clock())
        self.restarts[name] += 1
        still = ", ".join(self.down()) or "nothing"
        self.say(f"+ {name} restarted (restart #{state.failures}); down now: {still}")

    async def run(self, stop: asyncio.Event, every: float = 0.5) -> None:
        """Tick until ``stop`` is set; ticks run in a thread so a slow start never blocks the event loop."""
        while not stop.is_set():
            await asyncio.to_thread(self.tick)
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
