"""Members and named operators on the running stack, through REST: an owner invites, the invitee accepts
and works with the invited role, a viewer cannot invite, a removed member's key stops working (at the
scheduler too) within the revocation bound, another organization sees and touches none of it, and a
named operator's policy change carries its name in the audit."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import client, eventually

pytestmark = pytest.mark.e2e


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return dict(r.json())


def _address(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


async def _invite(owner: httpx.AsyncClient, role: str, email: str | None = None) -> dict[str, Any]:
    r = await owner.post("/invites", json={"email": email or _address(role), "role": role})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _accept(stack, token: str, **body: Any) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with client(stack, token) as anon:
        return await anon.post("/invites/accept", json=body or None)


async def _member(stack, owner: httpx.AsyncClient, role: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    invite = await _invite(owner, role)
    r = await _accept(stack, invite["token"], name="New Member")
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_an_invitee_accepts_and_works_with_the_invited_role(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    address = _address("mia")
    async with client(stack, orgs["a"]) as owner:
        invite = await _invite(owner, "member", address)
        assert invite["token"].startswith("gpi_") and invite["mailed"] is False  # no SMTP server here
        assert (invite["kind"], invite["email"], invite["role"], invite["uses"]) == (
            "email",
            address,
            "member",
            0,
        )
        r = await _accept(stack, invite["token"], name="Mia")
        assert r.status_code == 201, r.text
        accepted = r.json()
        assert accepted["organization"]["id"] == orgs["a_org"]
        assert (accepted["member"]["email"], accepted["member"]["role"]) == (address, "member")
        key = accepted["api_key"]["secret"]
        async with client(stack, key) as mia:
            me = (await mia.get("/me")).json()
            assert (me["principal"]["role"], me["organization"]["id"]) == ("member", orgs["a_org"])
            job = await mia.post("/jobs", json={"command": "echo member", "gpu_count": 1})
            assert job.status_code == 201, job.text  # a member may submit
            await mia.post(f"/jobs/{job.json()['id']}/cancel")
            members = (await mia.get("/members")).json()["members"]
            assert {(m["email"], m["role"]) for m in members} >= {(address, "member")}
        _problem(await _accept(stack, invite["token"]), 401)  # once only
        listed = {i["id"]: i for i in (await owner.get("/invites")).json()["invites"]}
        assert listed[invite["id"]]["uses"] == 1 and "token" not in listed[invite["id"]]
        _problem(await _accept(stack, "gpi_" + "x" * 43), 401)
        _problem(await _accept(stack, orgs["a"]), 401)  # an API key is not an invite


async def test_an_invite_code_admits_several_people(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    async with client(stack, orgs["a"]) as owner:
        r = await owner.post("/invites", json={"role": "viewer", "max_uses": 2, "expires_in_seconds": 600})
        assert r.status_code == 201, r.text
        code = r.json()
        assert code["kind"] == "code" and code["token"].startswith("gpc_") and code["email"] is None
        _problem(await _accept(stack, code["token"]), 422)  # a code needs the acceptor's email
        for tag in ("c1", "c2"):
            joined = await _accept(stack, code["token"], email=_address(tag))
            assert joined.status_code == 201 and joined.json()["member"]["role"] == "viewer", joined.text
        _problem(await _accept(stack, code["token"], email=_address("c3")), 401)
        assert (await owner.delete(f"/invites/{code['id']}")).status_code == 204


async def test_a_viewer_cannot_invite_or_manage_members(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    async with client(stack, orgs["a"]) as owner:
        viewer = await _member(stack, owner, "viewer")
        other = await _member(stack, owner, "member")
    async with client(stack, viewer["api_key"]["secret"]) as api:
        assert (await api.get("/members")).status_code == 200
        _problem(await api.post("/invites", json={"email": _address("x"), "role": "member"}), 403)
        _problem(await api.get("/invites"), 403)
        _problem(await api.patch(f"/members/{other['member']['user_id']}", json={"role": "admin"}), 403)
        _problem(await api.delete(f"/members/{other['member']['user_id']}"), 403)


async def test_roles_and_the_last_owner(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    async with client(stack, orgs["a"]) as owner:
        me = (await owner.get("/me")).json()["principal"]
        admin = await _member(stack, owner, "admin")
        _problem(await owner.delete(f"/members/{me['user_id']}"), 409)  # the last owner stays
        _problem(await owner.patch(f"/members/{me['user_id']}", json={"role": "member"}), 409)
        _problem(await owner.patch(f"/members/{me['user_id']}", json={"role": "root"}), 422)
        async with client(stack, admin["api_key"]["secret"]) as adm:
            _problem(await adm.post("/invites", json={"email": _address("o"), "role": "owner"}), 403)
            _problem(await adm.patch(f"/members/{me['user_id']}", json={"role": "viewer"}), 403)
        changed = await owner.patch(f"/members/{admin['member']['user_id']}", json={"role": "viewer"})
        assert changed.status_code == 200 and changed.json()["role"] == "viewer", changed.text

        async def now_viewer() -> bool:
            async with client(stack, admin["api_key"]["secret"]) as adm:
                return (await adm.get("/me")).json()["principal"]["role"] == "viewer"

        await eventually(now_viewer, timeout=10)


async def test_a_removed_members_key_stops_working(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    async with client(stack, orgs["a"]) as owner:
        gone = await _member(stack, owner, "member")
        key = gone["api_key"]["secret"]
        async with client(stack, key) as api:
            assert (await api.get("/jobs")).status_code == 200  # cached by the gateway and the scheduler
            assert (await owner.delete(f"/members/{gone['member']['user_id']}")).status_code == 204

            async def refused() -> bool:
                return (await api.get("/jobs")).status_code == 401

            # Within the revocation bound (each process caches a key for at most a second).
            await eventually(refused, timeout=5, every=0.2)
            _problem(await api.get("/me"), 401)
        members = (await owner.get("/members")).json()["members"]
        assert gone["member"]["user_id"] not in {m["user_id"] for m in members}
        _problem(await owner.delete(f"/members/{gone['member']['user_id']}"), 404)


async def test_another_organization_sees_and_touches_none_of_it(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    async with client(stack, orgs["a"]) as owner:
        a_member = await _member(stack, owner, "member")
        pending = await _invite(owner, "viewer")
        a_members = (await owner.get("/members")).json()["members"]
    a_ids = {m["user_id"] for m in a_members} | {pending["id"]}
    a_emails = {m["email"] for m in a_members} | {pending["email"]}
    async with client(stack, orgs["b"]) as b:
        listed = (await b.get("/members")).text + (await b.get("/invites")).text
        assert not [x for x in a_ids | a_emails if x in listed]
        missing = str(uuid.uuid4())
        for a_path, body, verb in (
            (f"/members/{a_member['member']['user_id']}", {"role": "viewer"}, "PATCH"),
            (f"/members/{a_member['member']['user_id']}", None, "DELETE"),
            (f"/invites/{pending['id']}", None, "DELETE"),
        ):
            theirs = _problem(await b.request(verb, a_path, json=body), 404)
            nothing = _problem(
                await b.request(verb, a_path.rsplit("/", 1)[0] + f"/{missing}", json=body), 404
            )
            assert (theirs["type"], theirs["title"]) == (nothing["type"], nothing["title"])
    async with client(stack, a_member["api_key"]["secret"]) as still:
        assert (await still.get("/me")).json()["principal"]["role"] == "member"
    async with client(stack, orgs["a"]) as owner:
        invites = {i["id"]: i for i in (await owner.get("/invites")).json()["invites"]}
        assert invites[pending["id"]]["revoked_at"] is None


async def test_a_named_operators_policy_change_names_it_in_the_audit(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    name = f"ops-{uuid.uuid4().hex[:6]}"
    async with client(stack, stack.admin_token) as admin:
        r = await admin.post("/admin/operators", json={"name": name})
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["token"].startswith("gpo_") and created["created_by"] == "admin"
        _problem(await admin.post("/admin/operators", json={"name": name}), 409)
    async with client(stack, orgs["a"]) as tenant:
        _problem(await tenant.get("/admin/operators"), 401)  # an API key is no operator
    concerned = str(uuid.uuid4())  # an organization no one schedules for: nothing else is affected
    try:
        async with client(stack, created["token"]) as op:
            r = await op.put(f"/admin/fair-shares/{concerned}", json={"weight": 2})
            assert r.status_code == 200, r.text
            assert (await op.delete(f"/admin/fair-shares/{concerned}")).status_code == 204
        async with client(stack, stack.admin_token) as admin:
            entries = (await admin.get("/admin/audit", params={"organization_id": concerned})).json()[
                "entries"
            ]
            assert [(e["method"], e["actor"], e["operator_name"]) for e in entries] == [
                ("PolicyService/DeleteFairShare", "operator", name),
                ("PolicyService/SetFairShare", "operator", name),
            ]
    finally:
        async with client(stack, stack.admin_token) as admin:
            assert (await admin.delete(f"/admin/operators/{created['id']}")).status_code == 204
            ops = {o["id"]: o for o in (await admin.get("/admin/operators")).json()["operators"]}
            assert ops[created["id"]]["revoked_by"] == "admin"
    async with client(stack, created["token"]) as revoked:

        async def refused() -> bool:
            return (await revoked.get("/admin/policy")).status_code == 401

        await eventually(refused, timeout=5, every=0.2)
