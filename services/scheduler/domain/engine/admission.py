"""Admission: could any node of this fleet ever hold a job as asked, if it were empty?

Answers whole GPUs, unhealthy ones included (a GPU that failed may come back; a node that left the
fleet does not), against the nodes a job may use: the shared pool, its organization's dedicated nodes,
and for a single-node job the dedicated nodes whose owners lend. The same check serves the submit path
(refuse with a 422 naming the reason) and the cycle (a queued job that no longer fits after the fleet
shrank). Answers are cached per (shape, pools) until the fleet changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import Kind, Pool, Shape
from .reasons import gb
from .snapshot import Snapshot


def never_fits(snapshot: Snapshot, shape: Shape, pools: Sequence[Pool]) -> str | None:
    """Why no node could ever hold ``shape``; None when some (set of) nodes could."""
    cache_key = ("never_fits", shape, tuple(pools))
    cache = snapshot.static_cache
    if cache_key in cache:
        answer: str | None = cache[cache_key]
        return answer
    answer = _never_fits(snapshot, shape, set(pools))
    cache[cache_key] = answer
    return answer


def _kind_groups(snapshot: Snapshot) -> list[tuple[Pool, int, int, dict[Kind, int], int]]:
    """The fleet's nodes grouped by what admission reads of them: (pool, CPU cores, RAM, GPUs per kind,
    how many such nodes). A fleet of thousands of nodes has a few dozen groups, so each answer walks
    those instead of every node; kept until the fleet changes."""
    cached = snapshot.static_cache.get("kind_groups")
    if cached is None:
        groups: dict[tuple[Pool, int, int, tuple[tuple[Kind, int], ...]], int] = {}
        for st in snapshot.nodes.values():
            counts: dict[Kind, int] = {}
            for gpu in st.node.gpus:
                counts[gpu.kind] = counts.get(gpu.kind, 0) + 1
            gk = (st.pool, st.node.cpu_cores, st.node.ram_mb, tuple(counts.items()))
            groups[gk] = groups.get(gk, 0) + 1
        cached = [(pool, cpu, ram, dict(counts), n) for (pool, cpu, ram, counts), n in groups.items()]
        snapshot.static_cache["kind_groups"] = cached
    result: list[tuple[Pool, int, int, dict[Kind, int], int]] = cached
    return result


def _never_fits(snapshot: Snapshot, shape: Shape, pools: set[Pool]) -> str | None:
    if shape.nodes < 1 or shape.gpus_per_node < 1:
        return "a job needs at least one node and one GPU per node"
    nodes = [(cpu, ram, c, n) for pool, cpu, ram, c, n in _kind_groups(snapshot) if pool in pools]
    if not nodes:
        # No node the job may use has registered (yet): a fleet still registering its first nodes, or
        # one whose nodes all left. The job waits (no capacity) rather than being told it never fits,
        # as the submit path admits it (service_layer/capacity.py), and a policy that rejects
        # never-fitting jobs does not empty the queue of a fleet that has no nodes for a moment.
        return None
    gpu_type, memory, g = shape.gpu_type, shape.gpu_memory_mb, shape.gpus_per_node
    typed = [
        (cpu, ram, {k: m for k, m in c.items() if gpu_type is None or k[0] == gpu_type}, n)
        for cpu, ram, c, n in nodes
    ]
    typed = [t for t in typed if t[2]]
    if not typed:
        return f"no node of this fleet has a {gpu_type} GPU" if gpu_type else "this fleet has no GPUs"
    what = gpu_type or "GPU"
    roomy = [(cpu, ram, {k: m for k, m in c.items() if k[1] >= memory}, n) for cpu, ram, c, n in typed]
    roomy = [t for t in roomy if t[2]]
    if not roomy:
        return f"no {what} of this fleet has {gb(memory)} of memory"
    enough = [(cpu, ram, [k for k, m in c.items() if m >= g], n) for cpu, ram, c, n in roomy]
    enough = [t for t in enough if t[2]]
    such = f"{g} {gpu_type or 'GPUs'}" + (f" with {gb(memory)}" if memory else "")
    if not enough:
        return f"no node of this fleet has {such}"
    able = [(ks, n) for cpu, ram, ks, n in enough if cpu >= shape.cpu_cores and ram >= shape.ram_mb]
    if not able:
        return (
            f"no node of this fleet with {such} also has {shape.cpu_cores} CPU cores "
            f"and {gb(shape.ram_mb)} of RAM"
        )
    if shape.nodes > 1:
        per_kind: dict[Kind, int] = {}
        for ks, n in able:
            for k in ks:
                per_kind[k] = per_kind.get(k, 0) + n
        most = max(per_kind.values())
        if most < shape.nodes:
            return f"the gang needs {shape.nodes} nodes with {such} each; this fleet has {most} such nodes"
    return None
