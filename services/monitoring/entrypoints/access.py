"""The caller's project binding, read from identity's Principal (docs/projects.md)."""

from __future__ import annotations

from uuid import UUID

from gpufleet.v1 import common_pb2

# What a malformed bound project id binds to: no project that exists, so the key sees nothing.
NO_PROJECT = UUID(int=0)


def bound_project(principal: common_pb2.Principal) -> UUID | None:
    """The project the caller's API key is bound to (None: unbound, the whole organization's). A bound
    id identity sent malformed is never read as unbound: it binds the key to no project that exists
    (as the scheduler's ``access_of`` does), so it reads nothing."""
    if not principal.project_id:
        return None
    try:
        return UUID(principal.project_id)
    except ValueError:
        return NO_PROJECT
