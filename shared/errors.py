"""Errors that carry their meaning.

A service raises a :class:`DomainError` subclass; exactly one place renders it: the gRPC layer maps
``code`` to a status code (``shared.grpc``), the gateway maps the gRPC status to an HTTP status and an
RFC 9457 problem body. Messages must never mention another organization's data.
"""

from __future__ import annotations

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


class DomainError(Exception):
    code: ErrorCode = ErrorCode.INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


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
