"""The control loop's decisions, driven one step at a time with fakes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from uuid import UUID

from services.agent.domain.model import (
    LOST_MESSAGE,
    ORPHANED_MESSAGE,
    Assignment,
    JobExit,
    JobFinished,
    JobStarted,
    LocalJob,
)
from services.agent.service_layer.agent import AgentConfig, NodeAgent
from services.agent.service_layer.report_queue import ReportQueue

from .fakes import (
    NOW,
    FakeBackend,
    FakeFleet,
    FakeHandle,
    FakePublisher,
    FakeRunner,
    FakeScheduler,
    MemoryStore,
)

JOB = "11111111-1111-1111-1111-111111111111"
ORG = "22222222-2222-2222-2222-222222222222"


async def make_agent(store: MemoryStore | None = None, runner: FakeRunner | None = None):
    runner = runner or FakeRunner()
    publisher, scheduler, backend = FakePublisher(), FakeScheduler(), FakeBackend()
    config = AgentConfig(
        hostname="h1",
        provider="on-prem",
        organization_id=None,
        is_spot=False,
        agent_version="t",
        kill_grace_seconds=7,
    )
    agent = NodeAgent(
        config,
        backend,
        FakeFleet(),
        scheduler,
        runner,
        publisher,
        ReportQueue(store or MemoryStore()),
        clock=lambda: NOW,
    )
    agent.driver_version, agent.devices = backend.discover()
    agent.registration = await agent.fleet.register("h1", "", "", "", [], None, False, "")
    return agent, runner, publisher, backend


def assigned(status: str = "scheduled", cancel: bool = False) -> Assignment:
    return Assignment(
        job_id=JOB,
        command="run",
        gpu_indices=(1,),
        organization_id=ORG,
        status=status,
        cancel_requested=cancel,
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_job_is_started_once_and_its_end_reported_after_its_start():
    agent, runner, _, _ = await make_agent()
    await agent.apply([assigned()])
    await agent.apply([assigned()])  # the scheduler has not seen the start report yet
    assert list(runner.handles) == [JOB]
    runner.handles[JOB].exit.set_result(JobExit(exit_code=3, output_tail="hello\n"))
    await settle()
    assert agent.reports.pending == [
        JobStarted(JOB, NOW),
        JobFinished(JOB, NOW, exit_code=3, output_tail="hello\n"),
    ]
    await agent.apply([assigned("running")])  # stale answer: the finish is still in flight
    assert agent.reports.pending[-1] == JobFinished(JOB, NOW, exit_code=3, output_tail="hello\n")


async def test_cancel_stops_the_job_once_and_reports_cancelled():
    agent, runner, _, _ = await make_agent()
    await agent.apply([assigned()])
    await agent.apply([assigned("running", cancel=True)])
    await agent.apply([assigned("running", cancel=True)])
    await settle()
    assert runner.handles[JOB].terminated_with == 7
    finished = agent.reports.pending[-1]
    assert isinstance(finished, JobFinished) and finished.cancelled and finished.error_message == ""


async def test_a_job_the_scheduler_dropped_is_stopped_as_orphan():
    agent, runner, _, _ = await make_agent()
    await agent.apply([assigned()])
    await agent.apply([])
    await settle()
    finished = agent.reports.pending[-1]
    assert isinstance(finished, JobFinished)
    assert not finished.cancelled and finished.error_message == ORPHANED_MESSAGE
    assert runner.handles[JOB].terminated_with == 7


async def test_a_command_that_cannot_start_is_reported_finished_with_the_reason():
    agent, runner, _, _ = await make_agent()
    runner.refuse[JOB] = FileNotFoundError("/bin/sh not found")
    await agent.apply([assigned()])
    assert agent.reports.pending == [
        JobFinished(JOB, NOW, error_message="could not start: /bin/sh not found")
    ]
    await agent.apply([assigned()])
    assert len(agent.reports.pending) == 1  # not retried on the next poll


async def test_a_start_left_unfinished_by_a_previous_run_is_reported_lost_and_not_restarted():
    agent, runner, _, _ = await make_agent(MemoryStore([JobStarted(JOB, NOW)]))
    assert agent.reports.pending == [JobStarted(JOB, NOW), JobFinished(JOB, NOW, error_message=LOST_MESSAGE)]
    await agent.apply([assigned()])
    assert runner.handles == {}


async def test_metrics_name_the_job_and_organization_holding_each_gpu():
    agent, _, publisher, backend = await make_agent()
    await agent.apply([assigned()])
    await agent.sample_once()
    (sample,) = publisher.published
    by_index = {s.gpu_name: s for s in sample.samples}
    assert by_index["h1-gpu1"].job_id == UUID(JOB) and by_index["h1-gpu1"].organization_id == UUID(ORG)
    assert by_index["h1-gpu0"].job_id is None and by_index["h1-gpu0"].organization_id is None
    assert backend.busy_seen == [frozenset({1})]
    assert sample.node_id == UUID(agent.registration.node_id)


async def test_a_failed_publish_drops_the_sample_without_raising():
    agent, _, publisher, _ = await make_agent()
    publisher.fail = True
    await agent.sample_once()
    publisher.fail = False
    await agent.sample_once()
    assert len(publisher.published) == 1


async def test_registration_is_retried_until_fleet_answers():
    agent, _, _, _ = await make_agent()
    agent.registration = None
    agent.fleet.fail_first = 2
    stop = asyncio.Event()
    await asyncio.wait_for(agent._register(stop), 10)
    assert agent.registration is not None


async def _left_running(runner: FakeRunner) -> FakeHandle:
    handle = FakeHandle(4242)
    runner.left_running.append((LocalJob(JOB, (1,), ORG), handle))
    return handle


async def test_a_job_left_to_its_supervisor_is_followed_again_and_reported_once():
    runner = FakeRunner()
    handle = await _left_running(runner)
    agent, _, _, _ = await make_agent(MemoryStore([JobStarted(JOB, NOW)]), runner)
    assert agent.reports.pending == [JobStarted(JOB, NOW)]  # not reported lost
    agent.scheduler.assignments = [assigned(status="running")]
    stop = asyncio.Event()
    run = asyncio.create_task(agent.run(stop))
    async with asyncio.timeout(5):
        while JOB not in agent.running:
            await asyncio.sleep(0.01)
    await agent.apply([assigned(status="running")])
    assert runner.handles == {}  # not started a second time
    ended = NOW.replace(hour=1)
    handle.exit.set_result(JobExit(exit_code=0, output_tail="done\n", finished_at=ended))
    delivered = agent.scheduler.delivered
    async with asyncio.timeout(5):
        while len(delivered) < 2:
            await asyncio.sleep(0.01)
    assert delivered == [JobStarted(JOB, NOW), JobFinished(JOB, ended, exit_code=0, output_tail="done\n")]
    assert handle.released
    stop.set()
    await run


async def test_a_job_left_running_without_its_start_report_on_disk_is_reported_started_again():
    """The start report is sent before it reaches the disk: one the last agent sent (or not) and that
    died with it is queued again, for the attempt that runs (the scheduler takes a repeat as a no-op)."""
    runner = FakeRunner()
    handle = FakeHandle(4242)
    runner.left_running.append((LocalJob(JOB, (1,), ORG, attempt=3, started_at=NOW), handle))
    agent, _, _, _ = await make_agent(MemoryStore(), runner)
    assert agent.reports.pending == [JobStarted(JOB, NOW, attempt=3)]
    assert not handle.released and [job.job_id for job, _ in agent._adopted] == [JOB]


async def test_a_supervised_job_whose_end_is_already_queued_is_released_not_followed():
    runner = FakeRunner()
    handle = await _left_running(runner)
    done = JobFinished(JOB, NOW, exit_code=0)
    agent, _, _, _ = await make_agent(MemoryStore([JobStarted(JOB, NOW), done]), runner)
    assert handle.released
    assert agent.reports.pending == [JobStarted(JOB, NOW), done]
    assert agent._adopted == []


async def test_a_sandbox_error_becomes_the_reports_error():
    agent, runner, _, _ = await make_agent()
    await agent.apply([assigned()])
    runner.handles[JOB].exit.set_result(JobExit(exit_code=None, output_tail="", error="sandbox failed"))
    await asyncio.sleep(0.01)
    assert agent.reports.pending[-1] == JobFinished(JOB, NOW, error_message="sandbox failed")


async def test_the_runner_gets_the_jobs_image_and_its_gpus_uuids():
    agent, runner, _, _ = await make_agent()
    await agent.apply([replace(assigned(), image="docker.io/library/busybox:1.36")])
    spawned = runner.spawned[JOB]
    assert spawned.image == "docker.io/library/busybox:1.36"
    assert spawned.gpu_uuids == ("GPU-1",)  # the backend's UUID of index 1, the job's GPU


async def test_an_image_the_runner_cannot_run_is_reported_failed_not_run():
    from services.agent.adapters.processes import no_runtime_message

    agent, runner, _, _ = await make_agent()
    runner.refuse[JOB] = ValueError(no_runtime_message("busybox"))
    await agent.apply([replace(assigned(), image="busybox")])
    (report,) = agent.reports.pending
    assert isinstance(report, JobFinished) and report.exit_code is None
    assert "no container runtime" in report.error_message and "not run on the host" in report.error_message
    assert JOB not in runner.handles
