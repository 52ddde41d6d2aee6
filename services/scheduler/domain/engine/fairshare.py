"""Fair share: weighted dominant-resource share over decayed usage, in a tree of accounts.

An account's share is ``max over resources of (usage + allocated) / fleet capacity``, divided by its
weight (``Policy.shares``). GPUs count weighed by type (Slurm's TRESBillingWeights); usage is decayed
resource-seconds divided by the decay's mean life (half-life / ln 2), which turns it into "resources
held on average lately", the same unit as what is allocated now: an account that always held 10 GPUs
counts 20, one that just started holding 10 counts 10, and one that held 10 until a week ago counts 5.

Accounts form a tree: organizations, then inside each its projects and the users without a project,
then each project's users. Every inner account keeps its children in a heap by share (lowest first), and
every leaf keeps its job classes in a heap by their first job's queue key, so the next job to try is
found with a few heap operations; after a placement only the accounts on the placed job's path change,
and each is pushed back with its new share (Slurm's fair tree, Armada's queue ordering).
"""

from __future__ import annotations

import math
from heapq import heappush
from typing import Any

from .model import AccountPath


def decayed(usage: float, elapsed_s: float, half_life_s: float) -> float:
    """``usage`` recorded ``elapsed_s`` ago, halved every ``half_life_s``."""
    if elapsed_s <= 0 or half_life_s <= 0:
        return usage
    return usage * 0.5 ** (elapsed_s / half_life_s)


def mean_life(half_life_s: float) -> float:
    return half_life_s / math.log(2)


class Account:
    """One node of the fair-share tree during a cycle (built fresh per cycle; cheap: one per account
    with waiting work)."""

    __slots__ = (
        "children",
        "classes",
        "cpu",
        "gpu",
        "inv_shares",
        "order",
        "orgrun",
        "path",
        "project",
        "ram",
        "user",
    )

    def __init__(self, path: AccountPath, shares: float, gpu: float, cpu: float, ram: float) -> None:
        self.path = path
        self.order = _order(path)
        self.inv_shares = 1.0 / shares
        self.gpu = gpu  # weighted GPUs: usage (per mean life) plus allocated
        self.cpu = cpu
        self.ram = ram
        self.children: list[Any] = []  # heap of (share, order, Account)
        self.classes: list[Any] = []  # leaves only: heap of (next job's key, class[, its index])
        self.orgrun: Any = None  # leaves only: the cycle's state of the leaf's organization and user
        self.user: Any = None
        self.project: Any = None  # leaves only: the cycle's state of the leaf's capped project, if any

    def share(self, capacity: tuple[float, float, float]) -> float:
        cg, cc, cr = capacity
        return max(self.gpu / cg, self.cpu / cc, self.ram / cr) * self.inv_shares

    def push_into(self, parent: Account, capacity: tuple[float, float, float]) -> None:
        heappush(parent.children, (self.share(capacity), self.order, self))

    @property
    def has_work(self) -> bool:
        return bool(self.children or self.classes)


def _order(path: AccountPath) -> tuple[int, int]:
    """A total order among siblings (their ids), for ties in share."""
    kind = path[0]
    if kind == "org":
        return (0, path[1].int)
    if kind == "project":
        return (1, path[2].int)
    if kind == "user":
        return (2, path[3].int)
    return (3, 0)  # the root
