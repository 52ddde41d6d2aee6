"""The limits of every public field, defined once.

The gateway's request models, the gRPC entrypoints and the domains all import these numbers (and the
enumerations below) instead of restating them, so REST and gRPC refuse exactly the same inputs and the
OpenAPI document states what the server enforces. Changing a limit here changes it everywhere.
"""

from __future__ import annotations

# --- jobs
MAX_COMMAND = 10_000
MIN_GPUS = 1
MAX_GPUS = 16
MAX_GPU_MEMORY_MB = 1_048_576
MIN_PRIORITY = 0
DEFAULT_PRIORITY = 50
MAX_PRIORITY = 100
MAX_JOB_NAME = 200
MAX_GPU_TYPE = 64
MAX_CANCEL_REASON = 500
MAX_IDEMPOTENCY_KEY = 200
# A batch submit (JobService/SubmitJobs, POST /v1/jobs:batchCreate): 1 to this many jobs, all or nothing.
MAX_BATCH_SUBMIT = 1000
# A batch's Idempotency-Key: job i is stored under "<key>\x1f<i>", which must fit a job's own key.
MAX_BATCH_IDEMPOTENCY_KEY = MAX_IDEMPOTENCY_KEY - len(f"\x1f{MAX_BATCH_SUBMIT - 1}")
MIN_NODES = 1
MAX_NODES = 64
MAX_CPU_CORES = 1024  # per node
MAX_RAM_MB = 16 * 1024 * 1024  # per node (16 TiB)
MAX_TIME_LIMIT_SECONDS = 30 * 24 * 3600  # the contract's bound; the platform may set a lower maximum
# A container image reference (the OCI distribution grammar, lower-case repository path): an optional
# registry host[:port], a path, an optional :tag and an optional @sha256 digest. No whitespace, no shell
# metacharacters: the agent passes it to its container runtime as one argument.
MAX_IMAGE = 512
IMAGE_PATTERN = (
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)

# --- URLs (job webhook_url, organization webhooks)
MAX_URL = 2048

# --- paging (every List* method and REST list route)
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_CURSOR = 512
# What a cursor looks like on the wire (shared.cursors): unpadded URL-safe base64.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"

# --- utilization
DEFAULT_UTILIZATION_HOURS = 24
MAX_UTILIZATION_HOURS = 720  # 30 days: the longest look-back monitoring answers
# Utilization series (GetUtilizationSeries, GET /v1/utilization/series).
DEFAULT_SERIES_WINDOW_SECONDS = 3600  # the last hour
MAX_SERIES_POINTS = 500  # per series; a step that would give more is refused
MIN_SERIES_STEP_SECONDS = 1

# --- cost summaries (SummarizeCosts, GET /v1/costs/summary)
COST_GROUP_BY: tuple[str, ...] = ("day", "gpu_type", "project")
DEFAULT_COST_SUMMARY_DAYS = 30
MAX_COST_SUMMARY_DAYS = 366  # at most a year of days in one answer

# --- webhooks
MAX_WEBHOOK_EVENTS = 32
MAX_DESCRIPTION = 500
# Event names a tenant may subscribe a webhook to (the public part of the job topic's types).
WEBHOOK_EVENT_NAMES: tuple[str, ...] = (
    "job.submitted",
    "job.scheduled",
    "job.started",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "job.timed_out",
    "job.requeued",
    "job.pending",
    "job.time_limit_warning",
    "cost.recorded",  # the cost topic's event (subscribed to by name only: an empty list is job events)
)

# --- API keys
MAX_KEY_NAME = 100
MAX_KEY_SCOPES = 32
MAX_KEY_LIFETIME_SECONDS = 10 * 365 * 24 * 3600
# What each scope lets a key call is the table in shared/scopes.py; "admin" means everything.
KEY_SCOPES: tuple[str, ...] = (
    "admin",
    "jobs:read",
    "jobs:write",
    "fleet:read",
    "costs:read",
    "metrics:read",
    "webhooks:read",
    "webhooks:write",
    "keys:read",
    "keys:write",
    "members:read",
    "members:write",
    "projects:read",
    "projects:write",
    "audit:read",
)

