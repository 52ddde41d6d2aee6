"""What the scheduler records in the one audit log (docs/audit.md): its callers' job changes and every
policy change. Plain functions from domain objects to audit CloudEvents; the unit of work writes them to
the outbox in the change's transaction (``record_audit``).

Job changes: ``job.submit``, ``job.cancel``, ``job.hold``, ``job.release``, ``job.priority`` with the
job's caller-visible state before and after. Policy, plan, limit and per-user-cap changes are the rows
of ``policy_audit`` (its own trail stays as it is): each is bridged into one record ``policy.<method>``
(``PolicyService/SetHalfLife`` -> ``policy.set_half_life``) with the same before/after and actor.
"""

from __future__ import annotations

import re
from typing import Any

from shared import audit as shared_audit
from shared.contracts.audit import MAX_TARGET_ID, AuditActorV1, AuditRecordedV1
from shared.events import Envelope

from ..domain.model import Job
from ..domain.policy_admin import AuditEntry

SERVICE = "scheduler"


def job_state(job: Job) -> dict[str, Any]:
    """What a caller changes about a job, and its status (no command text: it can hold anything)."""
    return {
        "status": job.status.value,
        "priority": job.priority,
        "held": job.held,
        "name": job.name,
        "gpu_count": job.gpu_count,
        "nodes": job.nodes,
        "cancel_requested_at": job.cancel_requested_at,
        "attempt": job.attempt,
    }


def job_change(
    action: str,
    job: Job,
    before: dict[str, Any] | None,
    *,
    call: shared_audit.AuditCall | None = None,
) -> Envelope[AuditRecordedV1]:
    return shared_audit.build(
        SERVICE,
        action,
        "job",
        job.id,
        organization_id=job.organization_id,
        before=before,
        after=job_state(job),
        call=call,
    )


def _snake(method: str) -> str:
    name = method.rsplit("/", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().replace(".", "_")


def _jsonable(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return value if isinstance(value, dict) else {"value": value}


def policy_change(entry: AuditEntry) -> Envelope[AuditRecordedV1]:
    """A ``policy_audit`` row as the one log's record; the actor is the entry's own (the seed is the
    operator's, as in ``policy_audit``), the request id the call's."""
    a = entry.actor
    actor = (
        AuditActorV1(kind="operator", operator_name=a.name or "admin")
        if a.operator
        else AuditActorV1(kind="user", user_id=a.user_id, api_key_id=a.api_key_id)
    )
    target = ",".join(f"{k}={v}" for k, v in sorted(entry.target.items()))[:MAX_TARGET_ID]
    return shared_audit.build(
        SERVICE,
        f"policy.{_snake(entry.method)}",
        "policy",
        target,
        organization_id=entry.organization_id,
        before=_jsonable(entry.before),
        after=_jsonable(entry.after),
        call=shared_audit.AuditCall(actor=actor, request_id=shared_audit.current().request_id),
    )


def queued_change(before: dict[str, Any], job: Job) -> str:
    """Which change a hold, release or priority update made (from the state it changed)."""
    if before["held"] != job.held:
        return "job.hold" if job.held else "job.release"
    if before["priority"] != job.priority:
        return "job.priority"
    return "job.change"
