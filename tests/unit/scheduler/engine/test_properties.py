"""Invariants of a cycle over random fleets, queues and policies (hypothesis).

Each case runs two cycles (the first one's placements applied, then more jobs queued), and checks the
second cycle's decisions against rules written out here from first principles, not with the engine's
own structures."""

from __future__ import annotations

from collections import Counter, defaultdict
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scheduler.domain.engine import Node, Place, Policy, QueuedJob, Quota, Snapshot, UserCap, cycle

from .builders import T0, job, node

ORGS = [UUID(int=0xA0), UUID(int=0xB0), UUID(int=0xC0)]
USERS = [UUID(int=0x101), UUID(int=0x102)]
TYPES = [("a100-80gb", 81920), ("l40s-48gb", 49152)]


@st.composite
def fleets(draw) -> list[Node]:
    nodes = []
    for n in range(draw(st.integers(1, 6))):
        gpu_type, memory = draw(st.sampled_from(TYPES))
        nodes.append(
            node(
                n,
                gpus=draw(st.integers(1, 8)),
                gpu_type=gpu_type,
                memory=memory,
                cpu=draw(st.sampled_from([8, 32, 64])),
                ram=draw(st.sampled_from([32768, 262144])),
                labels={"nvlink_domain": f"d{n // 2}", "rack": f"r{n // 4}"},
                dedicated_to=draw(st.sampled_from([None, None, None, ORGS[0]])),
                unhealthy=draw(st.sets(st.integers(0, 7), max_size=2)),
                container_runtime=draw(st.booleans()),
            )
        )
    return nodes


@st.composite
def queues(draw, start: int) -> list[QueuedJob]:
    jobs = []
    for i in range(draw(st.integers(0, 25))):
        jobs.append(
            job(
                start + i,
                org=draw(st.sampled_from(ORGS)),
                user=draw(st.sampled_from(USERS)),
                priority=draw(st.sampled_from([0, 50, 100])),
                age=draw(st.integers(0, 3)),
                gpus=draw(st.sampled_from([1, 1, 2, 4, 8])),
                nodes=draw(st.sampled_from([1, 1, 1, 2, 3])),
                memory=draw(st.sampled_from([0, 0, 40000, 60000])),
                gpu_type=draw(st.sampled_from([None, None, "a100-80gb", "l40s-48gb"])),
                cpu=draw(st.sampled_from([0, 0, 4, 16])),
                ram=draw(st.sampled_from([0, 0, 16384])),
                time_limit=draw(st.sampled_from([None, 600])),
                held=draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()),
                container=draw(st.sampled_from([False, False, True])),
            )
        )
    return jobs


limits = st.one_of(st.none(), st.integers(0, 8))


@st.composite
def policies(draw) -> Policy:
    quotas = {}
    for org in ORGS:
        for gpu_type, _ in TYPES:
            if draw(st.booleans()):
                quotas[(org, gpu_type)] = Quota(draw(st.integers(0, 12)), draw(limits), draw(limits))
    caps = {org: UserCap(draw(limits), draw(limits)) for org in ORGS if draw(st.booleans())}
    return Policy(
        org_shares={org: draw(st.sampled_from([1.0, 2.0, 5.0])) for org in ORGS},
        gpu_type_weights={"a100-80gb": draw(st.sampled_from([1.0, 3.0]))},
        quotas=quotas,
        user_caps=caps,
        dedicated_lending_limit=draw(st.integers(0, 4)),
    )


