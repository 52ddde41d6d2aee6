"""Per-project caps during a cycle: Slurm QOS GrpJobs / GrpTRES(gres/gpu) for one project.

An organization's owners and admins cap how many jobs a project runs at once and how many GPUs it
holds (``Policy.project_caps``). The snapshot keeps each project's [running jobs, GPUs held]
(``Snapshot.project_running``); a cycle checks a leaf's project before quota and capacity, like
per-user caps, and counts what it places. A capped project's class waits with reason
``project_cap``; other projects and jobs without a project are not held up (the walk moves on).
"""

from __future__ import annotations

from uuid import UUID

from .decisions import PendingReason
from .policy import Policy, ProjectCap

PROJECT_CAP = "project_cap"


def project_cap_jobs(cap: int) -> PendingReason:
    return PendingReason(PROJECT_CAP, f"your project's cap of {cap} running jobs is reached")


def project_cap_gpus(cap: int, held: int, wanted: int) -> PendingReason:
    return PendingReason(
        PROJECT_CAP,
        f"your project's cap of {cap} GPUs is reached: the project holds {held} and this job needs {wanted}",
    )


class ProjectRun:
    """One capped project during one cycle: its cap and what it holds, counting this cycle's placements."""

    __slots__ = ("cap", "gpus", "jobs")

    def __init__(self, cap: ProjectCap, jobs: int, gpus: int) -> None:
        self.cap = cap
        self.jobs = jobs
        self.gpus = gpus

    def blocks(self, total_gpus: int) -> PendingReason | None:
        cap = self.cap
        if cap.max_running_jobs is not None and self.jobs + 1 > cap.max_running_jobs:
            return project_cap_jobs(cap.max_running_jobs)
        if cap.max_gpus is not None and self.gpus + total_gpus > cap.max_gpus:
            return project_cap_gpus(cap.max_gpus, self.gpus, total_gpus)
        return None

    def took(self, total_gpus: int) -> None:
        self.jobs += 1
        self.gpus += total_gpus


def project_run(
    policy: Policy,
    org: UUID,
    project: UUID | None,
    running: list[int] | None,
    runs: dict[tuple[UUID, UUID], ProjectRun],
) -> ProjectRun | None:
    """The cycle's state of a leaf's project (one per project, shared by its users' leaves); None when
    the leaf has no project or its project has no cap."""
    if project is None:
        return None
    key = (org, project)
    run = runs.get(key)
    if run is None:
        cap = policy.project_caps.get(key)
        if cap is None:
            return None
        jobs, gpus = running if running is not None else (0, 0)
        run = runs[key] = ProjectRun(cap, jobs, gpus)
    return run
