"""Preemption on the running stack (one agent, 2 simulated GPUs of one type): lent capacity comes back.

A third organization holds one GPU within its own nominal for the whole test, so one GPU of the type
is left: org A's nominal (1), which org B (nominal 0) borrows while A has nothing to run. B's long job
runs; A submits; B's job is stopped by its agent, requeued as attempt 2 with the reason in its history
(A's job says meanwhile that its lent GPUs are being reclaimed, without naming B), A's job runs on
that GPU only after B's attempt released it, then B's runs again and succeeds. B's first attempt is
credited in its cost record.

The test puts the policy back as it found it (other tests share the stack)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import client, eventually, wait_status
from tests.e2e.helpers import quiet as _quiet
from tests.e2e.helpers import submit as _submit
from tests.e2e.helpers import wait_pending as _pending

pytestmark = pytest.mark.e2e

ENDED = {"succeeded", "failed", "cancelled", "timed_out"}
REASON = "preempted: capacity reclaimed by its lender"


def _at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))


async def _gpu_type(api: httpx.AsyncClient) -> str:
    async def two() -> list[dict[str, Any]] | None:
        gpus = (await api.get("/gpus")).json()["gpus"]
        return gpus if len(gpus) == 2 else None

    [name] = {g["gpu_type"] for g in await eventually(two, timeout=120)}
    return str(name)


async def test_a_borrowed_gpu_is_reclaimed_the_borrower_requeued_and_credited(stack, orgs):
    await _quiet(stack, orgs)
    c = await stack.create_organization("Initech", f"carol-{uuid.uuid4().hex[:8]}@initech.example", "Carol")
    org_a, org_b, org_c = orgs["a_org"], orgs["b_org"], c.organization.id
    async with (
        client(stack, stack.admin_token) as op,
        client(stack, orgs["a"]) as a,
        client(stack, orgs["b"]) as b,
        client(stack, c.api_key.secret) as other,
    ):
        gpu_type = await _gpu_type(a)
        quotas = {org_a: 1, org_b: 0, org_c: 1}
        cleanup: list[tuple[httpx.AsyncClient, str]] = []
        try:
            policy = (await op.put("/admin/policy", json={"reclaim_lent_capacity": True})).json()
            assert policy["reclaim_lent_capacity"] is True and policy["preemption_grace_seconds"] == 0
            for org, nominal in quotas.items():
                r = await op.put(f"/admin/quotas/{org}/{gpu_type}", json={"nominal": nominal})
                assert r.status_code == 200, r.text

            # C holds one GPU within its nominal: never a victim. One GPU of the type is left.
            blocker = await _submit(other, command="sleep 300", name="c-holds-its-own")
            cleanup.append((other, blocker["id"]))
            await wait_status(other, blocker["id"], {"running"}, timeout=30)

            # B borrows A's idle nominal. Stopping takes a moment (it traps SIGTERM; the agent
            # kills it after its grace period), so A's reason can be seen meanwhile.
            borrowed = await _submit(
                b, command="trap 'sleep 30' TERM; sleep 12; echo b-done", name="b-borrows"
            )
            cleanup.append((b, borrowed["id"]))
            running = await wait_status(b, borrowed["id"], {"running"}, timeout=30)
            assert running["attempt"] == 1
            b_gpus = set(running["gpu_ids"])

            lender = await _submit(a, command="sleep 2; echo a-done", name="a-reclaims")
            cleanup.append((a, lender["id"]))
            waiting = await _pending(a, lender["id"], "reclaiming", timeout=20)
            message = waiting["pending_reason"]["message"]
            assert message == "your organization's lent GPUs are being reclaimed: 1 borrowed job is stopping"
            assert org_b not in message and "Globex" not in message

            requeued = await eventually(lambda: _attempt(b, borrowed["id"], 2), timeout=30)
            entry = next(h for h in requeued["history"] if REASON in (h.get("reason") or ""))
            assert entry["status"] == "queued" and entry["reason"].startswith("requeued as attempt 2")
            if requeued["status"] == "queued":  # why B waits now: A has its nominal back
                assert requeued["pending_reason"]["code"] in {"quota_exhausted", "no_capacity"}

            done_a = await wait_status(a, lender["id"], ENDED, timeout=60)
            assert done_a["status"] == "succeeded" and "a-done" in (done_a["output_tail"] or "")
            assert set(done_a["gpu_ids"]) == b_gpus  # the very GPU B borrowed
            a_placed = next(h for h in done_a["history"] if h["status"] == "scheduled")
            assert _at(a_placed) >= _at(entry)  # placed only after B's attempt released it

            done_b = await wait_status(b, borrowed["id"], ENDED, timeout=60)
            assert done_b["status"] == "succeeded" and done_b["attempt"] == 2
            b_again = [h for h in done_b["history"] if h["status"] == "scheduled"][-1]
            a_end = next(h for h in done_a["history"] if h["status"] == "succeeded")
            # never two jobs on one GPU: B's second attempt got it back only once A's had ended
            assert _at(b_again) >= _at(a_end) or not set(done_b["gpu_ids"]) & b_gpus

            # B pays only for the attempt that ran to its end: the preempted one is credited.
            async def costed() -> dict[str, Any] | None:
                r = await b.get(f"/jobs/{borrowed['id']}/cost")
                body = r.json() if r.status_code == 200 else None
                return body if body and len(body["attempts"]) == done_b["attempt"] else None

            cost = await eventually(costed, timeout=60)
            *stopped, last = sorted(cost["attempts"], key=lambda x: x["attempt"])
            for first in stopped:
                assert first["outcome"] == "requeued" and float(first["gross_cost"]) > 0
                assert first["credit"] == first["gross_cost"] and float(first["net_cost"]) == 0
            assert last["outcome"] == "succeeded" and float(last["net_cost"]) > 0
            assert float(cost["credit"]) == sum(float(f["gross_cost"]) for f in stopped)
        finally:
            for api, job_id in cleanup:
                await api.post(f"/jobs/{job_id}/cancel")
            for org in quotas:
                await op.delete(f"/admin/quotas/{org}/{gpu_type}")

        r = await op.get("/admin/audit", params={"limit": 20})
        assert any(e["method"] == "PolicyService/SetPreemption" for e in r.json()["entries"])


async def _attempt(api: httpx.AsyncClient, job_id: str, attempt: int) -> dict[str, Any] | None:
    job = (await api.get(f"/jobs/{job_id}")).json()
    return job if job["attempt"] >= attempt else None
