"""The engine's fast paths against straightforward references, on tables and random inputs.

* ``Leaf.order``: each leaf's (first key, class) list, kept sorted by the snapshot's updates;
* admission over node groups (``admission._kind_groups``) against a walk over every node;
* ``cycle._bounds``: a quota check as three numbers, against ``QuotaLedger.check``;
* ``QuotaLedger.room_cell`` against ``dedicated_room``;
* ``CapacityView.find_planned`` (plan sorted by waste, early stop) against ``find_single``;
* ``CapacityView.find_gang`` (fabric values per node, no re-sort for one pool) against the plain
  gather-sort-group search written out here."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduler.domain.engine import Allocation, Policy, Quota, Shape, Snapshot, cycle
from services.scheduler.domain.engine.admission import never_fits
from services.scheduler.domain.engine.capacity import CapacityView
from services.scheduler.domain.engine.cycle import _bounds
from services.scheduler.domain.engine.model import Kind
from services.scheduler.domain.engine.quota import OrgQuota, QuotaLedger
from services.scheduler.domain.engine.reasons import gb

from .builders import A100, L40, ORG_A, ORG_B, ORG_C, T0, USER_1, USER_2, job, node, running, snapshot

ORGS = [ORG_A, ORG_B, ORG_C]


# -- Leaf.order --------------------------------------------------------------------------------------
def expected_order(snap: Snapshot) -> dict[object, list[tuple[object, int]]]:
    return {
        path: sorted((cls.keys[0], id(cls)) for cls in leaf.classes.values())
        for path, leaf in snap.leaves.items()
    }


def actual_order(snap: Snapshot) -> dict[object, list[tuple[object, int]]]:
    return {path: [(k, id(cls)) for k, cls in leaf.order] for path, leaf in snap.leaves.items()}


def test_leaf_order_follows_a_new_first_job_and_a_removed_one():
    snap = snapshot([node(1)], [job(1, priority=50, age=5), job(2, gpus=2, priority=50, age=1)])
    assert actual_order(snap) == expected_order(snap)
    first = next(iter(snap.leaves.values())).order[0][1]
    assert first.shape.gpus_per_node == 1  # the older job's class comes first
    snap.add_job(job(3, gpus=2, priority=100))  # now the 2-GPU class's first job outranks it
    assert next(iter(snap.leaves.values())).order[0][1].shape.gpus_per_node == 2
    assert actual_order(snap) == expected_order(snap)
    snap.remove_job(job(3).id)
    snap.remove_job(job(1).id)  # the 1-GPU class is gone: one entry left
    assert [c.shape.gpus_per_node for _, c in next(iter(snap.leaves.values())).order] == [2]
    snap.remove_job(job(2).id)
    assert snap.leaves == {}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40)), max_size=80), st.randoms())
def test_leaf_order_stays_the_sorted_first_keys_under_any_updates(ops, rnd):
    snap = snapshot([node(1)])
    queued: set[int] = set()
    for op, n in ops:
        if op <= 1 and n not in queued:
            snap.add_job(
                job(
                    n,
                    org=rnd.choice(ORGS),
                    user=rnd.choice([USER_1, USER_2]),
                    priority=rnd.choice([0, 50, 100]),
                    age=rnd.randrange(5),
                    gpus=rnd.choice([1, 2]),
                )
            )
            queued.add(n)
        elif op == 2 and n in queued:
            snap.remove_job(job(n).id)
            queued.discard(n)
        elif op == 3 and n in queued:
            snap.update_job(replace(snap.jobs[job(n).id], priority=rnd.choice([0, 100])))
        assert actual_order(snap) == expected_order(snap)


# -- admission over node groups ---------------------------------------------------------------------
def reference_never_fits(snap: Snapshot, shape: Shape, pools: set) -> str | None:
    """The answer walked over every node, as admission was first written."""
    if shape.nodes < 1 or shape.gpus_per_node < 1:
        return "a job needs at least one node and one GPU per node"
    nodes = [ns for ns in sorted(snap.nodes.values(), key=lambda s: s.key) if ns.pool in pools]
    if not nodes:
        return None  # nothing registered (yet): the job waits
    if shape.container:
        nodes = [ns for ns in nodes if ns.node.container_runtime]
        if not nodes:
            return "the job names an image and no node of this fleet has a container runtime"
    runtime = " with a container runtime" if shape.container else ""
    counts = []
    for ns in nodes:
        c: dict[Kind, int] = {}
        for gpu in ns.node.gpus:
            c[gpu.kind] = c.get(gpu.kind, 0) + 1
        counts.append((ns, c))
    gpu_type, memory, g = shape.gpu_type, shape.gpu_memory_mb, shape.gpus_per_node
    typed = [(ns, {k: n for k, n in c.items() if gpu_type is None or k[0] == gpu_type}) for ns, c in counts]
    typed = [(ns, c) for ns, c in typed if c]
    if not typed:
        if gpu_type:
            return f"no node of this fleet{runtime} has a {gpu_type} GPU"
        return (
            "no node of this fleet with a container runtime has GPUs" if runtime else "this fleet has no GPUs"
        )
    roomy = [(ns, {k: n for k, n in c.items() if k[1] >= memory}) for ns, c in typed]
    roomy = [(ns, c) for ns, c in roomy if c]
    if not roomy:
        where = " on a node with a container runtime" if runtime else " of this fleet"
        return f"no {gpu_type or 'GPU'}{where} has {gb(memory)} of memory"
    enough = [(ns, [k for k, n in c.items() if n >= g]) for ns, c in roomy]
    enough = [(ns, ks) for ns, ks in enough if ks]
    such = f"{g} {gpu_type or 'GPUs'}" + (f" with {gb(memory)}" if memory else "")
    if not enough:
        return f"no node of this fleet{runtime} has {such}"
    able = [
        (ns, ks)
        for ns, ks in enough
        if ns.node.cpu_cores >= shape.cpu_cores and ns.node.ram_mb >= shape.ram_mb
    ]
    if not able:
        return (
            f"no node of this fleet{runtime} with {such} also has {shape.cpu_cores} CPU cores "
            f"and {gb(shape.ram_mb)} of RAM"
        )
    if shape.nodes > 1:
        per_kind: dict[Kind, int] = {}
        for _, ks in able:
            for k in ks:
                per_kind[k] = per_kind.get(k, 0) + 1
        most = max(per_kind.values())
        if most < shape.nodes:
            return f"the gang needs {shape.nodes} nodes with {such} each; this fleet has {most} such nodes{runtime}"
    return None


def random_fleet(rng: random.Random, n: int):
    nodes = []
    for i in range(n):
        gpu_type, memory = rng.choice([(A100, 81920), (L40, 49152), ("a10-24gb", 24576)])
        nodes.append(
            node(
                i,
                gpus=rng.choice([1, 2, 4, 8]),
                gpu_type=gpu_type,
                memory=memory,
                cpu=rng.choice([8, 32, 128]),
                ram=rng.choice([32768, 262144]),
                labels={"nvlink_domain": f"d{rng.randrange(4)}", "rack": f"r{rng.randrange(2)}"},
                dedicated_to=rng.choice([None, None, None, ORG_A, ORG_B]),
                unhealthy=rng.sample(range(8), rng.choice([0, 0, 1])),
                container_runtime=rng.random() < 0.5,
            )
        )
    return nodes


@pytest.mark.parametrize("seed", range(40))
def test_grouped_admission_answers_as_the_walk_over_every_node(seed):
    rng = random.Random(seed)
    snap = snapshot(random_fleet(rng, rng.randrange(0, 12)))
    for _ in range(30):
        shape = Shape(
            rng.choice([0, 1, 1, 2, 3]),
            rng.choice([0, 1, 2, 4, 8]),
            rng.choice([0, 30000, 60000, 90000]),
            rng.choice([None, A100, L40, "h100"]),
            rng.choice([0, 16, 64, 256]),
            rng.choice([0, 65536, 1 << 20]),
            rng.random() < 0.3,
        )
        pools = rng.choice([(None,), (None, ORG_A), (None, ORG_A, ORG_B), (ORG_B,)])
        assert never_fits(snap, shape, pools) == reference_never_fits(snap, shape, set(pools))


# -- quota bounds ------------------------------------------------------------------------------------
def ledger_with(
    nominal: int, borrowing: int | None, lending: int | None, used: int, free: int, reserved: int
):
    policy = Policy(quotas={(ORG_A, A100): Quota(nominal, borrowing, lending)})
    ledger = QuotaLedger(Snapshot(), policy)
    oq = ledger.of(ORG_A)
    oq.used[A100] = used
    oq.reserved[A100] = reserved
    ledger.free[A100] = free
    return ledger, oq


def admits(ledger: QuotaLedger, oq: OrgQuota, k: int) -> bool:
    a, b, c = _bounds(oq, A100)
    return k <= a or (k <= b and k <= ledger.free[A100] + c)


@pytest.mark.parametrize(
    ("nominal", "borrowing", "lending", "used", "free", "reserved", "k", "admitted"),
    [
        (8, None, None, 0, 0, 0, 8, True),  # inside its nominal: no room needed
        (8, None, None, 0, 0, 0, 9, False),  # one past it, nothing to borrow
        (8, None, None, 6, 0, 0, 3, False),  # needs 1 borrowed, and lent its 2 idle until now
        (8, None, None, 6, 3, 0, 3, True),  # the room covers both
        (8, None, 1, 6, 2, 0, 3, True),  # it lent only 1 of its 2 idle
        (8, 2, None, 8, 5, 0, 2, True),  # borrowing up to its limit
        (8, 2, None, 8, 5, 0, 3, False),  # past its borrowing limit
        (0, None, None, 4, 3, 0, 3, True),  # no nominal: all borrowed
        (0, None, None, 4, 3, 0, 4, False),
        (8, None, None, 2, 1, 6, 7, True),  # reserved for its own reclaims: not lent, not owed back
    ],
)
def test_bounds_admit_as_the_check(nominal, borrowing, lending, used, free, reserved, k, admitted):
    ledger, oq = ledger_with(nominal, borrowing, lending, used, free, reserved)
    assert (ledger.check(oq, A100, k) is None) == admitted
    assert admits(ledger, oq, k) == admitted


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 20),
    st.one_of(st.none(), st.integers(0, 10)),
    st.one_of(st.none(), st.integers(0, 10)),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 10),
    st.integers(1, 32),
)
def test_bounds_admit_exactly_when_the_check_does(nominal, borrowing, lending, used, free, reserved, k):
    ledger, oq = ledger_with(nominal, borrowing, lending, used, free, reserved)
    assert admits(ledger, oq, k) == (ledger.check(oq, A100, k) is None)


# -- dedicated room cells ----------------------------------------------------------------------------
def test_room_cell_follows_dedicated_room_as_gpus_are_lent():
    snap = snapshot([node(1, dedicated_to=ORG_A), node(2)], allocations=[running(90, 1, [0], org=ORG_B)])
    ledger = QuotaLedger(snap, Policy(dedicated_lending_limit=4))
    cell = ledger.room_cell(ORG_A, A100)
    assert cell == [ledger.dedicated_room(ORG_A, A100)] == [3]
    ledger.commit_dedicated(ORG_A, A100, 2)
    assert cell == [ledger.dedicated_room(ORG_A, A100)] == [1]
    assert ledger.room_cell(ORG_A, A100) is cell
    assert ledger.room_cell(None, A100) == [0]


# -- capacity searches -------------------------------------------------------------------------------
def random_view(rng: random.Random) -> tuple[Snapshot, CapacityView]:
    nodes = random_fleet(rng, rng.randrange(1, 14))
    allocations = []
    for i, nd in enumerate(nodes):
        healthy = [g.index for g in nd.gpus if g.healthy]
        taken = rng.sample(healthy, rng.randrange(len(healthy) + 1))
        if taken:
            allocations.append(
                running(
                    500 + i,
                    i,
                    taken,
                    org=rng.choice(ORGS),
                    gpu_type=nd.gpus[0].type,
                    cpu=rng.choice([0, 4, 8]),
                    ram=rng.choice([0, 16384]),
                )
            )
    snap = snapshot(nodes, allocations=allocations)
    view = CapacityView(snap)
    for _ in range(rng.randrange(4)):  # some of this cycle's takes too
        if not view.buckets:
            break
        (pool, kind), b = rng.choice(sorted(view.buckets.items(), key=lambda x: (str(x[0][0]), x[0][1])))
        levels = [f for f in range(1, len(b)) if b[f]]
        if levels:
            f = rng.choice(levels)
            view.take(b[f][0], pool, kind, f, Shape(1, 1, 0, None, 1, 0), ORG_C, 0.0)
    return snap, view


def kinds_of(snap: Snapshot, shape: Shape) -> list[Kind]:
    return sorted(
        {k for _, k in snap.kind_nodes if (shape.gpu_type in (None, k[0])) and k[1] >= shape.gpu_memory_mb},
        key=lambda k: (k[1], k[0]),
    )


@pytest.mark.parametrize("seed", range(60))
def test_planned_search_finds_the_same_best_fit_as_the_plain_one(seed):
    rng = random.Random(seed)
    snap, view = random_view(rng)
    ledger = QuotaLedger(snap, Policy(dedicated_lending_limit=rng.choice([0, 2, 8])))
    for _ in range(10):
        shape = Shape(
            1,
            rng.choice([1, 2, 4]),
            rng.choice([0, 30000, 60000]),
            rng.choice([None, A100]),
            rng.choice([0, 4, 64]),
            rng.choice([0, 16384]),
        )
        kinds = kinds_of(snap, shape)
        pools = rng.choice(
            [((None, False),), ((None, False), (ORG_A, False)), ((None, False), (ORG_A, True), (ORG_B, True))]
        )
        plain = view.find_single(pools, kinds, shape, ledger.dedicated_room)
        fit = view.find_planned(view.plan_single(pools, kinds, shape, ledger.room_cell), shape)
        if plain is None:
            assert fit is None
        else:
            assert fit is not None
            _, _, key, free, pool, kind = plain
            assert (fit[0], fit[1], fit[2][2], fit[2][1]) == (key, free, pool, kind)


def reference_gang(view: CapacityView, pools, kinds, shape: Shape, labels):
    """The gang search as first written: gather every fitting node, sort, group by each label."""
    n, g, c, r, m = shape.nodes, shape.gpus_per_node, shape.cpu_cores, shape.ram_mb, shape.gpu_memory_mb
    best = None
    for kind in kinds:
        cands = []
        for pool in pools:
            b = view.buckets.get((pool, kind))
            if b is None:
                continue
            for f in range(g, len(b)):
                for key in b[f]:
                    st_ = view.nodes[key]
                    if c and st_.cpu_free - view.cpu_taken.get(key, 0) < c:
                        continue
                    if r and st_.ram_free - view.ram_taken.get(key, 0) < r:
                        continue
                    cands.append((f - g, key, f, pool))
        if len(cands) < n:
            continue
        cands.sort(key=lambda x: (x[0], x[1]))
        level, pick = len(labels), cands[:n]
        for lv, label in enumerate(labels):
            groups: dict[str, list] = {}
            for cand in cands:
                value = view.nodes[cand[1]].node.labels.get(label)
                if value is not None:
                    groups.setdefault(value, []).append(cand)
            chosen: Any = None
            for value, members in groups.items():
                if len(members) >= n:
                    group_score = (sum(x[0] for x in members[:n]), value)
                    if chosen is None or group_score < chosen[0]:
                        chosen = (group_score, members[:n])
            if chosen is not None:
                level, pick = lv, chosen[1]
                break
        score = (level, sum(x[0] for x in pick), (kind[1] - m) * g * n, kind)
        if best is None or score < best[0]:
            best = (score, kind, pick)
    return None if best is None else (best[1], best[2])


@pytest.mark.parametrize("seed", range(60))
def test_gang_search_picks_as_the_plain_one(seed):
    rng = random.Random(seed)
    snap, view = random_view(rng)
    for _ in range(8):
        shape = Shape(
            rng.choice([2, 3]), rng.choice([1, 2, 4]), 0, rng.choice([None, A100]), rng.choice([0, 4]), 0
        )
        kinds = kinds_of(snap, shape)
        pools = rng.choice([(None,), (None, ORG_A)])
        labels = rng.choice([("nvlink_domain", "rack"), ("rack",), ()])
        assert view.find_gang(pools, kinds, shape, labels) == reference_gang(
            view, pools, kinds, shape, labels
        )


def test_a_cycle_repeats_itself_after_the_fast_paths_warmed_up():
    """The leaf queues and admission answers a cycle keeps for the next one change no decision."""
    rng = random.Random(7)
    snap = snapshot([node(i, gpus=4) for i in range(5)] + [node(9, gpus=4, dedicated_to=ORG_B)])
    for i in range(120):
        snap.add_job(
            job(
                i,
                org=rng.choice(ORGS),
                user=rng.choice([USER_1, USER_2]),
                gpus=rng.choice([1, 2, 4]),
                nodes=rng.choice([1, 1, 2]),
                age=rng.randrange(100),
            )
        )
    policy = Policy(quotas={(ORG_A, A100): Quota(6, 2, None)}, dedicated_lending_limit=2)
    first = cycle(snap, policy, T0)
    assert any(leaf.admitted is not None for leaf in snap.leaves.values())  # kept for the next cycle
    again = cycle(snap, policy, T0)
    assert first.placements
    assert repr(again.decisions) == repr(first.decisions)
    assert repr(tuple(again.outcomes)) == repr(tuple(first.outcomes))


def test_gang_search_sees_a_node_whose_gpus_were_all_held_when_the_fleet_was_indexed():
    labels = ("nvlink_domain", "rack")
    nodes = [node(i, gpus=2, labels={"nvlink_domain": f"d{i // 2}", "rack": "r0"}) for i in range(4)]
    snap = snapshot(nodes, allocations=[running(90, 0, [0, 1]), running(91, 1, [0, 1])])
    shape = Shape(2, 2, 0, None, 0, 0)
    first = CapacityView(snap).find_gang((None,), [(A100, 81920)], shape, labels)
    assert first is not None and [m[1] for m in first[1]] == [nodes[2].id.int, nodes[3].id.int]
    snap.release(running(90, 0, [0, 1]).job_id)
    snap.release(running(91, 1, [0, 1]).job_id)  # domain d0 is free again and comes first
    view = CapacityView(snap)
    found = view.find_gang((None,), [(A100, 81920)], shape, labels)
    assert found is not None
    assert found == reference_gang(view, (None,), [(A100, 81920)], shape, labels)
    assert [m[1] for m in found[1]] == [nodes[0].id.int, nodes[1].id.int]


# -- the snapshot's victim index --------------------------------------------------------------------
def reference_victims(snap: Snapshot) -> dict:
    """Every running job's shares that could be a reclaim's victim, counted from scratch."""
    out: dict = {}
    for a in snap.allocations.values():
        if a.preempted or not a.preemptible:
            continue
        for share in a.shares:
            ns = snap.nodes.get(share.node_id.int)
            if ns is None or not share.gpu_ids or (ns.pool is not None and ns.pool == a.organization):
                continue
            kind = ns.gpu_kind.get(share.gpu_ids[0])
            if kind is not None:
                counts = out.setdefault((ns.pool, kind), {}).setdefault(a.organization.int, {})
                counts[ns.key] = counts.get(ns.key, 0) + 1
    return out


@pytest.mark.parametrize("seed", range(40))
def test_victim_index_matches_a_count_from_scratch_under_any_updates(seed):
    rng = random.Random(seed)
    nodes = {i: node(i, gpus=4, dedicated_to=rng.choice([None, None, ORG_A])) for i in range(5)}
    snap = snapshot(nodes.values())
    running_jobs: dict[int, Allocation] = {}
    for step in range(60):
        op = rng.randrange(5)
        if op <= 1:
            n, on = 100 + step, rng.randrange(7)  # nodes 5 and 6 are not in the fleet (yet)
            free = (
                []
                if on not in nodes
                else [
                    i
                    for i in range(4)
                    if not any(
                        g.index == i
                        for a in snap.allocations.values()
                        for s in a.shares
                        for g in nodes[on].gpus
                        if g.id in s.gpu_ids
                    )
                ]
            )
            gpus = rng.sample(free, min(len(free), rng.randint(1, 2))) if on in nodes else [0]
            if gpus:
                a = running(n, on, gpus, org=rng.choice(ORGS))
                a = replace(a, preemptible=rng.random() < 0.8)
                snap.allocate(a)
                running_jobs[n] = a
        elif op == 2 and running_jobs:
            n = rng.choice(sorted(running_jobs))
            snap.release(running_jobs.pop(n).job_id)
        elif op == 3 and running_jobs:
            snap.mark_preempted(running_jobs[rng.choice(sorted(running_jobs))].job_id)
        else:
            i = rng.randrange(7)
            if i in nodes and rng.random() < 0.3:
                snap.remove_node(nodes.pop(i).id)
            else:
                nodes[i] = node(
                    i, gpus=4, gpu_type=rng.choice([A100, L40]), dedicated_to=rng.choice([None, ORG_B])
                )
                snap.update_node(nodes[i])
        assert snap.victims == reference_victims(snap)
