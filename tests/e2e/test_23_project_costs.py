"""Projects in billing and the event stream, end to end (docs/projects.md, "Billing and events"): each
job's cost carries its project, `GET /v1/costs?project_id=` filters by it and the summary groups by real
projects; a project-bound key reads only its project's costs, events and job output (another project's
job answers as one that does not exist), lists only its project's job deliveries and may not touch the
organization's webhooks."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.helpers import client, eventually, submit, wait_status
from tests.e2e.test_9_events import cost_of, open_stream

pytestmark = pytest.mark.e2e


def project_of(frame: dict[str, Any]) -> str | None:
    """The project an event frame is about: the job snapshot's, or the cost record's."""
    data = frame["data"]["data"]
    return data["project_id"] if frame["event"] == "gpufleet.cost.recorded" else data["job"]["project_id"]


async def test_costs_and_events_by_project_and_for_a_project_bound_key(stack, receiver) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    org = await stack.create_organization(f"Initech {tag}", f"ian@{tag}.example", "Ian")
    async with client(stack, org.api_key.secret) as owner:
        p = (await owner.post("/projects", json={"name": f"vision-{tag}"})).json()["id"]
        q = (await owner.post("/projects", json={"name": f"speech-{tag}"})).json()["id"]
        r = await owner.post("/api-keys", json={"name": f"ci-{tag}", "project_id": p})
        assert r.status_code == 201, r.text
        bound_secret = r.json()["secret"]

        q_job = await submit(owner, command="echo q", project_id=q, webhook_url=f"{receiver.url}/{tag}/q")
        loose = await submit(owner, command="echo none", webhook_url=f"{receiver.url}/{tag}/none")
        assert (q_job["project_id"], loose["project_id"]) == (q, None)
        for job in (q_job, loose):
            await wait_status(owner, job["id"], {"succeeded"}, timeout=120)

        # The organization's stream holds both costs before the bound key's job exists.
        async with open_stream(stack, org.api_key.secret, {"from": "start"}) as stream:
            seen: set[str] = set()

            def both(frame: dict[str, Any]) -> bool:
                for job in (q_job, loose):
                    if cost_of(job["id"])(frame):
                        seen.add(job["id"])
                return len(seen) == 2

            frames = await stream.until(both)
        assert {project_of(f) for f in frames} == {q, None}

    async with client(stack, bound_secret) as bound:
        mine = await submit(bound, command="echo p", webhook_url=f"{receiver.url}/{tag}/p")
        assert mine["project_id"] == p  # a bound key's job lands in its project
        await wait_status(bound, mine["id"], {"succeeded"}, timeout=120)

        async def recorded() -> dict[str, Any] | None:
            r = await bound.get(f"/jobs/{mine['id']}/cost")
            return r.json() if r.status_code == 200 else None

        cost = await eventually(recorded, timeout=60)
        assert cost["project_id"] == p

        # Its stream from the start: only its project's job and cost events, up to its job's cost.
        async with open_stream(stack, bound_secret, {"from": "start"}) as stream:
            frames = await stream.until(cost_of(mine["id"]))
        assert frames and {project_of(f) for f in frames} == {p}
        assert {f["data"]["subject"] for f in frames} == {mine["id"]}

        # Costs: its own only; another project's job is absent, another project finds nothing.
        listed = (await bound.get("/costs")).json()["costs"]
        assert [c["job_id"] for c in listed] == [mine["id"]]
        absent = await bound.get(f"/jobs/{q_job['id']}/cost")
        nowhere = await bound.get(f"/jobs/{uuid.uuid4()}/cost")
        assert absent.status_code == nowhere.status_code == 404
        per_request = ("instance", "request_id")
        assert {k: v for k, v in absent.json().items() if k not in per_request} == {
            k: v for k, v in nowhere.json().items() if k not in per_request
        }
        for other in (q, str(uuid.uuid4())):  # another project finds nothing, as an unknown one
            r = await bound.get("/costs", params={"project_id": other})
            assert (r.status_code, r.json()["costs"]) == (200, []), r.text
        summary = (await bound.get("/costs/summary", params={"group_by": "project"})).json()
        assert [g["key"] for g in summary["groups"]] == [p]

        # Job output: its own job's; another project's job, or one of no project, as an unknown one.
        async def printed() -> str | None:
            r = await bound.get(f"/jobs/{mine['id']}/logs")
            assert r.status_code == 200, r.text
            return r.text if r.headers["GpuFleet-Output-Complete"] == "true" else None

        assert await eventually(printed, timeout=60) == "p\n"
        nowhere = await bound.get(f"/jobs/{uuid.uuid4()}/logs")
        assert nowhere.status_code == 404
        for job in (q_job, loose):
            r = await bound.get(f"/jobs/{job['id']}/logs")
            assert r.status_code == 404, r.text
            assert {k: v for k, v in r.json().items() if k not in per_request} == {
                k: v for k, v in nowhere.json().items() if k not in per_request
            }

        # Webhooks: its project's job deliveries only; the organization's webhooks are not its business.
        async def delivered() -> list[dict[str, Any]]:
            r = await bound.get("/webhook-deliveries")
            assert r.status_code == 200, r.text
            return [d for d in r.json()["deliveries"] if d["status"] == "delivered"]

        deliveries = await eventually(delivered, timeout=60)
        assert {d["url"] for d in deliveries} == {f"{receiver.url}/{tag}/p"}
        assert {d["job_id"] for d in deliveries} == {mine["id"]}
        for call in (
            bound.get("/webhooks"),
            bound.post("/webhooks", json={"url": f"{receiver.url}/{tag}/mine"}),
        ):
            r = await call
            assert r.status_code == 403, r.text

    async with client(stack, org.api_key.secret) as owner:
        by_project = (await owner.get("/costs", params={"project_id": q})).json()["costs"]
        assert [(c["job_id"], c["project_id"]) for c in by_project] == [(q_job["id"], q)]
        everything = {c["job_id"]: c["project_id"] for c in (await owner.get("/costs")).json()["costs"]}
        assert everything == {q_job["id"]: q, loose["id"]: None, mine["id"]: p}
        summary = (await owner.get("/costs/summary", params={"group_by": "project"})).json()
        assert {g["key"]: g["jobs"] for g in summary["groups"]} == {"": 1, p: 1, q: 1}
        assert sum(float(g["cost"]) for g in summary["groups"]) == pytest.approx(
            float(summary["total"]["cost"])
        )
        for job, text in ((q_job, "q\n"), (loose, "none\n"), (mine, "p\n")):  # every project's output

            async def output(job_id: str = job["id"]) -> str | None:
                r = await owner.get(f"/jobs/{job_id}/logs")
                return r.text if r.headers["GpuFleet-Output-Complete"] == "true" else None

            assert await eventually(output, timeout=60) == text
        # The organization's keys still see every project's deliveries and manage the webhooks.
        assert (await owner.get("/webhooks")).status_code == 200
