"""The "why is my job pending" vocabulary. A message speaks to the job's owner only: it may say what
the owner's organization holds and what the fleet lacks, never who else runs what or how much."""

from __future__ import annotations

from .decisions import HELD_REASON, PendingReason
from .model import Shape

HELD = HELD_REASON.code
QUOTA_EXHAUSTED = "quota_exhausted"
FAIR_SHARE = "fair_share"
BEHIND_OWN_JOBS = "behind_own_jobs"
NO_CAPACITY = "no_capacity"
GANG_NO_CAPACITY = "gang_no_capacity"
USER_CAP = "user_cap"
NEVER_FITS = "never_fits"
INVALID = "invalid_request"
RECLAIMING = "reclaiming"

FAIR_SHARE_REASON = PendingReason(
    FAIR_SHARE,
    "your organization is above its fair share; the fleet is serving organizations below theirs",
)
BEHIND_OWN_JOBS_REASON = PendingReason(
    BEHIND_OWN_JOBS,
    "the room this job needs went to other jobs of your organization (higher priority, older, or in "
    "a project or of a user further below its share)",
)


def gb(mb: int) -> str:
    return f"{mb / 1024:.4g} GB"


def gpus_phrase(shape: Shape) -> str:
    """'4 free a100-80gb with 80 GB' / '1 free GPU'."""
    n = shape.gpus_per_node
    what = shape.gpu_type or ("GPU" if n == 1 else "GPUs")
    text = f"{n} free {what}"
    if shape.gpu_memory_mb:
        text += f" with {gb(shape.gpu_memory_mb)}"
    extras = []
    if shape.cpu_cores:
        extras.append(f"{shape.cpu_cores} free CPU cores")
    if shape.ram_mb:
        extras.append(f"{gb(shape.ram_mb)} free RAM")
    if extras:
        text += " and " + " and ".join(extras)
    return text


RUNTIME = " with a container runtime"  # what a job naming an image needs of its nodes besides room


def no_capacity(shape: Shape) -> PendingReason:
    runtime = RUNTIME if shape.container else ""
    if shape.nodes > 1:
        return PendingReason(
            GANG_NO_CAPACITY,
            f"the gang needs {shape.nodes} nodes{runtime} that each have {gpus_phrase(shape)} at once; "
            "fewer are free now",
        )
    return PendingReason(NO_CAPACITY, f"no node{runtime} has {gpus_phrase(shape)}")


def quota_exhausted(gpu_type: str, used: int, nominal: int, wanted: int, limit_hit: bool) -> PendingReason:
    head = f"your organization's quota for {gpu_type}: {used}/{nominal} in use"
    if limit_hit:
        tail = f"; {wanted} more would pass its borrowing limit"
    else:
        tail = "; no idle quota is free to borrow now"
    return PendingReason(QUOTA_EXHAUSTED, head + tail)


def quota_exhausted_any() -> PendingReason:
    return PendingReason(
        QUOTA_EXHAUSTED, "your organization's quota for every GPU type that fits this job is in use"
    )


def user_cap_jobs(cap: int) -> PendingReason:
    return PendingReason(USER_CAP, f"per-user cap {cap} running jobs reached")


def user_cap_gpus(cap: int, held: int, wanted: int) -> PendingReason:
    return PendingReason(
        USER_CAP, f"per-user cap {cap} GPUs reached: you hold {held} and this job needs {wanted}"
    )


def never_fits(message: str) -> PendingReason:
    return PendingReason(NEVER_FITS, message)


def reclaiming(stopping: int, in_grace: int = 0, grace_s: float = 0.0) -> PendingReason:
    """Jobs of other organizations run on capacity this organization lent and are being stopped for
    it: how many, never whose. ``in_grace`` of them are stopped once they have run ``grace_s``."""
    jobs = "1 borrowed job is" if stopping == 1 else f"{stopping} borrowed jobs are"
    text = f"your organization's lent GPUs are being reclaimed: {jobs} stopping"
    if in_grace:
        text += f" ({in_grace} of them once they have run {grace_s:g} s, the preemption grace period)"
    return PendingReason(RECLAIMING, text)
