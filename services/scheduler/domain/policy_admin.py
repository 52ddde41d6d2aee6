"""The scheduling policy as operators and organization admins set it: validation, the stored shape,
its mapping onto the engine's :class:`~.engine.Policy`, and the JSON the audit trail records.

Plain Python (no I/O): the service layer (``service_layer/policy.py``) stores it, the scheduling loop
and admission at submit run under :meth:`StoredPolicy.engine_policy` of what is stored."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from shared.contracts import limits
from shared.errors import InvalidArgument, PermissionDenied

from .engine import Policy, ProjectCap, Quota, UserCap

MAX_WEIGHT = limits.POLICY_MAX_WEIGHT
MIN_HALF_LIFE_S = limits.POLICY_MIN_HALF_LIFE_SECONDS
MAX_HALF_LIFE_S = limits.POLICY_MAX_HALF_LIFE_SECONDS
MAX_COUNT = limits.POLICY_MAX_COUNT  # GPUs or jobs in a quota or a cap
MAX_USER_CAPS = limits.POLICY_MAX_USER_CAPS  # entries per organization (its default plus one per user)
_GPU_TYPE = re.compile(limits.POLICY_GPU_TYPE_PATTERN)
ADMIN_ROLES = frozenset({"owner", "admin"})

Json = dict[str, Any] | None


# ----------------------------------------------------------------------------- validation


def organization_id(raw: str, field_name: str = "organization_id") -> UUID:
    """Any well-formed UUID: the scheduler cannot read identity's organizations (docs/policy.md)."""
    try:
        return UUID(raw)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidArgument(f"{field_name} is not a valid UUID", field=field_name) from exc


def user_id(raw: str, field_name: str) -> UUID | None:
    if not raw:
        return None
    try:
        return UUID(raw)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidArgument(f"{field_name} is not a valid UUID", field=field_name) from exc


def weight(value: float, field_name: str = "weight") -> float:
    if not math.isfinite(value) or value <= 0 or value > MAX_WEIGHT:
        raise InvalidArgument(f"{field_name} must be above 0 and at most {MAX_WEIGHT:g}", field=field_name)
    return float(value)


def half_life(value: float) -> float:
    if not math.isfinite(value) or not MIN_HALF_LIFE_S <= value <= MAX_HALF_LIFE_S:
        raise InvalidArgument(
            f"half_life_seconds must be between {MIN_HALF_LIFE_S:g} and {MAX_HALF_LIFE_S:g}",
            field="half_life_seconds",
        )
    return float(value)


def count(value: int | None, field_name: str) -> int | None:
    """A non-negative GPU or job count; None (absent) means no limit."""
    if value is None:
        return None
    if not 0 <= value <= MAX_COUNT:
        raise InvalidArgument(f"{field_name} must be between 0 and {MAX_COUNT}", field=field_name)
    return int(value)


def gpu_type(value: str) -> str:
    if not _GPU_TYPE.match(value or ""):
        raise InvalidArgument(
            "gpu_type must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
            field="gpu_type",
        )
    return value


def quota(nominal: int, borrowing_limit: int | None, lending_limit: int | None) -> Quota:
    return Quota(
        nominal=count(nominal, "nominal") or 0,
        borrowing_limit=count(borrowing_limit, "borrowing_limit"),
        lending_limit=count(lending_limit, "lending_limit"),
    )


@dataclass(frozen=True)
class UserCapEntry:
    """One cap of an organization: ``user`` None is the cap of each user without one of their own."""

    user: UUID | None
    cap: UserCap


def user_caps(entries: Iterable[tuple[str, int | None, int | None]]) -> tuple[UserCapEntry, ...]:
    """(user id or "", max_running_jobs, max_gpus) per entry; at most one per user and one default."""
    out: list[UserCapEntry] = []
    seen: set[UUID | None] = set()
    for i, (raw_user, jobs, gpus) in enumerate(entries):
        user = user_id(raw_user, f"caps[{i}].user_id")
        if user in seen:
            raise InvalidArgument(
                "each user (and the organization's default) may appear once", field=f"caps[{i}].user_id"
            )
        seen.add(user)
        cap = UserCap(count(jobs, f"caps[{i}].max_running_jobs"), count(gpus, f"caps[{i}].max_gpus"))
        out.append(UserCapEntry(user, cap))
    if len(out) > MAX_USER_CAPS:
        raise InvalidArgument(f"at most {MAX_USER_CAPS} caps per organization", field="caps")
    return tuple(sorted(out, key=lambda e: (e.user is not None, e.user.int if e.user else 0)))


