"""A small chaos soak on the e2e stack: services, the agent and the broker SIGKILLed under load.

The supervisor the devstack uses brings each one back; afterwards no job is lost, run twice, re-run after
its finish or billed other than exactly once (the checks of tests.chaos.invariants; ``make chaos`` runs
the large version on a stack of its own).
"""

from __future__ import annotations

import httpx
import pytest

from shared.devstack import PROCESSES
from shared.embedded.supervisor import Supervisor
from tests.chaos.soak import SOAK_POLICY, ChaosConfig, run_chaos, summary
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(240)
async def test_chaos_loses_nothing_and_counts_nothing_twice(stack, e2e_kafka, e2e_postgres):
    org = await stack.create_organization("Chaos Inc", "chaos@chaos.example", "Chaos")
    lines: list[str] = []
    supervisor = Supervisor(SOAK_POLICY, say=lines.append, tail_lines=0)
    supervisor.add("postgres", e2e_postgres)
    supervisor.add("kafka", e2e_kafka)
    stack.supervise(supervisor)
    cfg = ChaosConfig(
        jobs=60,
        kill_every=3.0,
        seed=7,
        broker_kills=1,
        agent_kill_chance=0.1,
        max_agent_kills=1,
        deadline_s=300,  # a loaded 2-core CI machine runs this far slower than a laptop; settling needs room
    )
    report = await run_chaos(stack, e2e_kafka, supervisor, org.api_key.secret, cfg, say=lines.append)
    detail = summary(report) + "\n" + "\n".join(lines)
    print(detail)  # shown with -s, and by pytest on failure
    assert report["kills"] >= 3 and report["kills_by_target"].get("kafka") == 1, detail
    assert report["submitted"] == cfg.jobs, detail
    assert report["violations"] == [], detail
    # Every process is back and serving for whatever runs after this test.
    await stack.wait_ready(timeout=60, supervised=True)
    assert all(p.alive() for p in stack.processes.values()) and e2e_kafka.alive()


async def test_every_process_serves_its_ops_endpoints_where_endpoints_say(stack):
    """After the restarts above, each process's ops listener is back on the port the Stack gave it."""

    async def serving(name: str) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                metrics = await http.get(stack.metrics_url(name))
                live = await http.get(stack.liveness_url(name))
        except httpx.HTTPError:
            return False
        return metrics.status_code == 200 and "# TYPE" in metrics.text and live.status_code == 200

    for name in PROCESSES:
        await eventually(lambda name=name: serving(name), timeout=30)
    endpoints = stack.endpoints()
    assert {n: p["metrics"] for n, p in endpoints["processes"].items()} == {
        n: stack.metrics_url(n) for n in PROCESSES
    }