class Books:
    """An independent account of who holds what, fed from decisions."""

    def __init__(self, nodes: list[Node], policy: Policy) -> None:
        self.policy = policy
        self.nodes = {n.id: n for n in nodes}
        self.gpu = {g.id: (n, g) for n in nodes for g in n.gpus}
        self.holder: dict[UUID, UUID] = {}
        self.cpu: Counter[UUID] = Counter()
        self.ram: Counter[UUID] = Counter()
        self.used: Counter[tuple[UUID, str]] = Counter()
        self.lent: Counter[tuple[UUID, str]] = Counter()
        self.user_jobs: Counter[tuple[UUID, UUID]] = Counter()
        self.user_gpus: Counter[tuple[UUID, UUID]] = Counter()
        self.nominal: Counter[tuple[UUID, str]] = Counter()
        self.lending: dict[tuple[UUID, str], int | None] = {}
        for ot, q in policy.quotas.items():
            self.nominal[ot] += q.nominal
            self.lending[ot] = q.lending_limit
        for n in nodes:
            if n.dedicated_to is not None:
                for g in n.gpus:
                    if not g.healthy:  # an offline dedicated GPU is nobody's nominal quota
                        continue
                    ot = (n.dedicated_to, g.type)
                    self.nominal[ot] += 1
                    self.lending.setdefault(
                        ot, policy.dedicated_lending_limit if ot not in policy.quotas else None
                    )
        self.capacity = Counter(g.type for n in nodes for g in n.gpus)

    def managed(self, gpu_type: str) -> bool:
        return any(t == gpu_type for _, t in self.nominal)

    def borrowed(self, ot):
        return max(0, self.used[ot] - self.nominal[ot])

    def lendable(self, ot):
        idle = max(0, self.nominal[ot] - self.used[ot])
        limit = self.lending.get(ot)
        return idle if limit is None else min(limit, idle)

    def cohort_room(self, gpu_type: str) -> int:
        orgs = {o for o, t in set(self.nominal) | set(self.used) if t == gpu_type}
        unassigned = max(0, self.capacity[gpu_type] - sum(self.nominal[(o, gpu_type)] for o in ORGS))
        return unassigned + sum(self.lendable((o, gpu_type)) - self.borrowed((o, gpu_type)) for o in orgs)

    def record(self, j: QueuedJob, p: Place, check: bool) -> None:
        gpu_type = p.allocations[0].gpu_type
        ot = (j.organization, gpu_type)
        borrowed_before = self.borrowed(ot)
        for a in p.allocations:
            nd = self.nodes[a.node_id]
            for gid in a.gpu_ids:
                assert gid not in self.holder, "GPU double-booked"
                n2, g = self.gpu[gid]
                assert n2.id == a.node_id and g.type == gpu_type
                if check:
                    assert g.healthy and g.memory_mb >= j.gpu_memory_mb
                    assert j.gpu_type in (None, g.type)
                    assert nd.container_runtime or not j.container, "an image job on a node without a runtime"
                self.holder[gid] = j.id
            self.cpu[a.node_id] += a.cpu_cores
            self.ram[a.node_id] += a.ram_mb
            assert self.cpu[a.node_id] <= nd.cpu_cores and self.ram[a.node_id] <= nd.ram_mb
            if nd.dedicated_to is not None and nd.dedicated_to != j.organization:
                self.lent[(nd.dedicated_to, gpu_type)] += len(a.gpu_ids)
        self.used[ot] += j.nodes * j.gpus_per_node
        self.user_jobs[(j.organization, j.user)] += 1
        self.user_gpus[(j.organization, j.user)] += j.nodes * j.gpus_per_node
        if not check:
            return
        # the gang: all members, distinct nodes, ranks in order, the asked GPUs on each
        assert len(p.allocations) == j.nodes
        assert len({a.node_id for a in p.allocations}) == j.nodes
        assert [a.rank for a in p.allocations] == list(range(j.nodes))
        assert all(len(a.gpu_ids) == j.gpus_per_node for a in p.allocations)
        # quota: never past nominal + borrowing limit; new borrowing only out of the cohort's room
        if self.managed(gpu_type):
            q = self.policy.quotas.get(ot)
            if q is not None and q.borrowing_limit is not None:
                assert self.used[ot] <= self.nominal[ot] + q.borrowing_limit
            if self.borrowed(ot) > borrowed_before:
                assert self.cohort_room(gpu_type) >= 0
        # dedicated GPUs lent only within the owner's limit
        for (owner, t), n in self.lent.items():
            limit = self.lending.get((owner, t))
            dedicated = sum(
                1 for nd in self.nodes.values() if nd.dedicated_to == owner for g in nd.gpus if g.type == t
            )
            assert n <= (dedicated if limit is None else min(limit, dedicated))
        cap = self.policy.user_caps.get(j.organization)
        if cap is not None:
            uk = (j.organization, j.user)
            assert cap.max_running_jobs is None or self.user_jobs[uk] <= cap.max_running_jobs
            assert cap.max_gpus is None or self.user_gpus[uk] <= cap.max_gpus


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=fleets(), first=queues(0), second=queues(1000), policy=policies())
def test_cycle_invariants(nodes, first, second, policy):
    snap = Snapshot()
    for n in nodes:
        snap.update_node(n)
    books = Books(nodes, policy)
    for j in first:
        snap.add_job(j)
    result = cycle(snap, policy, T0)
    for d in result.decisions:
        if isinstance(d, Place):
            books.record(snap.jobs[d.job_id], d, check=True)
        snap.apply(d, T0)
    for j in second:
        snap.add_job(j)
    queued = dict(snap.jobs)
    result = cycle(snap, policy, T0)
    assert cycle(snap, policy, T0).decisions == result.decisions  # deterministic
    placed_ids = set()
    for d in result.decisions:
        if isinstance(d, Place):
            j = queued[d.job_id]
            assert not j.held
            books.record(j, d, check=True)
            placed_ids.add(d.job_id)
    rejected = {d.job_id for d in result.rejections}
    # a job is never placed while an earlier job of its own class waits
    by_class = defaultdict(list)
    for j in queued.values():
        if not j.held and j.id not in rejected:
            by_class[(j.leaf, j.shape)].append(j)
    for jobs in by_class.values():
        jobs.sort(key=lambda j: j.key)
        flags = [j.id in placed_ids for j in jobs]
        assert flags == sorted(flags, reverse=True), "a later job of a class was placed before an earlier one"
    # every other queued job has a reason, which never names an organization
    for j in queued.values():
        w = result.waiting(j.id)
        if j.id in placed_ids or j.id in rejected:
            assert w is None
        else:
            assert w is not None and w.reason.code
            assert not any(str(org) in w.reason.message for org in ORGS)
    # applying the decisions keeps the snapshot consistent (it refuses double bookings itself)
    for d in result.decisions:
        snap.apply(d, T0)
