"""Errors that carry their meaning.

A service raises a :class:`DomainError` subclass; exactly one place renders it: the gRPC layer maps
``code`` to a status code (``shared.grpc``), the gateway maps the gRPC status to an HTTP status and an
RFC 9457 problem body. Messages must never mention another organization's data.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    FAILED_PRECONDITION = "failed_precondition"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    UNAVAILABLE = "unavailable"
    RESOURCE_EXHAUSTED = "resource_exhausted"


class DomainError(Exception):
    code: ErrorCode = ErrorCode.INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def trailers(self) -> tuple[tuple[str, str], ...]:
        """gRPC trailing metadata that goes with this error (``shared.grpc`` sends it)."""
        return ()


class InvalidArgument(DomainError):
    code = ErrorCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class Conflict(DomainError):
    code = ErrorCode.CONFLICT


class FailedPrecondition(DomainError):
    code = ErrorCode.FAILED_PRECONDITION


class Unauthenticated(DomainError):
    code = ErrorCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = ErrorCode.PERMISSION_DENIED


class Unavailable(DomainError):
    code = ErrorCode.UNAVAILABLE


# Trailing metadata of a RESOURCE_EXHAUSTED refusal (docs/limits.md): when to retry, which limit, its
# numbers. The gateway renders them as ``Retry-After`` and the IETF ``RateLimit-Policy``/``RateLimit``.
RETRY_AFTER_MS_KEY = "retry-after-ms"
LIMIT_KEY = "gpufleet-limit"
LIMIT_QUOTA_KEY = "gpufleet-limit-quota"
LIMIT_WINDOW_KEY = "gpufleet-limit-window"  # seconds; only for a limit over time (a rate)
LIMIT_REMAINING_KEY = "gpufleet-limit-remaining"


class ResourceExhausted(DomainError):
    """An organization's limit is reached (a rate or a cap): retry after ``retry_after_s``."""

    code = ErrorCode.RESOURCE_EXHAUSTED

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        quota: int,
        remaining: int,
        retry_after_s: float,
        window_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.limit, self.quota, self.remaining = limit, quota, remaining
        self.retry_after_s, self.window_s = retry_after_s, window_s

    def trailers(self) -> tuple[tuple[str, str], ...]:
        out = [
            (RETRY_AFTER_MS_KEY, str(max(0, math.ceil(self.retry_after_s * 1000)))),
            (LIMIT_KEY, self.limit),
            (LIMIT_QUOTA_KEY, str(self.quota)),
            (LIMIT_REMAINING_KEY, str(self.remaining)),
        ]
        if self.window_s is not None:
            out.append((LIMIT_WINDOW_KEY, str(self.window_s)))
        return tuple(out)
