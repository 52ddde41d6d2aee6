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
from .snapshot import NodeState, Snapshot


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


def _kind_counts(snapshot: Snapshot) -> list[tuple[NodeState, dict[Kind, int]]]:
    cached = snapshot.static_cache.get("kind_counts")
    if cached is None:
        cached = []
        for st in sorted(snapshot.nodes.values(), key=lambda s: s.key):
            counts: dict[Kind, int] = {}
            for gpu in st.node.gpus:
                counts[gpu.kind] = counts.get(gpu.kind, 0) + 1
            cached.append((st, counts))
        snapshot.static_cache["kind_counts"] = cached
    result: list[tuple[NodeState, dict[Kind, int]]] = cached
    return result


def _never_fits(snapshot: Snapshot, shape: Shape, pools: set[Pool]) -> str | None:
    if shape.nodes < 1 or shape.gpus_per_node < 1:
        return "a job needs at least one node and one GPU per node"
    nodes = [(st, counts) for st, counts in _kind_counts(snapshot) if st.pool in pools]
    gpu_type, memory, g = shape.gpu_type, shape.gpu_memory_mb, shape.gpus_per_node
    typed = [(st, {k: n for k, n in c.items() if gpu_type is None or k[0] == gpu_type}) for st, c in nodes]
    typed = [(st, c) for st, c in typed if c]
    if not typed:
        return f"no node of this fleet has a {gpu_type} GPU" if gpu_type else "this fleet has no GPUs"
    what = gpu_type or "GPU"
    roomy = [(st, {k: n for k, n in c.items() if k[1] >= memory}) for st, c in typed]
    roomy = [(st, c) for st, c in roomy if c]
    if not roomy:
        return f"no {what} of this fleet has {gb(memory)} of memory"
    enough = [(st, [k for k, n in c.items() if n >= g]) for st, c in roomy]
    enough = [(st, ks) for st, ks in enough if ks]
    such = f"{g} {gpu_type or 'GPUs'}" + (f" with {gb(memory)}" if memory else "")
    if not enough:
        return f"no node of this fleet has {such}"
    able = [
        (st, ks)
        for st, ks in enough
        if st.node.cpu_cores >= shape.cpu_cores and st.node.ram_mb >= shape.ram_mb
    ]
    if not able:
        return (
            f"no node of this fleet with {such} also has {shape.cpu_cores} CPU cores "
            f"and {gb(shape.ram_mb)} of RAM"
        )
    if shape.nodes > 1:
        per_kind: dict[Kind, int] = {}
        for _, ks in able:
            for k in ks:
                per_kind[k] = per_kind.get(k, 0) + 1
        most = max(per_kind.values())
        if most < shape.nodes:
            return f"the gang needs {shape.nodes} nodes with {such} each; this fleet has {most} such nodes"
    return None
