"""Invariants of preemption over random fleets, running jobs, queues and quotas (hypothesis).

A first cycle under no quota fills part of the fleet with jobs of every organization (an open pool);
a second one runs under quotas, so some of those jobs now run on borrowed capacity. Its decisions are
checked against rules written out here from the fleet and the policy, not with the engine's
structures."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scheduler.domain.engine import Node, Place, Policy, Preempt, QueuedJob, Quota, Snapshot, cycle

from .builders import T0, job, node

ORGS = [UUID(int=0xA0), UUID(int=0xB0), UUID(int=0xC0)]
TYPES = [("a100-80gb", 81920), ("l40s-48gb", 49152)]


@st.composite
def fleets(draw) -> list[Node]:
    nodes = []
    for n in range(draw(st.integers(1, 5))):
        gpu_type, memory = draw(st.sampled_from(TYPES))
        nodes.append(
            node(
                n,
                gpus=draw(st.integers(1, 8)),
                gpu_type=gpu_type,
                memory=memory,
                labels={"rack": f"r{n // 2}"},
                dedicated_to=draw(st.sampled_from([None, None, ORGS[0], ORGS[1]])),
                unhealthy=draw(st.sets(st.integers(0, 7), max_size=1)),
            )
        )
    return nodes


@st.composite
def queues(draw, start: int, most: int) -> list[QueuedJob]:
    return [
        job(
            start + i,
            org=draw(st.sampled_from(ORGS)),
            priority=draw(st.sampled_from([0, 50, 100])),
            age=draw(st.integers(0, 3)),
            gpus=draw(st.sampled_from([1, 1, 2, 4])),
            nodes=draw(st.sampled_from([1, 1, 1, 2])),
            gpu_type=draw(st.sampled_from([None, "a100-80gb", "l40s-48gb"])),
        )
        for i in range(draw(st.integers(0, most)))
    ]


@st.composite
def quota_policies(draw) -> Policy:
    quotas = {}
    for org in ORGS:
        for gpu_type, _ in TYPES:
            if draw(st.booleans()):
                quotas[(org, gpu_type)] = Quota(draw(st.integers(0, 10)))
    return Policy(quotas=quotas, dedicated_lending_limit=8, estimate_starts=False)


def nominal_of(nodes: list[Node], policy: Policy) -> Counter[tuple[UUID, str]]:
    nominal: Counter[tuple[UUID, str]] = Counter()
    for ot, q in policy.quotas.items():
        nominal[ot] += q.nominal
    for n in nodes:
        if n.dedicated_to is not None:
            for g in n.gpus:
                if g.healthy:
                    nominal[(n.dedicated_to, g.type)] += 1
    return nominal


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=fleets(), first=queues(0, 20), second=queues(1000, 12), policy=quota_policies())
def test_preemption_invariants(nodes, first, second, policy):
    snap = Snapshot()
    for n in nodes:
        snap.update_node(n)
    for j in first:
        snap.add_job(j)
    open_pool = Policy(dedicated_lending_limit=8, estimate_starts=False)
    earlier = T0 - timedelta(hours=1)
    for d in cycle(snap, open_pool, earlier).decisions:
        snap.apply(d, earlier + timedelta(seconds=d.job_id.int % 97))  # distinct start times
    for j in second:
        snap.add_job(j)
    queued = dict(snap.jobs)
    result = cycle(snap, policy, T0)
    assert cycle(snap, policy, T0).decisions == result.decisions  # deterministic

    node_of = {n.id: n for n in nodes}
    gpu_type = {g.id: g.type for n in nodes for g in n.gpus}
    holder = {g: a.job_id for a in snap.allocations.values() for s in a.shares for g in s.gpu_ids}
    used: Counter[tuple[UUID, str]] = Counter()
    for a in snap.allocations.values():
        for s in a.shares:
            for g in s.gpu_ids:
                used[(a.organization, gpu_type[g])] += 1
    placed = [d for d in result.decisions if isinstance(d, Place)]
    preempts = [d for d in result.decisions if isinstance(d, Preempt)]
    for p in placed:
        for a in p.allocations:
            for g in a.gpu_ids:
                assert g not in holder, "GPU double-booked (a victim's GPUs are placed only once freed)"
                holder[g] = p.job_id
                used[(p.organization, gpu_type[g])] += 1
    nominal = nominal_of(nodes, policy)
    placed_ids = {p.job_id for p in placed}

    # every victim: a running job of another organization, once, never one that opted out
    assert len({d.job_id for d in preempts}) == len(preempts)
    taken: Counter[tuple[UUID, str]] = Counter()
    for d in preempts:
        victim = snap.allocations[d.job_id]
        assert not victim.preempted and victim.preemptible
        reclaimer = queued[d.for_job]
        assert d.for_job not in placed_ids
        assert victim.organization != reclaimer.organization == result.reclaims[d.for_job][0]
        on_lenders_node = any(
            node_of[s.node_id].dedicated_to == reclaimer.organization for s in victim.shares
        )
        if not on_lenders_node:
            for s in victim.shares:
                for g in s.gpu_ids:
                    taken[(victim.organization, gpu_type[g])] += 1
    # never a victim within its own organization's nominal quota
    for ot, n in taken.items():
        assert n <= max(0, used[ot] - nominal[ot]), "a job within its organization's nominal was preempted"

    # a reclaim stays inside its organization's nominal (it never borrows by preempting)
    wanted: Counter[tuple[UUID, str]] = Counter()
    for org, t, n in result.reclaims.values():
        wanted[(org, t)] += n
    for ot, n in wanted.items():
        assert used[ot] + n <= nominal[ot]

    # one reclaimer of one node: none of its victims could be spared on the node it reclaims
    reclaimers = {d.for_job for d in preempts}
    if len(reclaimers) == 1 and len(result.reclaims) == 1 and not snap.preempted:
        j = queued[next(iter(reclaimers))]
        if j.nodes == 1:
            ours = [snap.allocations[d.job_id] for d in preempts]

            def on(a, n):
                return sum(len(s.gpu_ids) for s in a.shares if s.node_id == n.id)

            fits = []
            for n in nodes:
                if j.gpu_type not in (None, n.gpus[0].type):
                    continue
                free = sum(1 for g in n.gpus if g.healthy and g.id not in holder)
                supply = free + sum(on(a, n) for a in ours)
                if supply >= j.gpus_per_node and all(supply - on(a, n) < j.gpus_per_node for a in ours):
                    fits.append(n)
            assert fits, "more victims than needed"

    # every waiting job has a reason that names no organization
    for j in queued.values():
        if j.id in placed_ids or j.held:
            continue
        w = result.waiting(j.id)
        if w is not None:
            assert not any(str(org) in w.reason.message for org in ORGS)
    for d in result.decisions:
        snap.apply(d, T0)
    assert snap.preempted >= {d.job_id for d in preempts}
