"""Webhook administration on the running stack, through REST (issue 9): change a webhook (merge
semantics, the create-time URL rules), rotate its signing secret with an overlap (a local receiver
verifies each delivery with the standardwebhooks library holding the old secret, and holding the new
one), redeliver a delivery with the same event id, another organization gets 404 exactly as for a
missing id, and every change is in GET /v1/audit without a secret."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from tests.e2e.helpers import client, eventually, wait_status

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


async def test_update_rotate_redeliver_and_audit(stack, orgs, receiver) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:10]
    first, moved, own = f"/t27-{tag}/first", f"/t27-{tag}/moved", f"/t27-{tag}/own"
    async with client(stack, orgs["a"]) as owner, client(stack, orgs["b"]) as other:
        r = await owner.post(
            "/webhooks", json={"url": receiver.url + first, "events": ["job.failed"], "description": tag}
        )
        assert r.status_code == 201, r.text
        hook, old_secret = r.json(), r.json()["secret"]

        # Merge semantics: what is left out stays; null removes the description.
        r = await owner.patch(f"/webhooks/{hook['id']}", json={"events": ["job.succeeded"]})
        assert r.status_code == 200, r.text
        assert (r.json()["events"], r.json()["description"], r.json()["url"]) == (
            ["job.succeeded"],
            tag,
            receiver.url + first,
        )
        r = await owner.patch(
            f"/webhooks/{hook['id']}", json={"url": receiver.url + moved, "description": None}
        )
        assert r.status_code == 200, r.text
        assert (r.json()["url"], r.json()["description"]) == (receiver.url + moved, None)
        for bad in ({"url": "ftp://x.example/"}, {"status": "paused"}, {"secret": "whsec_x"}):
            r = await owner.patch(f"/webhooks/{hook['id']}", json=bad)
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (bad, r.text)
        r = await owner.post(f"/webhooks/{hook['id']}/rotate-secret", json={"overlap_seconds": 8 * 86400})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text

        # Off by hand and on again.
        r = await owner.patch(f"/webhooks/{hook['id']}", json={"status": "disabled"})
        assert (r.status_code, r.json()["status"], r.json()["is_active"]) == (200, "disabled", False)
        r = await owner.patch(f"/webhooks/{hook['id']}", json={"status": "active"})
        assert (r.status_code, r.json()["status"], r.json()["consecutive_failures"]) == (200, "active", 0)

        r = await owner.post(f"/webhooks/{hook['id']}/rotate-secret", json={"overlap_seconds": 3600})
        assert r.status_code == 200, r.text
        new_secret = r.json()["secret"]
        assert new_secret.startswith("whsec_") and new_secret != old_secret
        assert r.json()["previous_secret_expires_at"]

        # A delivery during the overlap carries both signatures: either secret verifies it.
        r = await owner.post("/jobs", json={"command": f"echo {tag}", "gpu_count": 1})
        assert r.status_code == 201, r.text
        job = await wait_status(owner, r.json()["id"], {"succeeded"}, timeout=120)
        (headers, body), *_ = await eventually(lambda: _bodies(receiver, moved), timeout=60)
        assert len(headers["webhook-signature"].split(" ")) == 2
        Verifier(old_secret).verify(body, headers)
        Verifier(new_secret).verify(body, headers)
        assert receiver.bodies(first) == []  # the new URL got it

        async def delivered() -> dict[str, Any] | None:
            found = (await owner.get("/webhook-deliveries", params={"webhook_id": hook["id"]})).json()
            mine = [d for d in found["deliveries"] if d["job_id"] == job["id"]]
            return mine[0] if mine and mine[0]["status"] == "delivered" else None

        delivery = await delivered() or await eventually(delivered, timeout=60)
        assert delivery["event_id"] == headers["webhook-id"]

        # Another organization: 404 as for an id that exists nowhere, and nothing changes.
        for verb, path, payload in (
            ("PATCH", "/webhooks/{}", {"description": "theirs"}),
            ("POST", "/webhooks/{}/rotate-secret", {}),
            ("POST", "/webhook-deliveries/{}/redeliver", None),
        ):
            target = hook["id"] if "webhooks/" in path else delivery["id"]
            theirs = await other.request(verb, path.format(target), json=payload)
            nowhere = await other.request(verb, path.format(uuid.uuid4()), json=payload)
            assert theirs.status_code == nowhere.status_code == 404, theirs.text
            assert theirs.headers["content-type"] == nowhere.headers["content-type"] == PROBLEM
            # ``instance`` is the path the caller sent: its own input, not something of A's.
            answer = {k: v for k, v in theirs.json().items() if k not in ("request_id", "instance")}
            assert answer == {k: v for k, v in nowhere.json().items() if k not in ("request_id", "instance")}
            assert target not in str(answer)
        (listed,) = [w for w in (await owner.get("/webhooks")).json()["webhooks"] if w["id"] == hook["id"]]
        assert listed["description"] is None

        # Redeliver: a new attempt now, the same event id, signed as any delivery is.
        r = await owner.post(f"/webhook-deliveries/{delivery['id']}/redeliver")
        assert r.status_code == 202, r.text
        assert (r.json()["id"], r.json()["event_id"]) == (delivery["id"], delivery["event_id"])
        again = await eventually(lambda: _bodies(receiver, moved, at_least=2), timeout=60)
        headers2, body2 = again[-1]
        assert headers2["webhook-id"] == headers["webhook-id"] and body2 == body
        Verifier(new_secret).verify(body2, headers2)

        async def redelivered() -> bool:
            found = (await owner.get("/webhook-deliveries", params={"webhook_id": hook["id"]})).json()
            d = next(d for d in found["deliveries"] if d["id"] == delivery["id"])
            return d["status"] == "delivered" and d["attempts"] == 2

        await eventually(redelivered, timeout=60)

        # The job webhook secret rotates the same way (owners and admins).
        old_job_secret = (await owner.get("/webhooks/job-secret")).json()["secret"]
        r = await owner.post("/webhooks/job-secret/rotate", json={"overlap_seconds": 3600})
        assert r.status_code == 200 and r.json()["previous_secret_expires_at"], r.text
        job_secret = r.json()["secret"]
        assert job_secret != old_job_secret
        assert (await owner.get("/webhooks/job-secret")).json()["secret"] == job_secret
        r = await owner.post(
            "/jobs", json={"command": "true", "gpu_count": 1, "webhook_url": receiver.url + own}
        )
        assert r.status_code == 201, r.text
        (job_headers, job_body), *_ = await eventually(lambda: _bodies(receiver, own), timeout=120)
        Verifier(old_job_secret).verify(job_body, job_headers)
        Verifier(job_secret).verify(job_body, job_headers)

        # The audit log has every change, with no secret.
        wanted = {"webhook.update": 4, "webhook.rotate_secret": 1}

        async def audited() -> list[dict[str, Any]] | None:
            r = await owner.get(
                "/audit",
                params={"service": "notification", "target_type": "webhook", "target_id": hook["id"]},
            )
            assert r.status_code == 200, r.text
            records = r.json()["records"]
            counts = {a: sum(1 for x in records if x["action"] == a) for a in wanted}
            return records if counts == wanted else None

        records = await eventually(audited, timeout=60)
        rotated = next(x for x in records if x["action"] == "webhook.rotate_secret")
        assert rotated["after"]["overlap_until"] and rotated["target_type"] == "webhook"

        async def redelivery_audited() -> list[dict[str, Any]]:
            r = await owner.get("/audit", params={"target_type": "delivery", "target_id": delivery["id"]})
            assert r.status_code == 200, r.text
            return [x for x in r.json()["records"] if x["action"] == "delivery.redeliver"]

        (record,) = await eventually(redelivery_audited, timeout=60)
        assert (record["before"]["status"], record["after"]["status"]) == ("delivered", "pending")
        text = (await owner.get("/audit", params={"service": "notification", "limit": 200})).text
        assert old_secret not in text and new_secret not in text
        assert old_job_secret not in text and job_secret not in text
        assert hook["id"] not in (await other.get("/audit", params={"limit": 200})).text


async def _bodies(receiver, path: str, at_least: int = 1) -> list[tuple[dict[str, str], bytes]] | None:  # type: ignore[no-untyped-def]
    found = receiver.bodies(path)
    return found if len(found) >= at_least else None
