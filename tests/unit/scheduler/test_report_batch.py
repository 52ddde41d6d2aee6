"""A batch of agent reports is applied report after report on jobs read once, and written once at the end
(service_layer/handlers.py, ``_ReportBatch``): the outcome must be what applying the reports one by one
gives, a refused report must change nothing, and a job's every transition must be recorded."""

from __future__ import annotations

import dataclasses
import uuid

from services.scheduler.domain.model import JobStatus
from services.scheduler.service_layer import commands, handlers
from shared.errors import InvalidArgument, NotFound

from .fakes import fake_dependencies, schedule_round
from .test_handlers import NODE, add_gpus, inventory_gpu, submit


class CountingUow:
    """Counts the writes a batch makes through the fake unit of work."""

    def __init__(self, factory) -> None:
        self.factory, self.saves, self.releases = factory, [], []

    def __call__(self, **kw):
        outer = self

        class _Ctx:
            async def __aenter__(self):
                self.inner = await (cm := outer.factory(**kw)).__aenter__()
                self.cm = cm
                save_jobs, release = self.inner.save_jobs, self.inner.release_gpus

                async def counted_save(jobs):
                    outer.saves.append([j.id for j in jobs])
                    await save_jobs(jobs)

                async def counted_release(*ids):
                    outer.releases.append(ids)
                    await release(*ids)

                self.inner.save_jobs, self.inner.release_gpus = counted_save, counted_release
                return self.inner

            async def __aexit__(self, *exc):
                return await self.cm.__aexit__(*exc)

        return _Ctx()


async def test_started_and_finished_of_one_job_in_one_batch_end_it_with_every_step_recorded():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0), inventory_gpu(1))
    org = uuid.uuid4()
    a = await handlers.submit_job(submit(org), deps)
    b = await handlers.submit_job(submit(org), deps)
    placed = {j.id for j in await schedule_round(deps)}
    assert placed == {a.id, b.id}
    counting = CountingUow(deps.uow)
    batched = dataclasses.replace(deps, uow=counting)
    node = str(NODE)
    answers = await handlers.report_jobs(
        commands.ReportJobs(
            (
                commands.ReportJobStarted(node_id=node, job_id=str(a.id)),
                commands.ReportJobStarted(node_id=node, job_id=str(uuid.uuid4())),  # nobody's job
                commands.ReportJobStarted(node_id=node, job_id="not-a-uuid"),
                commands.ReportJobStarted(node_id=node, job_id=str(b.id)),
                commands.ReportJobFinished(node_id=node, job_id=str(a.id), exit_code=0, output_tail="ok"),
                commands.ReportJobFinished(node_id=node, job_id=str(a.id), exit_code=1),  # late repeat
            )
        ),
        batched,
    )
    assert [type(x) if x else None for x in answers] == [None, NotFound, InvalidArgument, None, None, None]
    # one write for the batch: both jobs once, a's GPUs released once
    assert counting.saves == [[a.id, b.id]] and counting.releases == [(a.id,)]
    got_a = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(a.id)), deps)
    got_b = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(b.id)), deps)
    assert got_a.status is JobStatus.SUCCEEDED and got_a.exit_code == 0 and got_a.output_tail == "ok"
    assert [h.status for h in got_a.history] == [
        JobStatus.QUEUED,
        JobStatus.SCHEDULED,
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
    ]
    assert got_b.status is JobStatus.RUNNING
    assert [e.kind for e in uow.store.outbox if e.job.id == a.id] == [
        "submitted",
        "scheduled",
        "started",
        "succeeded",
    ]
    assert list(uow.store.allocations.values()) == [b.id]


async def test_a_batch_that_ends_a_job_and_then_reports_its_past_attempt_keeps_the_requeue():
    """A loss requeues the job; a later report in the same batch about the job on that node sees it
    requeued (not the row as it was before the batch), as one report per transaction would."""
    deps, _, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    org = uuid.uuid4()
    job = await handlers.submit_job(submit(org), deps)
    await schedule_round(deps)
    node = str(NODE)
    answers = await handlers.report_jobs(
        commands.ReportJobs(
            (
                commands.ReportJobFinished(
                    node_id=node, job_id=str(job.id), error_message="lost: agent restarted"
                ),
                commands.ReportJobFinished(node_id=node, job_id=str(job.id), exit_code=0, attempt=1),
            )
        ),
        deps,
    )
    assert answers == [None, None]  # the second is about attempt 1, which is over: taken, ignored
    got = await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)
    assert got.status is JobStatus.QUEUED and got.attempt == 2
