"""Which project's costs a caller sees. No I/O.

Inside an organization, projects organise accounting; the tenant boundary stays the organization
(docs/projects.md). So any key of the organization reads every project's costs and may filter by one,
except a key bound to a project (``Principal.project_id``): it reads only that project's costs. A job
of another project, or of none, answers exactly as a job without any cost (not found); a filter that
names another project finds nothing, as the scheduler's job list does for it (whatever that project
is, so the answer tells nothing about it).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class ProjectScope:
    """What a read of costs covers: ``project`` only (None: every project, and jobs of none), or
    nothing at all (``nothing``: a bound key that asked for another project)."""

    project: UUID | None
    nothing: bool = False


def project_scope(bound: UUID | None, asked: UUID | None) -> ProjectScope:
    """``asked`` for an unbound key; the bound project for a bound one, which may ask for it or for
    nothing, and finds nothing when it names another."""
    if bound is None:
        return ProjectScope(asked)
    if asked is not None and asked != bound:
        return ProjectScope(bound, nothing=True)
    return ProjectScope(bound)


def visible(cost_project: UUID | None, bound: UUID | None) -> bool:
    """Whether a key bound to ``bound`` (None: unbound) may see a cost of ``cost_project``."""
    return bound is None or cost_project == bound