@dataclass(frozen=True)
class ProjectPolicyEntry:
    """One project's fair-share weight (None: 1) and caps (None: no cap) inside its organization."""

    project: UUID
    weight: float | None = None
    cap: ProjectCap = field(default_factory=ProjectCap)


MAX_PROJECT_POLICIES = MAX_USER_CAPS


def project_policies(
    entries: Iterable[tuple[str, float | None, int | None, int | None]],
) -> tuple[ProjectPolicyEntry, ...]:
    """(project id, weight, max_running_jobs, max_gpus) per entry; at most one per project. The
    scheduler cannot read identity's projects: any well-formed id is taken, and an id that is no project
    of the organization's simply matches no job (it never reaches another organization's projects,
    which are keyed by their own organization)."""
    out: list[ProjectPolicyEntry] = []
    seen: set[UUID] = set()
    for i, (raw, w, jobs, gpus) in enumerate(entries):
        name = f"policies[{i}].project_id"
        project = user_id(raw, name)
        if project is None:
            raise InvalidArgument("project_id is required", field=name)
        if project in seen:
            raise InvalidArgument("each project may appear once", field=name)
        seen.add(project)
        out.append(
            ProjectPolicyEntry(
                project,
                None if w is None else weight(w, f"policies[{i}].weight"),
                ProjectCap(
                    count(jobs, f"policies[{i}].max_running_jobs"), count(gpus, f"policies[{i}].max_gpus")
                ),
            )
        )
    if len(out) > MAX_PROJECT_POLICIES:
        raise InvalidArgument(
            f"at most {MAX_PROJECT_POLICIES} project policies per organization", field="policies"
        )
    return tuple(sorted(out, key=lambda e: e.project.int))


def project_policies_json(entries: Iterable[ProjectPolicyEntry]) -> list[dict[str, Any]]:
    return [
        {
            "project_id": str(e.project),
            "weight": e.weight,
            "max_running_jobs": e.cap.max_running_jobs,
            "max_gpus": e.cap.max_gpus,
        }
        for e in entries
    ]


def require_org_admin(role: str) -> None:
    """Per-user caps belong to an organization's owners and admins."""
    if role not in ADMIN_ROLES:
        raise PermissionDenied(
            f"the {role or 'unknown'} role cannot change scheduling caps; owners and admins can"
        )


# ----------------------------------------------------------------------------- the stored policy


@dataclass(frozen=True)
class StoredPolicy:
    """What the policy tables hold (``version`` grows with every change)."""

    version: int = 0
    half_life_s: float = 7 * 24 * 3600.0
    dedicated_lending_limit: int = 0
    fair_shares: Mapping[UUID, float] = field(default_factory=dict)
    gpu_type_weights: Mapping[str, float] = field(default_factory=dict)
    quotas: Mapping[tuple[UUID, str], Quota] = field(default_factory=dict)
    user_caps: Mapping[UUID, tuple[UserCapEntry, ...]] = field(default_factory=dict)
    project_policies: Mapping[UUID, tuple[ProjectPolicyEntry, ...]] = field(default_factory=dict)
    reclaim_lent_capacity: bool = True  # preemption (docs/policy.md#preemption)
    preemption_grace_s: int = 0

    def engine_policy(self, base: Policy) -> Policy:
        """``base`` (what the process was configured with) with this policy's values in place."""
        defaults = {org: e.cap for org, entries in self.user_caps.items() for e in entries if e.user is None}
        overrides = {
            (org, e.user): e.cap
            for org, entries in self.user_caps.items()
            for e in entries
            if e.user is not None
        }
        return replace(
            base,
            org_shares=dict(self.fair_shares),
            half_life_s=self.half_life_s,
            gpu_type_weights=dict(self.gpu_type_weights),
            quotas=dict(self.quotas),
            dedicated_lending_limit=self.dedicated_lending_limit,
            reclaim_lent_capacity=self.reclaim_lent_capacity,
            preemption_grace_s=float(self.preemption_grace_s),
            user_caps=defaults,
            user_cap_overrides=overrides,
            project_shares={
                (org, e.project): e.weight
                for org, entries in self.project_policies.items()
                for e in entries
                if e.weight is not None
            },
            project_caps={
                (org, e.project): e.cap
                for org, entries in self.project_policies.items()
                for e in entries
                if e.cap.max_running_jobs is not None or e.cap.max_gpus is not None
            },
        )

    @classmethod
    def of_engine(cls, policy: Policy) -> StoredPolicy:
        """The stored form of a configured policy (settings seed the tables with it once)."""
        caps: dict[UUID, list[UserCapEntry]] = {}
        for org, cap in policy.user_caps.items():
            caps.setdefault(org, []).append(UserCapEntry(None, cap))
        for (org, user), cap in policy.user_cap_overrides.items():
            caps.setdefault(org, []).append(UserCapEntry(user, cap))
        return cls(
            half_life_s=policy.half_life_s,
            dedicated_lending_limit=policy.dedicated_lending_limit,
            fair_shares=dict(policy.org_shares),
            gpu_type_weights=dict(policy.gpu_type_weights),
            quotas=dict(policy.quotas),
            user_caps={org: tuple(entries) for org, entries in caps.items()},
        )


