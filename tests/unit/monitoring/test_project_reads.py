"""Project-bound API keys in monitoring (issue 9, docs/projects.md): such a key reads only its
project's jobs' output and the utilization of samples its project's jobs were attributed; another
project's job (or one of none) is not found exactly like an unknown one; an unbound key sees all.
Handlers over the in-memory units of work; the servicers' reading of the binding. No I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from gpufleet.v1 import common_pb2

from services.monitoring.domain.allocations import Hold
from services.monitoring.entrypoints.access import NO_PROJECT, bound_project
from services.monitoring.entrypoints.output_consumers import to_attempt
from services.monitoring.service_layer import commands
from services.monitoring.service_layer import output_commands as oc
from services.monitoring.service_layer.handlers import handle
from services.monitoring.service_layer.output_handlers import follow_output
from services.monitoring.service_layer.output_handlers import handle as handle_output
from services.monitoring.service_layer.output_ports import StoredAttempt
from shared.contracts import jobs
from shared.errors import NotFound
from shared.events import Envelope

from .fakes import fake_dependencies
from .helpers import hold, sample
from .test_output_handlers import NODE, ORG, FakeOutputStore, chunk, deps

P, Q = uuid.uuid4(), uuid.uuid4()  # two projects of ORG


async def place(d, job: uuid.UUID, project: uuid.UUID | None, attempt: int = 1) -> None:  # type: ignore[no-untyped-def]
    """The job topic: ``job`` of ``project`` runs on NODE (one GPU)."""
    held = Hold(job, attempt, uuid.uuid4(), NODE, ORG, project, datetime.now(UTC))
    await handle_output(oc.RecordJobAttempt(ORG, job, attempt, holds=(held,), project_id=project), d)


async def read(d, job: uuid.UUID, project: uuid.UUID | None) -> bytes:  # type: ignore[no-untyped-def]
    page = await handle_output(oc.ReadOutput(ORG, job, None, 0, 0, project_id=project), d)
    return page.data


async def test_a_bound_key_reads_only_its_projects_output_others_are_not_found() -> None:
    store = FakeOutputStore()
    d = deps(store)
    mine, theirs, loose = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for job, project in ((mine, P), (theirs, Q), (loose, None)):
        await place(d, job, project)
        await handle_output(oc.StoreOutputChunks((chunk(job, 0, b"out of %s" % job.hex.encode()),)), d)
    assert await read(d, mine, P) == b"out of %s" % mine.hex.encode()
    answers = []
    for job in (theirs, loose, uuid.uuid4()):  # another project's, no project's, an unknown id
        with pytest.raises(NotFound) as err:
            await read(d, job, P)
        answers.append((err.value.message, err.value.field))
    assert len(set(answers)) == 1  # the same answer for all three
    for job in (mine, theirs, loose):  # an unbound key of the organization reads every one
        assert await read(d, job, None) == b"out of %s" % job.hex.encode()
    assert store.attempts[(mine, 1)].project_id == P and store.attempts[(loose, 1)].project_id is None


async def test_a_bound_key_cannot_follow_another_projects_output() -> None:
    store = FakeOutputStore()
    d = deps(store)
    job = uuid.uuid4()
    await place(d, job, Q)
    await handle_output(oc.StoreOutputChunks((chunk(job, 0, b"theirs"), chunk(job, 6, b"", eof=True))), d)
    with pytest.raises(NotFound):
        async for _ in follow_output(oc.FollowOutput(ORG, job, None, 0, project_id=P), d):
            pass
    pages = [p async for p in follow_output(oc.FollowOutput(ORG, job, None, 0, project_id=Q), d)]
    assert b"".join(p.data for p in pages) == b"theirs"


async def test_a_row_from_before_projects_is_unreadable_bound_until_an_event_names_its_project() -> None:
    store = FakeOutputStore()
    d = deps(store)
    job = uuid.uuid4()
    store.attempts[(job, 1)] = StoredAttempt(ORG, job, 1, 1000, 1000)  # as migrated: project NULL
    with pytest.raises(NotFound):
        await read(d, job, P)
    assert await read(d, job, None) == b""
    await handle_output(oc.RecordJobAttempt(ORG, job, 1, ended_attempt=1, project_id=P), d)
    assert store.attempts[(job, 1)].project_id == P
    assert await read(d, job, P) == b""
    await handle_output(oc.RecordJobAttempt(ORG, job, 1, project_id=Q), d)  # never re-assigned
    assert store.attempts[(job, 1)].project_id == P


async def test_an_attempt_created_from_its_placement_keeps_the_holds_project() -> None:
    store = FakeOutputStore()
    d = deps(store)
    job = uuid.uuid4()
    await place(d, job, P)
    del store.attempts[(job, 1)]  # pruned meanwhile: the chunk consumer re-creates it from the placement
    await handle_output(oc.StoreOutputChunks((chunk(job, 0, b"again"),)), d)
    assert store.attempts[(job, 1)].project_id == P
    assert await read(d, job, P) == b"again"


def test_the_job_topic_converter_carries_the_jobs_project() -> None:
    job = jobs.JobSnapshotV1.model_validate(
        {
            "job_id": uuid.uuid4(),
            "organization_id": ORG,
            "project_id": P,
            "status": "queued",
            "command": "x",
            "gpu_count": 1,
            "gpu_memory_mb": 1,
            "priority": 50,
            "created_at": datetime.now(UTC),
            "attempt": 1,
        }
    )
    cmd = to_attempt(Envelope(type=jobs.JOB_SUBMITTED, source="test", data=jobs.JobEventV1(job=job)))
    assert cmd is not None and cmd.project_id == P
    loose = job.model_copy(update={"project_id": None})
    cmd = to_attempt(Envelope(type=jobs.JOB_SUBMITTED, source="test", data=jobs.JobEventV1(job=loose)))
    assert cmd is not None and cmd.project_id is None


async def test_a_bound_key_counts_only_samples_of_its_projects_jobs() -> None:
    d, store = fake_dependencies()
    now = store.now
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()  # GPUs of a P job, a Q job, a job of no project
    start = now - timedelta(hours=1)
    await store.allocations.save_holds(
        [hold(a, ORG, start, project=P), hold(b, ORG, start, project=Q), hold(c, ORG, start)]
    )
    at = now - timedelta(minutes=1)
    await handle(commands.IngestSamples((sample(a, at, 10.0), sample(b, at, 20.0), sample(c, at, 30.0))), d)
    bound = await handle(commands.GetUtilization(organization_id=ORG, project_id=P), d)
    assert [(g.gpu_id, g.avg_utilization) for g in bound.gpus] == [(a, 10.0)]
    other = await handle(commands.GetUtilization(organization_id=ORG, project_id=uuid.uuid4()), d)
    assert other.gpus == []
    unbound = await handle(commands.GetUtilization(organization_id=ORG), d)
    assert {g.gpu_id for g in unbound.gpus} == {a, b, c}


@pytest.mark.parametrize(
    ("raw", "bound"),
    [("", None), (str(P), P), ("not-a-uuid", NO_PROJECT)],
)
def test_the_binding_is_read_from_the_principal_and_a_malformed_one_binds_to_nothing(
    raw: str, bound: uuid.UUID | None
) -> None:
    principal = common_pb2.Principal(organization_id=str(ORG), project_id=raw)
    assert bound_project(principal) == bound
