"""The scheduler's engine: an in-memory snapshot and a pure, deterministic scheduling cycle over it.

    snapshot = Snapshot(); snapshot.update_node(...); snapshot.add_job(...); snapshot.allocate(...)
    result = cycle(snapshot, policy, now)        # no I/O; same input, same output
    for d in result.decisions: snapshot.apply(d, now)   # after the service committed them

See ``cycle`` for the walk, ``fairshare`` for the order between tenants, ``quota`` for the cohort
model, ``capacity`` for the node index, ``preemption`` for taking lent capacity back, ``decisions`` for the
result.
"""

from .admission import never_fits
from .cycle import cycle
from .decisions import (
    ClassOutcome,
    CycleResult,
    Decision,
    NodePlacement,
    PendingReason,
    Place,
    Preempt,
    Reject,
    Waiting,
)
from .fairshare import decayed
from .model import Allocation, Gpu, Node, NodeShare, QueuedJob, Shape, Usage
from .policy import Policy, ProjectCap, Quota, UserCap
from .snapshot import Snapshot

__all__ = [
    "Allocation",
    "ClassOutcome",
    "CycleResult",
    "Decision",
    "Gpu",
    "Node",
    "NodePlacement",
    "NodeShare",
    "PendingReason",
    "Place",
    "Policy",
    "Preempt",
    "ProjectCap",
    "QueuedJob",
    "Quota",
    "Reject",
    "Shape",
    "Snapshot",
    "Usage",
    "UserCap",
    "Waiting",
    "cycle",
    "decayed",
    "never_fits",
]
