"""The operator's (and organization admins') settings a cycle runs under."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from .model import AccountPath

SEVEN_DAYS_S = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Quota:
    """Kueue's cohort model for one (organization, GPU type).

    ``nominal`` GPUs are the organization's own; it may use up to ``nominal + borrowing_limit`` (None:
    no limit) by borrowing what other organizations lend; of its idle nominal it lends at most
    ``lending_limit`` (None: all of it)."""

    nominal: int = 0
    borrowing_limit: int | None = None
    lending_limit: int | None = None


@dataclass(frozen=True, slots=True)
class UserCap:
    """Slurm QOS MaxJobsPerUser / MaxTRESPerUser(gres/gpu)-style caps for each user of an organization."""

    max_running_jobs: int | None = None
    max_gpus: int | None = None


@dataclass(frozen=True, slots=True)
class ProjectCap:
    """Slurm QOS GrpJobs / GrpTRES(gres/gpu)-style caps of one project of an organization (``projects``)."""

    max_running_jobs: int | None = None
    max_gpus: int | None = None


@dataclass(frozen=True)
class Policy:
    """Fair-share shares, GPU-type weights, quotas and caps.

    A GPU type that appears in no quota and on no dedicated node is an open pool: no quota applies to
    it. Once a type is managed (any quota names it, or a dedicated node has it), an organization without
    an entry for it has nominal 0 and may borrow without limit; capacity of that type that no nominal
    covers is lendable to everyone. A dedicated node's GPUs add to its owner's nominal for their type;
    the owner's ``lending_limit`` (``dedicated_lending_limit`` when the owner has no entry for the type)
    bounds how many of them other organizations may hold."""

    org_shares: Mapping[UUID, float] = field(default_factory=dict)
    project_shares: Mapping[tuple[UUID, UUID], float] = field(default_factory=dict)  # (org, project)
    user_shares: Mapping[tuple[UUID, UUID], float] = field(default_factory=dict)  # (org, user)
    half_life_s: float = SEVEN_DAYS_S
    gpu_type_weights: Mapping[str, float] = field(default_factory=dict)  # Slurm TRESBillingWeights
    quotas: Mapping[tuple[UUID, str], Quota] = field(default_factory=dict)  # (org, gpu type)
    dedicated_lending_limit: int = 0
    user_caps: Mapping[UUID, UserCap] = field(default_factory=dict)  # per organization, for each user
    user_cap_overrides: Mapping[tuple[UUID, UUID], UserCap] = field(default_factory=dict)  # (org, user)
    project_caps: Mapping[tuple[UUID, UUID], ProjectCap] = field(default_factory=dict)  # (org, project)
    reject_never_fitting: bool = True  # False: such jobs wait with reason never_fits instead
    fabric_labels: tuple[str, ...] = ("nvlink_domain", "rack")  # a gang prefers nodes sharing these, in order
    estimate_starts: bool = True
    # Preemption (``preemption``): an organization's waiting job within its nominal quota takes back
    # GPUs that other organizations hold beyond theirs; a borrowed job runs at least the grace period
    # (seconds since it was placed) before it may be stopped for that (Slurm's PreemptExemptTime).
    reclaim_lent_capacity: bool = True
    preemption_grace_s: float = 0.0

    def weight(self, gpu_type: str) -> float:
        return self.gpu_type_weights.get(gpu_type, 1.0)

    def shares(self, path: AccountPath) -> float:
        """The weight of an account among its siblings (default 1)."""
        kind = path[0]
        if kind == "org":
            value = self.org_shares.get(path[1], 1.0)
        elif kind == "project":
            value = self.project_shares.get((path[1], path[2]), 1.0)
        else:
            value = self.user_shares.get((path[1], path[3]), 1.0)
        return value if value > 0 else 1e-9  # a zero share still orders (last), never divides by zero

    def user_cap(self, org: UUID, user: UUID) -> UserCap | None:
        return self.user_cap_overrides.get((org, user)) or self.user_caps.get(org)
