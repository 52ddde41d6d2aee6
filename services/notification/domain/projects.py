"""What a project-bound API key may do with the organization's events and webhooks. No I/O.

Inside an organization, projects organise work; the tenant boundary stays the organization
(docs/projects.md). A key bound to a project (``Principal.project_id``) acts only inside that project:

* the event stream sends it only events of its project's jobs (job and cost events alike); the others
  are skipped, not renumbered, so its resume cursors are the organization's as for any key;
* webhook deliveries: it lists only those of its project's jobs to their own ``webhook_url``;
* the organization's webhooks are the organization's configuration, not a project's: a bound key may
  not list, create or delete them, nor read the job webhook signing secret (which signs every
  project's job deliveries), and may not ask for one webhook's deliveries. These are refused as
  ``PERMISSION_DENIED`` (403 ``permission-denied``), whatever the webhook.
"""

from __future__ import annotations

from uuid import UUID

from shared.errors import PermissionDenied


def refuse_bound_key(bound: UUID | None, what: str) -> None:
    """Organization webhooks are not a project's: a project-bound key may not ``what``."""
    if bound is not None:
        raise PermissionDenied(f"a project-bound API key may not {what}")


def event_visible(event_project: UUID | None, bound: UUID | None) -> bool:
    """Whether a key bound to ``bound`` (None: unbound) reads an event of ``event_project``."""
    return bound is None or event_project == bound
