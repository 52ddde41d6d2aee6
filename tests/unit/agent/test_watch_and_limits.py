"""The pushed assignments stream, time limits, gang environment and capacity, driven with fakes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from services.agent.adapters import metrics as prom
from services.agent.domain.model import (
    Assignment,
    Distributed,
    JobExit,
    JobFinished,
    JobStarted,
    Limits,
    LocalJob,
    timed_out_message,
)
from services.agent.domain.time_limit import warning_after

from .fakes import NOW, FakeHandle, FakeRunner, MemoryStore
from .test_agent import JOB, ORG, make_agent, settle


def assigned(**kw) -> Assignment:
    return Assignment(job_id=JOB, command="run", gpu_indices=(0,), organization_id=ORG, **kw)


class Sleeps:
    """The agent's sleep and clock: a sleep ends only when the test releases it, and then the clock
    has moved on by what was asked (time passes only through sleeps)."""

    def __init__(self, agent) -> None:
        self.now = agent.clock()
        agent.sleep, agent.clock = self, lambda: self.now
        self.asked: list[float] = []
        self.gates: list[asyncio.Event] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        self.now += timedelta(seconds=seconds)

    async def release(self, n: int) -> None:
        """Let the n-th requested sleep end (waits for it to be asked first)."""
        async with asyncio.timeout(5):
            while len(self.gates) <= n:
                await asyncio.sleep(0)
        self.gates[n].set()
        await settle()


def test_the_warning_comes_at_90_percent_or_a_minute_before_whichever_is_later():
    assert warning_after(100) == 90
    assert warning_after(3600) == 3540
    assert warning_after(600) == 540  # both the same
    assert warning_after(10) == 9


async def test_a_job_past_its_time_limit_is_warned_then_stopped_and_reported_timed_out():
    agent, runner, _, _ = await make_agent()
    sleeps = Sleeps(agent)
    before = prom.JOBS_TIMED_OUT._value.get()
    await agent.apply([assigned(time_limit_seconds=100, attempt=2)])
    handle = runner.handles[JOB]
    await sleeps.release(0)
    assert sleeps.asked == [90.0, 10.0]  # warned at 90 s, then the 10 s left
    assert "stopped in 10 s" in handle.notes[0] and handle.terminated_with is None
    assert agent.reports.pending == [JobStarted(JOB, NOW, attempt=2)]
    await sleeps.release(1)
    assert handle.terminated_with == 7  # the configured grace: SIGTERM, then SIGKILL after it
    finished = agent.reports.pending[-1]
    assert isinstance(finished, JobFinished)
    assert finished.timed_out and not finished.cancelled and finished.attempt == 2
    assert finished.error_message == timed_out_message(100) and finished.exit_code == 143
    assert prom.JOBS_TIMED_OUT._value.get() == before + 1


async def test_a_job_that_ends_before_its_limit_is_neither_warned_nor_timed_out():
    agent, runner, _, _ = await make_agent()
    sleeps = Sleeps(agent)
    await agent.apply([assigned(time_limit_seconds=100)])
    handle = runner.handles[JOB]
    await settle()
    assert sleeps.asked == [90.0]
    handle.exit.set_result(JobExit(exit_code=0, output_tail=""))
    await settle()
    sleeps.gates[0].set()  # too late: the limit's task ended with the job
    await settle()
    assert handle.notes == [] and handle.terminated_with is None and sleeps.asked == [90.0]
    finished = agent.reports.pending[-1]
    assert isinstance(finished, JobFinished) and not finished.timed_out and finished.exit_code == 0


async def test_an_adopted_job_keeps_its_original_deadline():
    runner = FakeRunner()
    handle = FakeHandle(77)
    started = NOW.replace(minute=NOW.minute - 1)  # a minute before the agent came back
    runner.left_running.append((LocalJob(JOB, (0,), ORG, time_limit_seconds=100, started_at=started), handle))
    agent, _, _, _ = await make_agent(MemoryStore([JobStarted(JOB, started)]), runner)
    sleeps = Sleeps(agent)
    for job, h in agent._adopted:
        agent._follow(job, h)
    await sleeps.release(0)
    assert sleeps.asked == [30.0, 10.0]  # 90 s after the start, which was 60 s ago; then the rest
    await sleeps.release(1)
    assert handle.terminated_with == 7


async def test_gang_environment_and_cgroup_limits_reach_the_runner():
    agent, runner, _, _ = await make_agent()
    gang = Distributed(
        rank=1, world_size=2, master_addr="node-a", master_port=29612, node_names=("node-a", "node-b")
    )
    await agent.apply([assigned(cpu_cores=8, ram_mb=65536, distributed=gang, attempt=3)])
    spawned = runner.spawned[JOB]
    assert spawned.distributed == gang
    assert spawned.limits == Limits(cpus=8, memory_mb=65536)
    assert spawned.attempt == 3
    await agent.apply([replace(assigned(), job_id="33333333-3333-3333-3333-333333333333")])
    plain = runner.spawned["33333333-3333-3333-3333-333333333333"]
    assert plain.limits == Limits() and plain.distributed == Distributed()


async def test_registration_reports_the_nodes_capacity_and_labels():
    agent, _, _, _ = await make_agent()
    agent.config = replace(agent.config, cpu_cores=64, ram_mb=512_000, labels={"rack": "r1"})
    agent.registration = None
    await agent._register(asyncio.Event())
    assert agent.fleet.capacity == (64, 512_000, {"rack": "r1"})


async def running(agent) -> tuple[asyncio.Event, asyncio.Task]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(agent._watch_loop(stop))


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_the_watch_applies_the_first_list_and_every_pushed_change():
    agent, runner, _, _ = await make_agent()
    scheduler = agent.scheduler
    scheduler.assignments = [assigned()]
    stop, task = await running(agent)
    await until(lambda: JOB in runner.handles)
    first = agent.revision
    scheduler.push([assigned(status="running", cancel_requested=True)])
    await until(lambda: runner.handles[JOB].terminated_with is not None)
    assert agent.revision == first + 1
    stop.set()
    await asyncio.wait_for(task, 5)
    assert scheduler.streams == []  # the stream was closed on stop


async def test_a_broken_stream_is_watched_again_with_the_known_revision():
    agent, runner, _, _ = await make_agent()
    scheduler = agent.scheduler
    stop, task = await running(agent)
    await until(lambda: agent.revision > 0)
    known = agent.revision
    scheduler.break_streams()
    await until(lambda: len(scheduler.watches) == 2)
    assert scheduler.watches == [0, known]
    scheduler.push([assigned()])  # a change after the reconnect arrives
    await until(lambda: JOB in runner.handles)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_silent_stream_is_taken_for_dead_and_watched_again():
    agent, _, _, _ = await make_agent()
    agent.config = replace(agent.config, watch_idle_seconds=0.05)
    stop, task = await running(agent)
    await until(lambda: len(agent.scheduler.watches) >= 2)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_an_unreachable_scheduler_is_retried_with_backoff_until_it_answers():
    agent, runner, _, _ = await make_agent()
    scheduler = agent.scheduler
    original = scheduler.watch_assignments
    failures = []

    def flaky(node_id, known):
        if len(failures) < 3:
            failures.append(known)
            raise_later = Unreachable("scheduler: UNAVAILABLE")

            async def broken():
                raise raise_later
                yield  # pragma: no cover

            return broken()
        return original(node_id, known)

    from services.agent.service_layer.ports import Unreachable

    scheduler.watch_assignments = flaky
    scheduler.assignments = [assigned()]
    agent.config = replace(agent.config, watch_backoff_max=0.05)
    stop, task = await running(agent)
    await until(lambda: JOB in runner.handles)
    assert len(failures) == 3
    stop.set()
    await asyncio.wait_for(task, 5)
