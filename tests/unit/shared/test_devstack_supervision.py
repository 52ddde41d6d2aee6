"""The devstack's restart policy, as pure objects: backoff, its cap, the reset, and never giving up."""

from __future__ import annotations

import pytest

from shared.embedded.supervisor import RestartPolicy, RestartState, Supervisor, describe_exit


def test_delay_doubles_from_one_second_to_a_cap_of_thirty():
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(10_000) == 30  # no overflow however long it keeps failing


def test_a_run_of_failures_grows_the_delay_and_a_stable_run_resets_it():
    state = RestartState(RestartPolicy(initial_delay=1, max_delay=30, stable_after=60))
    state.started(0)
    assert state.exited(5) == 1 and state.down and not state.due(5.5) and state.due(6)
    state.started(6)
    assert state.exited(7) == 2
    state.started(9)
    assert state.exited(10) == 4 and state.failures == 3
    state.started(14)
    assert state.exited(14 + 60) == 1 and state.failures == 1  # ran 60 s: that crash is a first one


def test_settled_resets_the_count_once_while_still_running():
    state = RestartState(RestartPolicy(stable_after=60))
    state.started(0)
    state.exited(1)
    state.started(2)
    assert not state.settled(61)
    assert state.settled(62) and state.failures == 0
    assert not state.settled(100)  # said once


def test_a_failed_start_counts_as_a_failure():
    state = RestartState(RestartPolicy())
    state.started(0)
    state.exited(1)
    assert state.exited(2) == 2  # start attempt at 2 failed: next try in 2 s


class FakeProcess:
    def __init__(self, *, fail_starts: int = 0) -> None:
        self.running = True
        self.code: int | None = None
        self.starts = 0
        self.fail_starts = fail_starts

    def alive(self) -> bool:
        return self.running

    def start(self) -> None:
        self.starts += 1
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("port in use")
        self.running, self.code = True, None

    def stop(self) -> None:
        self.running = False

    def exit_code(self) -> int | None:
        return self.code

    def log_tail(self, lines: int = 30) -> str:
        return "boom"

    def die(self, code: int) -> None:
        self.running, self.code = False, code


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _supervisor(clock: Clock, lines: list[str]) -> Supervisor:
    policy = RestartPolicy(initial_delay=1, max_delay=30, stable_after=60)
    return Supervisor(policy, say=lines.append, clock=clock, tail_lines=0)


def test_a_dead_process_is_restarted_after_its_delay_and_the_console_says_so():
    clock, lines = Clock(), []
    sup = _supervisor(clock, lines)
    billing, kafka = FakeProcess(), FakeProcess()
    sup.add("billing", billing)
    sup.add("kafka", kafka)
    billing.die(-9)
    sup.tick()
    assert lines == ["! billing exited (killed by SIGKILL); restart #1 in 1s; down now: billing"]
    assert sup.down() == ["billing"] and billing.starts == 0
    clock.now = 0.5
    sup.tick()
    assert billing.starts == 0
    clock.now = 1.0
    sup.tick()
    assert billing.starts == 1 and billing.alive() and sup.down() == []
    assert lines[-1] == "+ billing restarted (restart #1); down now: nothing"
    assert sup.restarts == {"billing": 1, "kafka": 0}


def test_a_process_that_keeps_failing_never_stops_the_others_and_is_retried_at_the_cap():
    clock, lines = Clock(), []
    sup = _supervisor(clock, lines)
    broken, healthy = FakeProcess(fail_starts=1_000), FakeProcess()
    sup.add("notification", broken)
    sup.add("gateway", healthy)
    broken.die(1)
    for _ in range(2_000):  # 1,000 s of half-second ticks
        clock.now += 0.5
        sup.tick()
    assert healthy.alive() and healthy.starts == 0
    assert broken.starts > 20  # still being retried
    assert sup.states["notification"].restart_at is not None
    assert sup.states["notification"].restart_at - clock.now <= 30
    assert "down now: notification" in lines[-1]
    assert not any("stopping" in line for line in lines)


def test_a_start_that_raises_is_reported_and_retried_with_a_longer_delay():
    clock, lines = Clock(), []
    sup = _supervisor(clock, lines)
    pg = FakeProcess(fail_starts=1)
    sup.add("postgres", pg)
    pg.die(1)
    sup.tick()
    clock.now = 1
    sup.tick()
    assert lines[-1] == "! postgres did not start (port in use); retry #2 in 2s; down now: postgres"
    clock.now = 3
    sup.tick()
    assert pg.alive() and lines[-1] == "+ postgres restarted (restart #2); down now: nothing"


def test_stable_running_resets_the_count_and_says_so():
    clock, lines = Clock(), []
    sup = _supervisor(clock, lines)
    svc = FakeProcess()
    sup.add("scheduler", svc)
    svc.die(1)
    sup.tick()
    clock.now = 1
    sup.tick()
    clock.now = 61
    sup.tick()
    assert lines[-1] == "+ scheduler has run stably for 60s; restart count reset"
    svc.die(1)
    sup.tick()
    assert "restart #1 in 1s" in lines[-1]


@pytest.mark.parametrize(
    ("code", "text"),
    [(None, "exit status unknown"), (0, "exit code 0"), (3, "exit code 3"), (-15, "killed by SIGTERM")],
)
def test_describe_exit(code, text):
    assert describe_exit(code) == text
