"""What a tenant may ask for: the validated, normalized request of a new job.

Every limit comes from ``shared.contracts.limits`` and the URL shape from ``shared.urls``, so this
module refuses exactly what the gateway's request models refuse (and what the OpenAPI document says).

Priority: ``SubmitJobRequest.priority`` is ``optional int32``, so an unset priority and an explicit 0
differ on the wire. The gRPC entrypoint passes ``None`` when the field is absent, which becomes
``DEFAULT_PRIORITY``; an explicit value, 0 included, is taken as given (0 is the lowest priority).

Idempotency: a job submitted with an ``idempotency_key`` keeps :func:`request_fingerprint` of its
spec. A later submit with the same key is the same job only if it is the same request; a different
request under a used key is refused (:class:`IdempotencyKeyReused`) rather than silently answered with
a job the caller did not ask for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import asdict, dataclass

from shared.contracts.limits import (
    DEFAULT_PRIORITY,
    MAX_CANCEL_REASON,
    MAX_COMMAND,
    MAX_GPU_MEMORY_MB,
    MAX_GPU_TYPE,
    MAX_GPUS,
    MAX_IDEMPOTENCY_KEY,
    MAX_JOB_NAME,
    MAX_PRIORITY,
    MIN_GPUS,
    MIN_PRIORITY,
)
from shared.errors import Conflict, InvalidArgument
from shared.urls import check_http_url


@dataclass(frozen=True)
class JobSpec:
    command: str
    gpu_count: int
    gpu_memory_mb: int  # per GPU; 0 = any
    gpu_type: str | None
    priority: int
    webhook_url: str | None
    name: str | None
    idempotency_key: str | None


class IdempotencyKeyReused(Conflict):
    """The key names an earlier job whose request differs from this one."""


def _no_nul(value: str, field: str) -> None:
    # PostgreSQL TEXT cannot hold NUL; say so precisely instead of failing in the database.
    if "\x00" in value:
        raise InvalidArgument(f"{field} must not contain NUL characters", field=field)


def _at_most(value: str, limit: int, field: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{field} is longer than {limit} characters", field=field)


def job_spec(
    *,
    command: str,
    gpu_count: int,
    gpu_memory_mb: int = 0,
    gpu_type: str | None = None,
    priority: int | None = None,
    webhook_url: str | None = None,
    name: str | None = None,
    idempotency_key: str | None = None,
) -> JobSpec:
    """Validate a submission; raises :class:`InvalidArgument` naming the first bad field."""
    if not command or not command.strip():
        raise InvalidArgument("command is required", field="command")
    _at_most(command, MAX_COMMAND, "command")
    _no_nul(command, "command")
    if not MIN_GPUS <= gpu_count <= MAX_GPUS:
        raise InvalidArgument(f"gpu_count must be between {MIN_GPUS} and {MAX_GPUS}", field="gpu_count")
    if not 0 <= gpu_memory_mb <= MAX_GPU_MEMORY_MB:
        raise InvalidArgument(
            f"gpu_memory_mb must be between 0 and {MAX_GPU_MEMORY_MB} (MB per GPU, 0 = any)",
            field="gpu_memory_mb",
        )
    if priority is None:
        priority = DEFAULT_PRIORITY
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidArgument(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}", field="priority")
    gpu_type = (gpu_type or "").strip() or None
    if gpu_type is not None:
        _at_most(gpu_type, MAX_GPU_TYPE, "gpu_type")
        _no_nul(gpu_type, "gpu_type")
    if webhook_url:
        check_http_url(webhook_url, "webhook_url")
    if name is not None:
        _at_most(name, MAX_JOB_NAME, "name")
        _no_nul(name, "name")
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidArgument(
                f"idempotency_key must be 1..{MAX_IDEMPOTENCY_KEY} characters", field="idempotency_key"
            )
        _no_nul(idempotency_key, "idempotency_key")
    return JobSpec(
        command=command,
        gpu_count=gpu_count,
        gpu_memory_mb=gpu_memory_mb,
        gpu_type=gpu_type,
        priority=priority,
        webhook_url=webhook_url or None,
        name=name or None,
        idempotency_key=idempotency_key or None,
    )


def request_fingerprint(spec: JobSpec) -> str:
    """SHA-256 (hex) of the canonical JSON of the normalized request, without the key itself.

    Absent optional fields are left out, so a field added to the spec later does not change the
    fingerprint of requests that do not use it (a retry across an upgrade still matches).
    """
    fields = {k: v for k, v in asdict(spec).items() if k != "idempotency_key" and v is not None}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_same_request(spec: JobSpec, stored_fingerprint: str) -> None:
    """Refuse a reused ``idempotency_key`` whose request differs from the one that created the job."""
    if request_fingerprint(spec) != stored_fingerprint:
        raise IdempotencyKeyReused(
            "idempotency_key was already used with a different request; retry with the same request "
            "to get its job, or use a new key for a new job",
            field="idempotency_key",
        )


def check_gpu_type(spec: JobSpec, known: Collection[str]) -> None:
    """An unknown type could never be placed; refuse it now rather than queue it forever."""
    if spec.gpu_type is not None and spec.gpu_type not in known:
        names = ", ".join(sorted(known)) or "none"
        raise InvalidArgument(f"unknown gpu_type {spec.gpu_type!r} (known: {names})", field="gpu_type")


def check_cancel_reason(reason: str | None) -> str | None:
    if not reason:
        return None
    _at_most(reason, MAX_CANCEL_REASON, "reason")
    _no_nul(reason, "reason")
    return reason
