"""The one audit log on the running stack, through REST (docs/audit.md): a job submit and cancel
(scheduler), a webhook (notification), an API key (identity) and an operator's join token (fleet) all
land in the log with who, what, before/after and the X-Request-ID that made them; a member is refused,
another organization sees none of it, and the operator sees the join token in the fleet-wide view."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import client, eventually

pytestmark = pytest.mark.e2e


def _rid(tag: str) -> dict[str, str]:
    return {"X-Request-ID": f"audit-{tag}-{uuid.uuid4().hex[:10]}"}


async def _records(api: httpx.AsyncClient, path: str = "/audit", **params: Any) -> list[dict[str, Any]]:
    r = await api.get(path, params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["records"])


async def test_every_change_is_in_the_owners_audit_log(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    async with client(stack, orgs["a"]) as owner, client(stack, stack.admin_token) as operator:
        me = (await owner.get("/me")).json()["principal"]
        submit_id, cancel_id, hook_id, key_id, token_id = (
            _rid("submit"),
            _rid("cancel"),
            _rid("webhook"),
            _rid("key"),
            _rid("join"),
        )
        job = await owner.post(
            "/jobs", json={"command": "sleep 30", "gpu_count": 1, "hold": True}, headers=submit_id
        )
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        r = await owner.post(f"/jobs/{job_id}/cancel", headers=cancel_id)
        assert r.status_code in (200, 202), r.text
        hook = await owner.post(
            "/webhooks",
            json={"url": "http://127.0.0.1:9/audit-hook", "events": ["job.failed"]},
            headers=hook_id,
        )
        assert hook.status_code == 201, hook.text
        secret = hook.json()["secret"]
        key = await owner.post("/api-keys", json={"name": "audit-e2e"}, headers=key_id)
        assert key.status_code == 201, key.text
        token = await operator.post("/admin/join-tokens", json={"description": "audit e2e"}, headers=token_id)
        assert token.status_code == 201, token.text

        wanted = {rid["X-Request-ID"] for rid in (submit_id, cancel_id, hook_id, key_id)}

        async def all_recorded() -> dict[str, dict[str, Any]] | None:
            found = {r["request_id"]: r for r in await _records(owner) if r["request_id"] in wanted}
            return found if set(found) == wanted else None

        found = await eventually(all_recorded, timeout=60)
        user = {"kind": "user", "user_id": me["user_id"], "api_key_id": me["api_key_id"]}
        for record in found.values():
            assert record["organization_id"] == orgs["a_org"]
            assert {k: record["actor"][k] for k in user} == user

        submitted = found[submit_id["X-Request-ID"]]
        assert (submitted["service"], submitted["action"], submitted["target_type"]) == (
            "scheduler",
            "job.submit",
            "job",
        )
        assert submitted["target_id"] == job_id and submitted["before"] is None
        assert submitted["after"]["status"] == "queued" and submitted["after"]["held"] is True

        cancelled = found[cancel_id["X-Request-ID"]]
        assert (cancelled["action"], cancelled["target_id"]) == ("job.cancel", job_id)
        assert cancelled["before"]["status"] == "queued" and cancelled["after"]["status"] == "cancelled"

        created = found[hook_id["X-Request-ID"]]
        assert (created["service"], created["action"]) == ("notification", "webhook.create")
        assert created["target_id"] == hook.json()["id"] and created["before"] is None
        assert created["after"]["url"] == "http://127.0.0.1:9/audit-hook"

        issued = found[key_id["X-Request-ID"]]
        assert (issued["service"], issued["action"], issued["target_id"]) == (
            "identity",
            "api_key.created",
            key.json()["id"],
        )

        text = (await owner.get("/audit", params={"limit": 200})).text
        assert secret not in text and key.json()["secret"] not in text  # never a secret
        only = await _records(owner, service="scheduler", target_type="job", target_id=job_id)
        assert [r["action"] for r in only] == ["job.cancel", "job.submit"]

        # The join token is fleet-wide: the operator's view has it, no organization's does.
        async def join_token_recorded() -> dict[str, Any] | None:
            rows = await _records(operator, "/admin/audit-log", action="join_token.create")
            return next((r for r in rows if r["request_id"] == token_id["X-Request-ID"]), None)

        joined = await eventually(join_token_recorded, timeout=60)
        assert joined["organization_id"] is None and joined["service"] == "fleet"
        assert joined["target_id"] == token.json()["id"]
        assert joined["actor"]["kind"] == "operator" and joined["actor"]["operator_name"] == "admin"
        assert token.json()["token"] not in (await operator.get("/admin/audit-log")).text
        assert token_id["X-Request-ID"] not in text
        mine = await _records(
            operator, "/admin/audit-log", organization_id=orgs["a_org"], service="scheduler"
        )
        assert {r["organization_id"] for r in mine} == {orgs["a_org"]}

        # Another organization sees none of A's; a member of A is refused.
        async with client(stack, orgs["b"]) as other:
            theirs = await _records(other)
            assert all(r["organization_id"] == orgs["b_org"] for r in theirs)
            assert not wanted & {r["request_id"] for r in theirs}
            assert (
                job_id
                not in (await other.get("/audit", params={"target_type": "job", "target_id": job_id})).text
            )

        invite = await owner.post(
            "/invites", json={"email": f"m-{uuid.uuid4().hex[:6]}@example.com", "role": "member"}
        )
        assert invite.status_code == 201, invite.text
        async with client(stack, invite.json()["token"]) as anon:
            accepted = await anon.post("/invites/accept", json={"name": "Member"})
        assert accepted.status_code == 201, accepted.text
        async with client(stack, accepted.json()["api_key"]["secret"]) as member:
            refused = await member.get("/audit")
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
        async with client(stack, orgs["a"]) as as_tenant:
            assert (await as_tenant.get("/admin/audit-log")).status_code in (401, 403)
