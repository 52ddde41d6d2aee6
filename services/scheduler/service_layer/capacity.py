"""Admission at submit: could any node of this fleet ever hold the job? Answered by the engine's
``admission.never_fits`` over a capacity summary of the GPU projection (nodes only, no jobs), kept
per process and rebuilt only when the projection's change watermark moved (checked at most once per
``refresh_s``, in the background while submits come: service_layer/freshness.py), so a submit costs
no inventory read."""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

from ..domain.engine import Policy, Shape, Snapshot, never_fits
from ..domain.engine.model import Pool
from ..domain.views import nodes_of
from .freshness import KeptFresh
from .unit_of_work import UnitOfWorkFactory


class FleetCapacity:
    def __init__(self, uow: UnitOfWorkFactory, policy: Policy, refresh_s: float = 1.0) -> None:
        self._uow = uow
        self._policy = policy
        self._refresh_s = refresh_s
        self._snapshot = Snapshot()
        self._nodes: dict[Pool, int] = {}  # nodes per pool
        self._owners: frozenset[UUID] = frozenset()  # organizations with dedicated nodes
        self._version = -1
        self._checked = -float("inf")
        self._lock = asyncio.Lock()
        self._fresh = KeptFresh(lambda: self._read(force=True), refresh_s, what="capacity")

    async def _current(self) -> Snapshot:
        self._fresh.used()  # kept younger than refresh_s in the background (service_layer/freshness.py)
        return await self._read()

    async def close(self) -> None:
        await self._fresh.close()

    async def _read(self, *, force: bool = False) -> Snapshot:
        if not force and time.monotonic() - self._checked < self._refresh_s:
            return self._snapshot
        async with self._lock:
            if not force and time.monotonic() - self._checked < self._refresh_s:
                return self._snapshot
            async with self._uow(system=True) as uow:
                version = await uow.inventory_version()
                if version != self._version:
                    gpus, version = await uow.inventory()
                    snapshot = Snapshot()
                    nodes = nodes_of(gpus)
                    for node in nodes:
                        snapshot.update_node(node)
                    counts: dict[Pool, int] = {}
                    for node in nodes:
                        counts[node.dedicated_to] = counts.get(node.dedicated_to, 0) + 1
                    self._snapshot, self._version, self._nodes = snapshot, version, counts
                    self._owners = frozenset(o for o in (n.dedicated_to for n in nodes) if o is not None)
            self._checked = time.monotonic()
        return self._snapshot

    def invalidate(self) -> None:
        """Ask the database on the next check (an inventory change was applied in this process)."""
        self._checked = -float("inf")

    async def never_fits(self, shape: Shape, organization: UUID) -> str | None:
        """Why no node could ever hold ``shape`` for ``organization``; None when one could. An empty
        set of nodes admits everything: the fleet may still be registering its first nodes."""
        snapshot = await self._current()
        pools = self.pools(organization, shape)
        if not any(self._nodes.get(p) for p in pools):
            return None
        return never_fits(snapshot, shape, pools)

    def pools(self, organization: UUID, shape: Shape) -> list[Pool]:
        """Where the job may run: the shared pool, its organization's dedicated nodes, and for a
        single-node job the dedicated nodes of owners that lend."""
        pools: list[Pool] = [None, organization]
        if shape.nodes == 1 and self._policy.dedicated_lending_limit > 0:
            lenders = sorted((o for o in self._owners if o != organization), key=lambda o: o.int)
            pools.extend(lenders)
        return pools
