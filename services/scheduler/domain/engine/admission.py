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


Group = tuple[Pool, int, int, dict[Kind, int], int, bool]


def _kind_groups(snapshot: Snapshot) -> list[Group]:
    """The fleet's nodes grouped by what admission reads of them: (pool, CPU cores, RAM, GPUs per kind,
    how many such nodes, whether they have a container runtime). A fleet of thousands of nodes has a
    few dozen groups, so each answer walks those instead of every node; kept until the fleet changes."""
    cached = snapshot.static_cache.get("kind_groups")
    if cached is None:
        groups: dict[tuple[Pool, int, int, tuple[tuple[Kind, int], ...], bool], int] = {}
        for st in snapshot.nodes.values():
            counts: dict[Kind, int] = {}
            for gpu in st.node.gpus:
                counts[gpu.kind] = counts.get(gpu.kind, 0) + 1
            node = st.node
            gk = (st.pool, node.cpu_cores, node.ram_mb, tuple(counts.items()), node.container_runtime)
            groups[gk] = groups.get(gk, 0) + 1
        cached = [
            (pool, cpu, ram, dict(counts), n, runtime)
            for (pool, cpu, ram, counts, runtime), n in groups.items()
        ]
        snapshot.static_cache["kind_groups"] = cached
    result: list[Group] = cached
    return result


def _never_fits(snapshot: Snapshot, shape: Shape, pools: set[Pool]) -> str | None:
    if shape.nodes < 1 or shape.gpus_per_node < 1:
        return "a job needs at least one node and one GPU per node"
    groups = [g for g in _kind_groups(snapshot) if g[0] in pools]
    nodes = [(cpu, ram, c, n) for _pool, cpu, ram, c, n, runtime in groups if runtime or not shape.container]
    if not groups:
        # No node the job may use has registered (yet): a fleet still registering its first nodes, or
        # one whose nodes all left. The job waits (no capacity) rather than being told it never fits,
        # as the submit path admits it (service_layer/capacity.py), and a policy that rejects
        # never-fitting jobs does not empty the queue of a fleet that has no nodes for a moment.
        return None
    if not nodes:
        return "the job names an image and no node of this fleet has a container runtime"
    # A job naming an image is judged against the nodes that can run one, and told so.
    runtime = " with a container runtime" if shape.container else ""
    node = f"node of this fleet{runtime}"
    gpu_type, memory, g = shape.gpu_type, shape.gpu_memory_mb, shape.gpus_per_node
    typed = [
        (cpu, ram, {k: m for k, m in c.items() if gpu_type is None or k[0] == gpu_type}, n)
        for cpu, ram, c, n in nodes
    ]
    typed = [t for t in typed if t[2]]
    if not typed:
        if gpu_type:
            return f"no {node} has a {gpu_type} GPU"
        return f"no {node} has GPUs" if shape.container else "this fleet has no GPUs"
    what = gpu_type or "GPU"
    roomy = [(cpu, ram, {k: m for k, m in c.items() if k[1] >= memory}, n) for cpu, ram, c, n in typed]
    roomy = [t for t in roomy if t[2]]
    if not roomy:
        where = " on a node with a container runtime" if shape.container else " of this fleet"
        return f"no {what}{where} has {gb(memory)} of memory"
    enough = [(cpu, ram, [k for k, m in c.items() if m >= g], n) for cpu, ram, c, n in roomy]
    enough = [t for t in enough if t[2]]
    such = f"{g} {gpu_type or 'GPUs'}" + (f" with {gb(memory)}" if memory else "")
    if not enough:
        return f"no {node} has {such}"
    able = [(ks, n) for cpu, ram, ks, n in enough if cpu >= shape.cpu_cores and ram >= shape.ram_mb]
    if not able:
        return f"no {node} with {such} also has {shape.cpu_cores} CPU cores and {gb(shape.ram_mb)} of RAM"
    if shape.nodes > 1:
        per_kind: dict[Kind, int] = {}
        for ks, n in able:
            for k in ks:
                per_kind[k] = per_kind.get(k, 0) + n
        most = max(per_kind.values())
        if most < shape.nodes:
            return f"the gang needs {shape.nodes} nodes with {such} each; this fleet has {most} such nodes{runtime}"
    return None
