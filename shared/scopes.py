"""Which API key scope each gRPC method needs: the one table, enforced centrally.

Every tenant-facing method is listed under exactly one scope (``METHODS_OF_SCOPE``) or in
``EVERY_KEY`` (answers that tell a key holder nothing beyond what the key already is). Enforcement
needs no servicer code: ``shared.grpc``'s method wrapper records ``Service/Method`` for the call, and
``Authenticator.principal`` (identity's own servicer for its methods) refuses with PERMISSION_DENIED
naming the missing scope. The REST gateway forwards the caller's key, so the same refusal becomes a
403 ``insufficient-scope`` problem there.

Rules:

* ``admin`` means everything, including methods added later.
* A ``:write`` scope includes its ``:read`` scope (``IMPLIES``): whoever may change jobs may look at them.
* A key with no scopes at all (none stored) means "everything its role allows"; identity stores a key
  created without scopes with every scope (or, when a restricted key mints it, with the minter's).
* Fail closed: for a key whose scopes do not include ``admin``, a method missing from the table is
  refused. A unit test walks the generated descriptors and fails if a tenant-facing method is missing.
* Scopes narrow what a key may do; they never widen its role (a ``viewer``'s key with ``jobs:write``
  still cannot submit).

Methods that are not called with an API key are listed in ``NOT_API_KEY_METHODS`` with why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.contracts import limits
from shared.errors import PermissionDenied

ADMIN = "admin"
JOBS_READ = "jobs:read"
JOBS_WRITE = "jobs:write"
FLEET_READ = "fleet:read"
COSTS_READ = "costs:read"
METRICS_READ = "metrics:read"
WEBHOOKS_READ = "webhooks:read"
WEBHOOKS_WRITE = "webhooks:write"
KEYS_READ = "keys:read"
KEYS_WRITE = "keys:write"
MEMBERS_READ = "members:read"
MEMBERS_WRITE = "members:write"
PROJECTS_READ = "projects:read"
PROJECTS_WRITE = "projects:write"
AUDIT_READ = "audit:read"

METHODS_OF_SCOPE: Mapping[str, tuple[str, ...]] = {
    JOBS_READ: (
        "JobService/GetJob",
        "JobService/WatchJob",
        "JobService/ListJobs",
        "JobOutputService/ReadOutput",
        "JobOutputService/FollowOutput",
    ),
    JOBS_WRITE: (
        "JobService/SubmitJob",
        "JobService/SubmitJobs",
        "JobService/CancelJob",
        "JobService/HoldJob",
        "JobService/ReleaseJob",
        "JobService/UpdateJobPriority",
    ),
    FLEET_READ: ("FleetService/ListGpus", "FleetService/ListNodes", "JobService/ListAllocations"),
    COSTS_READ: (
        "BillingService/GetJobCost",
        "BillingService/ListJobCosts",
        "BillingService/SummarizeCosts",
    ),
    METRICS_READ: ("MonitoringService/GetUtilization", "MonitoringService/GetUtilizationSeries"),
    WEBHOOKS_READ: ("NotificationService/ListWebhooks", "NotificationService/ListDeliveries"),
    # The job-webhook signing secret lets its holder forge deliveries: as strong as managing webhooks.
    WEBHOOKS_WRITE: (
        "NotificationService/CreateWebhook",
        "NotificationService/DeleteWebhook",
        "NotificationService/GetJobWebhookSecret",
        "NotificationService/UpdateWebhook",
        "NotificationService/RotateWebhookSecret",
        "NotificationService/RedeliverDelivery",
        "NotificationService/RotateJobWebhookSecret",
    ),
    KEYS_READ: ("IdentityService/ListApiKeys",),
    KEYS_WRITE: ("IdentityService/CreateApiKey", "IdentityService/RevokeApiKey"),
    # Members and invites (identity also requires the owner or admin role to change them).
    MEMBERS_READ: ("IdentityService/ListMembers", "IdentityService/ListInvites"),
    MEMBERS_WRITE: (
        "IdentityService/CreateInvite",
        "IdentityService/RevokeInvite",
        "IdentityService/UpdateMember",
        "IdentityService/RemoveMember",
    ),
    # Projects (docs/projects.md; identity also requires the role: organization owners and admins
    # create, rename and archive; they and a project's owner manage its members).
    PROJECTS_READ: (
        "ProjectService/ListProjects",
        "ProjectService/GetProject",
        "ProjectService/ListProjectMembers",
        "ProjectService/GetProjectMember",
    ),
    PROJECTS_WRITE: (
        "ProjectService/CreateProject",
        "ProjectService/UpdateProject",
        "ProjectService/ArchiveProject",
        "ProjectService/SetProjectMember",
        "ProjectService/RemoveProjectMember",
    ),
    # The organization's audit log (identity also requires the owner or admin role; docs/audit.md).
    AUDIT_READ: ("AuditService/ListAudit",),
    # Everything; these need admin itself (an organization's scheduling caps and its policy audit
    # trail; the scheduler also requires the owner or admin role).
    ADMIN: (
        "PolicyService/GetUserCaps",
        "PolicyService/SetUserCaps",
        "PolicyService/ListOrganizationAudit",
        # per-project shares and caps (docs/projects.md)
        "PolicyService/GetProjectPolicies",
        "PolicyService/SetProjectPolicies",
    ),
}

# Any valid key may call these: who the key belongs to, and the product's GPU type catalog (which a
# job submitter needs to name a type; the scheduler checks submitted types against it with the
# caller's own key).
EVERY_KEY: tuple[str, ...] = ("IdentityService/GetOrganization", "FleetService/ListGpuTypes")
# The event stream sends job events to jobs:read and cost events to costs:read; which of them a key holds
# is checked per event kind by notification (services/notification/domain/event_log.py), so any key reaches it.
EVERY_KEY += ("NotificationService/StreamEvents",)

NOT_API_KEY_METHODS: Mapping[str, str] = {
    "IdentityService/Authenticate": "resolves a key given in the request; the services' own call",
    "IdentityService/AuthenticateKeys": "resolves the keys given in the request; the services' own call",
    "IdentityService/CreateOrganization": "operator call (admin token)",
    "IdentityService/AcceptInvite": "the invitee has no key yet: the invite's token is the credential",
    "IdentityService/CreateOperator": "operator call (operator token)",
    "IdentityService/ListOperators": "operator call (operator token)",
    "IdentityService/RevokeOperator": "operator call (operator token)",
    "AuditService/ListAllAudit": "operator call (operator token): every organization's audit log",
    "ProjectService/ResolveProject": "resolves a project for a key given in the request; the services' own call",
    "NodeAgentService/*": "node agents (agent credential), never an API key",
    "NodeRegistryService/*": "node agents (agent credential), never an API key",
    "NodeAdminService/*": "operator call (admin token): join tokens, decommission, the whole fleet",
    # Scheduling policy that belongs to the operator (docs/policy.md): the operator token only.
    **{
        f"PolicyService/{m}": "operator call (admin token)"
        for m in (
            "GetPolicy",
            "SetFairShare",
            "DeleteFairShare",
            "SetHalfLife",
            "SetGpuTypeWeight",
            "DeleteGpuTypeWeight",
            "SetDedicatedLendingLimit",
            "SetPreemption",
            "SetQuota",
            "DeleteQuota",
            "ListAudit",
            # Abuse limits: plans and organizations' limits (docs/limits.md).
            "ListPlans",
            "SetPlan",
            "SetDefaultPlan",
            "GetOrganizationLimits",
            "SetOrganizationLimits",
            "DeleteOrganizationLimits",
            # The whole-fleet view (every organization's holds: the dashboard's operator page).
            "ListAllAllocations",
        )
    },
}

IMPLIES: Mapping[str, tuple[str, ...]] = {
    JOBS_WRITE: (JOBS_READ,),
    WEBHOOKS_WRITE: (WEBHOOKS_READ,),
    KEYS_WRITE: (KEYS_READ,),
    MEMBERS_WRITE: (MEMBERS_READ,),
    PROJECTS_WRITE: (PROJECTS_READ,),
}

ALL: tuple[str, ...] = limits.KEY_SCOPES

SCOPE_OF: Mapping[str, str] = {
    method: scope for scope, methods in METHODS_OF_SCOPE.items() for method in methods
}


def granted(held: Iterable[str]) -> frozenset[str]:
    """Every scope ``held`` amounts to: ``admin`` is all of them, a write scope adds its read scope.
    An empty ``held`` (a key stored without scopes) is unrestricted, so it is all of them too."""
    have = set(held)
    if not have or ADMIN in have:
        return frozenset(ALL)
    for scope in list(have):
        have.update(IMPLIES.get(scope, ()))
    return frozenset(have)


def allows(held: Iterable[str], method: str | None) -> bool:
    """Whether a key with scopes ``held`` may call ``method`` (``Service/Method``; None: unknown)."""
    have = tuple(held)
    if not have or ADMIN in have:
        return True
    if method is None:
        return False
    if method in EVERY_KEY:
        return True
    needed = SCOPE_OF.get(method)
    return needed is not None and needed in granted(have)


def require(held: Iterable[str], method: str | None) -> None:
    """Raise PERMISSION_DENIED (field ``scopes``) unless ``held`` allows ``method``; names the scope."""
    have = tuple(held)
    if allows(have, method):
        return
    needed = SCOPE_OF.get(method or "")
    if needed is None:
        raise PermissionDenied(
            f"this API key's scopes do not cover {method or 'this call'}; only an admin key may call it",
            field="scopes",
            required_scope=ADMIN,
        )
    raise PermissionDenied(
        f"this API key lacks the {needed} scope, which {method} needs "
        f"(the key has: {', '.join(sorted(have))})",
        field="scopes",
        required_scope=needed,
    )


def missing(held: Iterable[str], wanted: Iterable[str]) -> frozenset[str]:
    """The scopes of ``wanted`` that a key with ``held`` does not amount to (it cannot grant them)."""
    return frozenset(wanted) - granted(held)
