"""Quotas per (organization, GPU type) in one cohort over all organizations (Kueue's model).

Per managed GPU type ``t`` the cohort's borrowable room is

    free(t) = unassigned(t) + sum over orgs of lendable(o, t) - sum over orgs of borrowed(o, t)

where ``unassigned`` is the fleet's capacity of ``t`` that no nominal covers, ``lendable`` is an org's
idle nominal up to its lending limit and ``borrowed`` what it uses beyond its nominal. A placement that
stays inside the org's nominal is always allowed by quota (taking back lent quota physically is
``preemption``'s work); one that borrows must keep ``free`` at or above zero and the org at or under
``nominal + borrowing_limit``. The ledger keeps ``free`` per type up to date in O(1) per placement.

Idle nominal that the organization's own waiting jobs are reclaiming (``Snapshot.reclaims``: the
previous cycle's reclaiming jobs) is not lendable: the GPUs its preempted borrowers free go to it, not
to the next borrower (Kueue orders non-borrowing workloads first for the same reason).
"""

from __future__ import annotations

from uuid import UUID

from .decisions import PendingReason
from .policy import Policy
from .reasons import quota_exhausted
from .snapshot import Snapshot

OrgType = tuple[UUID, str]


class OrgQuota:
    """One organization's quota entries and usage per GPU type (fetched once per cycle and kept by the
    organization's cycle state, so a check costs a few string-keyed lookups)."""

    __slots__ = ("borrowing", "lending", "nominal", "reserved", "used")

    def __init__(self) -> None:
        self.nominal: dict[str, int] = {}
        self.borrowing: dict[str, int | None] = {}
        self.lending: dict[str, int | None] = {}
        self.used: dict[str, int] = {}
        self.reserved: dict[str, int] = {}  # idle nominal its own reclaiming jobs wait for

    def lendable(self, gpu_type: str, used: int) -> int:
        idle = self.nominal.get(gpu_type, 0) - used - self.reserved.get(gpu_type, 0)
        if idle <= 0:
            return 0
        limit = self.lending.get(gpu_type)
        return idle if limit is None else min(limit, idle)

    def borrowed(self, gpu_type: str, used: int) -> int:
        return max(0, used - self.nominal.get(gpu_type, 0))

    def delta(self, gpu_type: str, used: int, k: int) -> tuple[int, int]:
        """(change of the cohort's free room, extra borrowing) if the org takes ``k`` more."""
        borrow = self.borrowed(gpu_type, used + k) - self.borrowed(gpu_type, used)
        lend = self.lendable(gpu_type, used) - self.lendable(gpu_type, used + k)
        return -borrow - lend, borrow


