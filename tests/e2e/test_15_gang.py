"""Gangs across two agents: every member runs with what distributed training reads (RANK, WORLD_SIZE,
MASTER_ADDR = the rank-0 node's host name, MASTER_PORT, the host list), and a member that fails ends
the whole gang: the job fails once, the other member is stopped, both nodes' GPUs are free again."""

from __future__ import annotations

import re
from collections import Counter

import httpx
import pytest

from shared.devstack import Stack

from .helpers import client, eventually, wait_status
from .multinode import get_ok, own_stack

NAME = "gang"
PRINT_ENV = (
    "echo RANK=$RANK WORLD_SIZE=$WORLD_SIZE MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT "
    "NODES=$GPUFLEET_NODE_NAMES GPUS=$CUDA_VISIBLE_DEVICES"
)
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


@pytest.fixture(scope="module")
async def gang(e2e_postgres, state_dir):
    async with own_stack(e2e_postgres, state_dir, NAME, agents=2) as (stack, key):
        yield stack, key


async def _hosts(api: httpx.AsyncClient) -> dict[str, str] | None:
    """node id -> host name, once both agents' GPUs are all available."""
    body = await get_ok(api, "/gpus")
    gpus = (body or {}).get("gpus", [])
    if len(gpus) != 4 or any(g["status"] != "available" for g in gpus):
        return None
    return {g["node_id"]: g["node_name"] for g in gpus}


async def _submit_gang(api: httpx.AsyncClient) -> httpx.Response | None:
    """The gang, once the scheduler knows both nodes: fleet (which /gpus reads) may tell the second node
    before its event reached the scheduler's inventory, whose admission then rightly says it cannot fit."""
    r = await api.post("/jobs", json={"command": PRINT_ENV, "gpu_count": 1, "nodes": 2})
    if r.status_code == 422 and "could ever run" in r.text:
        return None
    assert r.status_code == 201, r.text
    return r


def _ranked(job: dict) -> list[dict]:
    placements = sorted(job["placements"], key=lambda p: p["rank"])
    assert [p["rank"] for p in placements] == list(range(job["nodes"]))
    return placements


async def test_a_two_node_gang_gets_its_rank_environment(gang):
    stack: Stack
    stack, key = gang
    async with client(stack, key) as api:
        hosts = await eventually(lambda: _hosts(api), timeout=60)
        assert sorted(hosts.values()) == ["devstack-node-1", "devstack-node-2"]
        r = await eventually(lambda: _submit_gang(api), timeout=30)
        job = await wait_status(api, r.json()["id"], TERMINAL)
        print(job["output_tail"])
        assert job["status"] == "succeeded", job
        ranked = _ranked(job)
        names = [hosts[p["node_id"]] for p in ranked]
        assert len(set(names)) == 2  # one member per node
        out = job["output_tail"]
        found = re.search(
            r"RANK=(\d) WORLD_SIZE=(\d+) MASTER_ADDR=(\S+) MASTER_PORT=(\d+) NODES=(\S+) GPUS=(\S+)", out
        )
        assert found, out
        rank, world, master, port, nodes, gpus = found.groups()
        assert world == "2" and master == names[0] and nodes == ",".join(names)
        assert rank in ("0", "1") and 0 < int(port) < 65536 and len(gpus.split(",")) == 1
        assert Counter(h["status"] for h in job["history"])["succeeded"] == 1


async def test_a_gang_whose_rank_1_fails_ends_failed_and_frees_both_nodes(gang):
    stack: Stack
    stack, key = gang
    async with client(stack, key) as api:
        await eventually(lambda: _hosts(api), timeout=60)
        # Rank 1 fails at once; rank 0 would run for ten minutes unless it is stopped.
        command = '[ "$RANK" = 1 ] && { echo rank 1 gives up; exit 1; }; sleep 600'
        r = await api.post("/jobs", json={"command": command, "gpu_count": 1, "nodes": 2})
        assert r.status_code == 201, r.text
        job = await wait_status(api, r.json()["id"], TERMINAL, timeout=90)
        assert job["status"] == "failed" and job["exit_code"] == 1, job
        assert "rank 1 gives up" in job["output_tail"]
        assert len(_ranked(job)) == 2
        states = Counter(h["status"] for h in job["history"])
        assert sum(states[s] for s in TERMINAL) == 1 and states["failed"] == 1, job["history"]

        async def stopped_everywhere() -> bool:
            for name in stack.agent_names:
                async with httpx.AsyncClient(timeout=5) as http:
                    text = (await http.get(stack.metrics_url(name))).text
                running = re.search(r"^gpufleet_agent_jobs_running (\S+)$", text, re.M)
                if running is None or float(running.group(1)) != 0:
                    return False
            return True

        await eventually(stopped_everywhere, timeout=60)  # rank 0's sleep 600 was stopped
        # Both nodes' GPUs are free: a gang that needs every GPU of both nodes runs.
        r = await api.post("/jobs", json={"command": PRINT_ENV, "gpu_count": 2, "nodes": 2})
        whole = await wait_status(api, r.json()["id"], TERMINAL, timeout=90)
        assert whole["status"] == "succeeded", whole
        assert len(whole["gpu_ids"]) == 4
        found = re.search(r"GPUS=(\S+)", whole["output_tail"])
        assert found and len(found.group(1).split(",")) == 2
        after = (await api.get(f"/jobs/{job['id']}")).json()
        assert after["status"] == "failed" and after["finished_at"] == job["finished_at"]  # ended once
