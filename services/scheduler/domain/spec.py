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
import re
from collections.abc import Collection
from dataclasses import asdict, dataclass
from uuid import UUID

from shared.contracts.limits import (
    DEFAULT_PRIORITY,
    IMAGE_PATTERN,
    MAX_CANCEL_REASON,
    MAX_COMMAND,
    MAX_CPU_CORES,
    MAX_GPU_MEMORY_MB,
    MAX_GPU_TYPE,
    MAX_GPUS,
    MAX_IDEMPOTENCY_KEY,
    MAX_IMAGE,
    MAX_JOB_NAME,
    MAX_NODES,
    MAX_PRIORITY,
    MAX_RAM_MB,
    MAX_TIME_LIMIT_SECONDS,
    MIN_GPUS,
    MIN_NODES,
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
    nodes: int = 1  # a gang: gpu_count GPUs on each of this many nodes
    cpu_cores: int = 0  # per node
    ram_mb: int = 0  # per node
    time_limit_seconds: int | None = None  # as asked; None: the platform's default applies
    hold: bool = False
    no_requeue: bool = False
    project_id: UUID | None = None  # the project the job belongs to (None: none); authorised by the caller
    image: str | None = None  # a container image reference to run the command in (None: the host sandbox)


_IMAGE = re.compile(IMAGE_PATTERN)


def check_image(image: str | None) -> str | None:
    """A container image reference of a sane shape (``limits.IMAGE_PATTERN``), or None for none."""
    image = (image or "").strip() or None
    if image is None:
        return None
    _at_most(image, MAX_IMAGE, "image")
    if not _IMAGE.match(image):
        raise InvalidArgument(
            "image must be a container image reference such as nvcr.io/nvidia/pytorch:24.01-py3 "
            "([registry[:port]/]path[:tag][@sha256:digest], lower-case path, no spaces)",
            field="image",
        )
    return image


@dataclass(frozen=True)
class TimeLimits:
    """The platform's default and maximum time limit (None: no default / no maximum beyond the
    contract's own bound)."""

    default_seconds: int | None = None
    max_seconds: int | None = None

    def effective(self, asked: int | None) -> int | None:
        """The limit a job runs under; raises when it asks for more than the maximum."""
        top = min(self.max_seconds or MAX_TIME_LIMIT_SECONDS, MAX_TIME_LIMIT_SECONDS)
        if asked is None:
            return None if self.default_seconds is None else min(self.default_seconds, top)
        if not 1 <= asked <= top:
            raise InvalidArgument(
                f"time_limit_seconds must be between 1 and {top} (0 or absent: the default)",
                field="time_limit_seconds",
            )
        return asked


class IdempotencyKeyReused(Conflict):
    """The key names an earlier job whose request differs from this one."""


# Joins a keyed batch's key and a job's index into the key that job is stored under. A key the caller
# gives (a job's or a batch's) may not hold it, so no single submit can name a batch's job, or the
# reverse (HTTP header values cannot carry it anyway).
BATCH_KEY_SEPARATOR = "\x1f"


def check_given_key(key: str, field: str = "idempotency_key") -> None:
    """A caller's idempotency key: no NUL, no :data:`BATCH_KEY_SEPARATOR`."""
    _no_nul(key, field)
    if BATCH_KEY_SEPARATOR in key:
        raise InvalidArgument(f"{field} must not contain control character U+001F", field=field)


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
    nodes: int | None = None,
    cpu_cores: int = 0,
    ram_mb: int = 0,
    time_limit_seconds: int | None = None,
    hold: bool = False,
    no_requeue: bool = False,
    limits: TimeLimits | None = None,
    project_id: UUID | None = None,
    image: str | None = None,
) -> JobSpec:
    """Validate a submission; raises :class:`InvalidArgument` naming the first bad field.
    ``time_limit_seconds`` None or 0 means the platform's default."""
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
    nodes = MIN_NODES if nodes is None else nodes
    if not MIN_NODES <= nodes <= MAX_NODES:
        raise InvalidArgument(f"nodes must be between {MIN_NODES} and {MAX_NODES}", field="nodes")
    if not 0 <= cpu_cores <= MAX_CPU_CORES:
        raise InvalidArgument(
            f"cpu_cores must be between 0 and {MAX_CPU_CORES} (per node)", field="cpu_cores"
        )
    if not 0 <= ram_mb <= MAX_RAM_MB:
        raise InvalidArgument(f"ram_mb must be between 0 and {MAX_RAM_MB} (MB per node)", field="ram_mb")
    time_limit = (limits or TimeLimits()).effective(time_limit_seconds or None)
    image = check_image(image)
    return JobSpec(
        command=command,
        gpu_count=gpu_count,
        gpu_memory_mb=gpu_memory_mb,
        gpu_type=gpu_type,
        priority=priority,
        webhook_url=webhook_url or None,
        name=name or None,
        idempotency_key=idempotency_key or None,
        nodes=nodes,
        cpu_cores=cpu_cores,
        ram_mb=ram_mb,
        time_limit_seconds=time_limit,
        hold=hold,
        no_requeue=no_requeue,
        project_id=project_id,
        image=image,
    )


# Fields added after fingerprints were first kept, with the value a request that does not use them has.
_LATER_DEFAULTS = {"nodes": 1, "cpu_cores": 0, "ram_mb": 0, "hold": False, "no_requeue": False}


def request_fingerprint(spec: JobSpec) -> str:
    """SHA-256 (hex) of the canonical JSON of the normalized request, without the key itself.

    Absent optional fields are left out, so a field added to the spec later does not change the
    fingerprint of requests that do not use it (a retry across an upgrade still matches).
    """
    fields = {
        k: str(v) if isinstance(v, UUID) else v
        for k, v in asdict(spec).items()
        if k != "idempotency_key" and v is not None and not (k in _LATER_DEFAULTS and v == _LATER_DEFAULTS[k])
    }
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
