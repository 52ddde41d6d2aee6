"""What a tenant may ask for: the validated, normalized request of a new job.

Priority and proto3: ``SubmitJobRequest.priority`` is a plain ``int32``, so on the gRPC wire an unset
priority and an explicit 0 are the same bytes. The proto documents "0..100, default 50 when unset"; we
honour the default, which means the gRPC entrypoint turns 0 into "unset" (-> 50) and priority 0 is not
expressible over gRPC v1 (1 is the lowest a caller can ask for). The domain itself accepts 0..100 when
a value is given, so a future ``optional int32 priority`` (wire compatible) makes 0 expressible without
touching this module. We chose this over "0 means 0" because every client that omits the field would
otherwise land at the very bottom of the queue, contradicting the documented default.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import InvalidArgument

MAX_COMMAND = 10_000
MAX_GPUS = 16
DEFAULT_PRIORITY = 50
MAX_PRIORITY = 100
MAX_NAME = 200
MAX_IDEMPOTENCY_KEY = 200
MAX_URL = 2048


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


def _no_nul(value: str, field: str) -> None:
    # PostgreSQL TEXT cannot hold NUL; say so precisely instead of failing in the database.
    if "\x00" in value:
        raise InvalidArgument(f"{field} must not contain NUL characters", field=field)


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
    if len(command) > MAX_COMMAND:
        raise InvalidArgument(f"command is longer than {MAX_COMMAND} characters", field="command")
    _no_nul(command, "command")
    if not 1 <= gpu_count <= MAX_GPUS:
        raise InvalidArgument(f"gpu_count must be between 1 and {MAX_GPUS}", field="gpu_count")
    if gpu_memory_mb < 0:
        raise InvalidArgument("gpu_memory_mb must be >= 0 (MB per GPU, 0 = any)", field="gpu_memory_mb")
    if priority is None:
        priority = DEFAULT_PRIORITY
    if not 0 <= priority <= MAX_PRIORITY:
        raise InvalidArgument(f"priority must be between 0 and {MAX_PRIORITY}", field="priority")
    gpu_type = gpu_type.strip() if gpu_type else None
    if gpu_type is not None:
        _no_nul(gpu_type, "gpu_type")
    if webhook_url:
        _check_url(webhook_url)
    if name is not None:
        if len(name) > MAX_NAME:
            raise InvalidArgument(f"name is longer than {MAX_NAME} characters", field="name")
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


def _check_url(url: str) -> None:
    if len(url) > MAX_URL:
        raise InvalidArgument(f"webhook_url is longer than {MAX_URL} characters", field="webhook_url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise InvalidArgument("webhook_url is not a valid URL", field="webhook_url") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument("webhook_url must be an http(s) URL with a host", field="webhook_url")
    if any(c.isspace() for c in url) or "\x00" in url:
        raise InvalidArgument("webhook_url must not contain whitespace", field="webhook_url")


def check_gpu_type(spec: JobSpec, known: Collection[str]) -> None:
    """An unknown type could never be placed; refuse it now rather than queue it forever."""
    if spec.gpu_type is not None and spec.gpu_type not in known:
        names = ", ".join(sorted(known)) or "none"
        raise InvalidArgument(f"unknown gpu_type {spec.gpu_type!r} (known: {names})", field="gpu_type")


MAX_CANCEL_REASON = 500


def check_cancel_reason(reason: str | None) -> str | None:
    if not reason:
        return None
    if len(reason) > MAX_CANCEL_REASON:
        raise InvalidArgument(f"reason is longer than {MAX_CANCEL_REASON} characters", field="reason")
    _no_nul(reason, "reason")
    return reason