def usage_rules_changed(old: Policy, new: Policy) -> bool:
    """Decayed usage in a leader's snapshot was weighed and decayed under ``old``: a change of the
    half-life or of a GPU-type weight needs it rebuilt; shares, quotas and caps apply as they are."""
    return old.half_life_s != new.half_life_s or dict(old.gpu_type_weights) != dict(new.gpu_type_weights)


# ----------------------------------------------------------------------------- audit JSON


def quota_json(q: Quota | None) -> Json:
    if q is None:
        return None
    return {"nominal": q.nominal, "borrowing_limit": q.borrowing_limit, "lending_limit": q.lending_limit}


def cap_json(cap: UserCap) -> dict[str, Any]:
    return {"max_running_jobs": cap.max_running_jobs, "max_gpus": cap.max_gpus}


def caps_json(entries: Iterable[UserCapEntry]) -> list[dict[str, Any]]:
    return [{"user_id": str(e.user) if e.user else None, **cap_json(e.cap)} for e in entries]


def policy_json(p: StoredPolicy) -> dict[str, Any]:
    out = _policy_json(p)
    if not p.project_policies:
        del out["project_policies"]  # as recorded before projects
    return out


def _policy_json(p: StoredPolicy) -> dict[str, Any]:
    return {
        "half_life_seconds": p.half_life_s,
        "dedicated_lending_limit": p.dedicated_lending_limit,
        "fair_shares": {str(o): w for o, w in sorted(p.fair_shares.items(), key=lambda i: i[0].int)},
        "gpu_type_weights": dict(sorted(p.gpu_type_weights.items())),
        "quotas": [
            {"organization_id": str(o), "gpu_type": t, **(quota_json(q) or {})}
            for (o, t), q in sorted(p.quotas.items(), key=lambda i: (i[0][0].int, i[0][1]))
        ],
        "user_caps": {str(o): caps_json(e) for o, e in sorted(p.user_caps.items(), key=lambda i: i[0].int)},
        "project_policies": {
            str(o): project_policies_json(e)
            for o, e in sorted(p.project_policies.items(), key=lambda i: i[0].int)
        },
    }


@dataclass(frozen=True)
class Actor:
    """Who made a change: the operator, or an organization's user through one of its API keys."""

    operator: bool
    organization_id: UUID | None = None
    user_id: UUID | None = None
    api_key_id: UUID | None = None
    name: str | None = None  # which operator (identity's named operators); None: unnamed, or a member

    @property
    def kind(self) -> str:
        return "operator" if self.operator else "member"


OPERATOR = Actor(operator=True)


def named_operator(name: str) -> Actor:
    """The operator as identity named it ("" from an identity that names none: unnamed)."""
    return Actor(operator=True, name=name or None)


@dataclass(frozen=True)
class AuditEntry:
    actor: Actor
    method: str
    organization_id: UUID | None  # the organization the change concerns (None: global)
    target: dict[str, Any]
    before: Any
    after: Any
    id: int = 0
    at: Any = None  # datetime once stored