# --- request bodies at the gateway
MAX_REQUEST_BODY_BYTES = 64 * 1024
# A batch submit's body: room for MAX_BATCH_SUBMIT ordinary jobs, and small enough that the batch and its
# answer stay within gRPC's default 4 MiB message between the gateway and the scheduler.
MAX_BATCH_REQUEST_BODY_BYTES = 2 * 1024 * 1024

# --- scheduling policy (operator and organization-admin calls; docs/policy.md)
POLICY_MAX_WEIGHT = 1_000_000.0  # fair-share and GPU-type weights: above 0, at most this
POLICY_MIN_HALF_LIFE_SECONDS = 60.0
POLICY_MAX_HALF_LIFE_SECONDS = 365 * 24 * 3600.0
# Preemption: a borrowed job runs at least this long before it may be stopped to give lent capacity back.
POLICY_MAX_PREEMPTION_GRACE_SECONDS = 86400
POLICY_MAX_COUNT = 1_000_000  # GPUs in a quota, jobs or GPUs in a per-user cap
POLICY_MAX_USER_CAPS = 1000  # caps per organization (its default and one per user)
POLICY_GPU_TYPE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"

# --- node join tokens (NodeAdminService/CreateJoinToken, POST /v1/admin/join-tokens; docs/agent-identity.md)
DEFAULT_JOIN_TOKEN_TTL_SECONDS = 3600
MAX_JOIN_TOKEN_TTL_SECONDS = 7 * 24 * 3600
MIN_JOIN_TOKEN_TTL_SECONDS = 60
MAX_JOIN_TOKEN_DESCRIPTION = 200
MAX_PROVIDER = 64

# --- members and invites (identity; docs/members.md)
MEMBER_ROLES: tuple[str, ...] = ("owner", "admin", "member", "viewer")
INVITE_DEFAULT_LIFETIME_SECONDS = 7 * 24 * 3600
INVITE_MAX_LIFETIME_SECONDS = 30 * 24 * 3600
INVITE_CODE_MAX_USES = 10_000  # an invite code's max_uses: 1 to this (an email invite: exactly 1)
MAX_PERSON_NAME = 200
MAX_EMAIL = 254  # RFC 5321 path limit
# --- projects (identity; docs/projects.md, seed 004)
PROJECT_ROLES: tuple[str, ...] = ("owner", "contributor", "viewer")
MAX_PROJECT_NAME = 200
MAX_PROJECT_DESCRIPTION = 2000
# A project's slug: unique in its organization (archived projects keep theirs), lower-case words and dashes.
MAX_PROJECT_SLUG = 64
PROJECT_SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
MAX_PROJECTS = 1000  # projects of one organization that are not archived
# --- named operators (identity)
OPERATOR_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"  # "admin" is the bootstrap operator's

# --- abuse limits per organization (docs/limits.md): plans (seed 002's tiers) set by operators
PLAN_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
LIMITS_MAX_QUEUED_JOBS = 1_000_000  # a plan's or an override's cap on queued jobs: 0 to this
LIMITS_MAX_SUBMIT_RATE = 10_000.0  # submits per second of a token bucket: above 0, at most this
LIMITS_MAX_SUBMIT_BURST = 100_000  # the bucket's size: 1 to this
# The plans a fresh database holds (migrations/scheduler/005_abuse_limits.sql inserts these rows):
# name -> (max queued jobs, submits per second, burst); None: no limit. Operators change them.
DEFAULT_PLANS: dict[str, tuple[int | None, float | None, int | None]] = {
    "free": (10, 1.0, 5),
    "individual": (100, 5.0, 20),
    "professional": (1000, 20.0, 100),
    "enterprise": (None, None, None),
}
# Retry-After of a submit refused because the organization's queue is full (a hint: a slot frees
# when one of its queued jobs is scheduled or cancelled, which the scheduler cannot foresee).
QUEUE_FULL_RETRY_AFTER_SECONDS = 10
# Names of the limits in refusals (gRPC trailer ``gpufleet-limit``, REST RateLimit-Policy items).
LIMIT_SUBMIT_RATE = "submits"
LIMIT_QUEUED_JOBS = "queued_jobs"