class QuotaLedger:
    def __init__(self, snapshot: Snapshot, policy: Policy) -> None:
        self.orgs: dict[UUID, OrgQuota] = {}
        for (org, t), q in policy.quotas.items():
            oq = self.of(org)
            oq.nominal[t] = q.nominal
            oq.borrowing[t] = q.borrowing_limit
            oq.lending[t] = q.lending_limit
        self.dedicated = {ot: n for ot, n in snapshot.dedicated_gpus.items() if n > 0}
        for (org, t), n in self.dedicated.items():
            oq = self.of(org)
            oq.nominal[t] = oq.nominal.get(t, 0) + n
            if (org, t) not in policy.quotas:
                oq.lending[t] = policy.dedicated_lending_limit
        self.managed = {t for oq in self.orgs.values() for t in oq.nominal}
        for (org, t), n in snapshot.used.items():
            if t in self.managed and n:
                self.of(org).used[t] = n
        for job_id, (org, t, n) in snapshot.reclaims.items():
            if t in self.managed and job_id in snapshot.jobs:
                oq = self.of(org)
                oq.reserved[t] = oq.reserved.get(t, 0) + n
        self.lent = dict(snapshot.dedicated_lent)
        self.room_cells: dict[tuple[UUID, str], list[int]] = {}  # ``room_cell``'s, kept up to date
        self.free: dict[str, int] = {}
        for t in self.managed:
            nominal = sum(oq.nominal.get(t, 0) for oq in self.orgs.values())
            # Only GPUs that can run something are room: an offline node's would let an organization
            # borrow what does not exist, and its job then takes a lender's idle GPU (to be preempted).
            self.free[t] = max(0, snapshot.healthy_by_type.get(t, 0) - nominal)
        for oq in self.orgs.values():
            for t in self.managed:
                used = oq.used.get(t, 0)
                self.free[t] += oq.lendable(t, used) - oq.borrowed(t, used)

    def of(self, org: UUID) -> OrgQuota:
        oq = self.orgs.get(org)
        if oq is None:
            oq = self.orgs[org] = OrgQuota()
        return oq

    def check(self, oq: OrgQuota, gpu_type: str, k: int) -> PendingReason | None:
        """None when the organization may take ``k`` more GPUs of ``gpu_type``; else why not."""
        if gpu_type not in self.managed:
            return None
        used = oq.used.get(gpu_type, 0)
        nominal = oq.nominal.get(gpu_type, 0)
        after = used + k
        if after <= nominal:
            return None  # inside its own nominal: always admitted by quota
        limit = oq.borrowing.get(gpu_type)
        if limit is not None and after > nominal + limit:
            return quota_exhausted(gpu_type, used, nominal, k, limit_hit=True)
        # ``delta`` spelled out (this runs for every borrowing try): it borrows ``after - nominal``
        # more than it does now, and lends what it no longer leaves idle
        borrow = k if used >= nominal else after - nominal
        idle = nominal - used - oq.reserved.get(gpu_type, 0)
        lend = 0
        if idle > 0:
            lending = oq.lending.get(gpu_type)
            lend = idle if lending is None else min(lending, idle)  # idle nominal is all taken now
        if self.free[gpu_type] - borrow - lend < 0:
            return quota_exhausted(gpu_type, used, nominal, k, limit_hit=False)
        return None

    def commit(self, oq: OrgQuota, gpu_type: str, k: int) -> None:
        if gpu_type not in self.managed:
            return
        used = oq.used.get(gpu_type, 0)
        if used >= oq.nominal.get(gpu_type, 0):
            self.free[gpu_type] -= k  # borrows all of it; lent nothing before, lends nothing after
        else:
            change, _ = oq.delta(gpu_type, used, k)
            self.free[gpu_type] += change
        oq.used[gpu_type] = used + k

    def dedicated_room(self, owner: UUID | None, gpu_type: str) -> int:
        """How many more of ``owner``'s dedicated ``gpu_type`` GPUs other organizations may hold."""
        if owner is None:
            return 0
        ot = (owner, gpu_type)
        count = self.dedicated.get(ot, 0)
        oq = self.orgs.get(owner)
        limit = None if oq is None else oq.lending.get(gpu_type)
        lendable = count if limit is None else min(limit, count)
        return lendable - self.lent.get(ot, 0)

    def room_cell(self, owner: UUID | None, gpu_type: str) -> list[int]:
        """``dedicated_room`` as a one-item list that ``commit_dedicated`` keeps current: read in a
        search without hashing the owner's id."""
        if owner is None:
            return [0]
        ot = (owner, gpu_type)
        cell = self.room_cells.get(ot)
        if cell is None:
            cell = self.room_cells[ot] = [self.dedicated_room(owner, gpu_type)]
        return cell

    def lends_dedicated(self, owner: UUID) -> bool:
        return any(self.dedicated_room(o, t) > 0 for (o, t) in self.dedicated if o == owner)

    def commit_dedicated(self, owner: UUID, gpu_type: str, k: int) -> None:
        ot = (owner, gpu_type)
        self.lent[ot] = self.lent.get(ot, 0) + k
        cell = self.room_cells.get(ot)
        if cell is not None:
            cell[0] -= k
