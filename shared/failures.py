"""Telling an outage from a bad request: is this exception a dependency being unreachable?

One answer for every place that must decide: gRPC methods answer UNAVAILABLE instead of UNKNOWN, the
runtime waits out an unreachable database instead of calling the schema wrong, consumers do not count an
outage against the record they were handling.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# asyncpg's connection-level errors, by name (so this module needs no driver import).
_DRIVER_UNAVAILABLE = {
    "CannotConnectNowError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "InterfaceError",
    "TooManyConnectionsError",
    "AdminShutdownError",
    "CrashShutdownError",
}


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says a dependency could not be reached or went away."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | TimeoutError | ConnectionError):
            return True
        if isinstance(current, OperationalError | InterfaceError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if type(current).__name__ in _DRIVER_UNAVAILABLE:
            return True
        current = current.__cause__ or current.__context__
    return False
