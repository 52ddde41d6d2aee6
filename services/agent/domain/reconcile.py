"""Reconciliation: compare what the scheduler wants on this node with what runs here, decide actions.

Pure: no clock, no I/O. The scheduler is level-triggered (it answers "what should run on your node"),
so the agent decides every poll from scratch, and deciding twice on the same inputs must be harmless.

=========================  =================  =========================  ==============================
scheduler says             cancel requested   here                       action
=========================  =================  =========================  ==============================
scheduled                  no                 unknown                    Start
scheduled                  no                 unknown, GPU not on node   Finish (error, never started)
scheduled / running        yes                unknown                    Finish (cancelled, not started)
running                    no                 unknown                    Finish (lost: agent restarted)
any                        yes                running, not stopping      Stop (cancel)
any                        any                running (otherwise)        nothing
any                        any                settled (ran, reported)    nothing (report in flight)
(not assigned)             -                  running, not stopping      Stop (orphaned)
=========================  =================  =========================  ==============================

"settled" jobs are those this agent already ran to the end or reported: the scheduler keeps listing
them until it has acknowledged the report, and they must not be started twice or reported lost.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from .model import LOST_MESSAGE, RUNNING, SCHEDULED, Assignment, JobFinished, LocalJob


@dataclass(frozen=True)
class Start:
    assignment: Assignment


@dataclass(frozen=True)
class Stop:
    """Stop a local job. ``cancelled``: because the user asked (else the scheduler dropped it)."""

    job_id: str
    cancelled: bool


@dataclass(frozen=True)
class Finish:
    """Report a job finished without running anything here."""

    report: JobFinished


Action = Start | Stop | Finish


def reconcile(
    assignments: Iterable[Assignment],
    running: Mapping[str, LocalJob],
    settled: Collection[tuple[str, int]],
    gpu_indices: Collection[int],
    now: datetime,
) -> list[Action]:
    """The actions that bring this node in line with the scheduler's assignments (in a stable order)."""
    actions: list[Action] = []
    seen: set[str] = set()
    for a in assignments:
        if a.job_id in seen:
            continue
        seen.add(a.job_id)
        # Settled per attempt: a job requeued onto this node as a new attempt must run again.
        action = _decide(a, running.get(a.job_id), (a.job_id, a.attempt) in settled, gpu_indices, now)
        if action is not None:
            actions.append(action)
    for job_id, job in running.items():
        if job_id not in seen and not job.stopping:
            actions.append(Stop(job_id, cancelled=False))
    return actions


def _decide(
    a: Assignment, local: LocalJob | None, settled: bool, gpu_indices: Collection[int], now: datetime
) -> Action | None:
    if local is not None:
        return Stop(a.job_id, cancelled=True) if a.cancel_requested and not local.stopping else None
    if settled:
        return None
    if a.cancel_requested:
        return Finish(JobFinished(a.job_id, now, cancelled=True, attempt=a.attempt))
    if a.status == RUNNING:
        return Finish(JobFinished(a.job_id, now, error_message=LOST_MESSAGE, attempt=a.attempt))
    if a.status != SCHEDULED:
        return None  # a status this agent does not know: leave it to the scheduler
    problem = placement_problem(a, gpu_indices)
    if problem:
        return Finish(
            JobFinished(a.job_id, now, error_message=f"could not start: {problem}", attempt=a.attempt)
        )
    return Start(a)


def placement_problem(a: Assignment, gpu_indices: Collection[int]) -> str | None:
    """Why the assignment cannot run on this node's GPUs, or None."""
    if not a.command.strip():
        return "the command is empty"
    missing = sorted(set(a.gpu_indices) - set(gpu_indices))
    if missing:
        return f"GPU index {', '.join(map(str, missing))} is not on this node"
    if len(set(a.gpu_indices)) != len(a.gpu_indices):
        return "the same GPU index was assigned twice"
    return None
