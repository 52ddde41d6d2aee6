"""Reconciliation table: scheduler assignments x local jobs -> actions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.agent.domain.model import LOST_MESSAGE, Assignment, JobFinished, LocalJob
from services.agent.domain.reconcile import Finish, Start, Stop, reconcile

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
GPUS = {0, 1}


def a(
    status: str = "scheduled",
    cancel: bool = False,
    job: str = "j1",
    gpus: tuple[int, ...] = (0,),
    command: str = "echo hi",
    attempt: int = 0,
) -> Assignment:
    return Assignment(
        job_id=job,
        command=command,
        gpu_indices=gpus,
        organization_id="org",
        status=status,
        cancel_requested=cancel,
        attempt=attempt,
    )


def local(job: str = "j1", stopping: bool = False) -> LocalJob:
    return LocalJob(job_id=job, gpu_indices=(0,), organization_id="org", stopping=stopping)


CASES = [
    # (name, assignments, running locally, settled, expected actions)
    ("scheduled and unknown: start", [a()], [], set(), [Start(a())]),
    ("scheduled and already running here: nothing", [a()], [local()], set(), []),
    ("running on server and here: nothing", [a("running")], [local()], set(), []),
    (
        "running on server, not here: lost",
        [a("running")],
        [],
        set(),
        [Finish(JobFinished("j1", NOW, error_message=LOST_MESSAGE))],
    ),
    (
        "cancel requested while running here: stop",
        [a("running", cancel=True)],
        [local()],
        set(),
        [Stop("j1", cancelled=True)],
    ),
    (
        "cancel requested, stop already ordered: nothing",
        [a("running", cancel=True)],
        [local(stopping=True)],
        set(),
        [],
    ),
    (
        "cancel requested before start: report cancelled, never start",
        [a(cancel=True)],
        [],
        set(),
        [Finish(JobFinished("j1", NOW, cancelled=True))],
    ),
    (
        "cancel requested while running elsewhere-in-time (lost): cancelled",
        [a("running", cancel=True)],
        [],
        set(),
        [Finish(JobFinished("j1", NOW, cancelled=True))],
    ),
    ("finished here, report in flight (scheduled): nothing", [a()], [], {("j1", 0)}, []),
    ("finished here, report in flight (running): nothing", [a("running")], [], {("j1", 0)}, []),
    ("finished here, cancel arrived late: nothing", [a("running", cancel=True)], [], {("j1", 0)}, []),
    # A job requeued onto this node as a new attempt runs again: only its earlier attempt is settled.
    ("requeued here as a new attempt: start", [a(attempt=2)], [], {("j1", 1)}, [Start(a(attempt=2))]),
    ("running here, no longer assigned: stop as orphan", [], [local()], set(), [Stop("j1", cancelled=False)]),
    ("orphan already stopping: nothing", [], [local(stopping=True)], set(), []),
    (
        "GPU not on this node: error, never start",
        [a(gpus=(0, 7))],
        [],
        set(),
        [Finish(JobFinished("j1", NOW, error_message="could not start: GPU index 7 is not on this node"))],
    ),
    (
        "same GPU twice: error",
        [a(gpus=(1, 1))],
        [],
        set(),
        [
            Finish(
                JobFinished("j1", NOW, error_message="could not start: the same GPU index was assigned twice")
            )
        ],
    ),
    (
        "blank command: error",
        [a(command="  ")],
        [],
        set(),
        [Finish(JobFinished("j1", NOW, error_message="could not start: the command is empty"))],
    ),
    ("unknown status: left alone", [a("succeeded")], [], set(), []),
    ("duplicate assignment: acted on once", [a(), a()], [], set(), [Start(a())]),
    (
        "several jobs: one action each, in order",
        [a(job="j1"), a("running", job="j2"), a("running", cancel=True, job="j3")],
        [local("j3")],
        set(),
        [
            Start(a(job="j1")),
            Finish(JobFinished("j2", NOW, error_message=LOST_MESSAGE)),
            Stop("j3", cancelled=True),
        ],
    ),
]


@pytest.mark.parametrize(
    ("assignments", "running", "settled", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_reconcile(assignments, running, settled, expected):
    got = reconcile(assignments, {j.job_id: j for j in running}, settled, GPUS, NOW)
    assert got == expected


def test_reconcile_is_idempotent_on_the_same_inputs():
    inputs = ([a(job="x"), a("running", job="y")], {}, set(), GPUS, NOW)
    assert reconcile(*inputs) == reconcile(*inputs)
