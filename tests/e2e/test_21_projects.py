"""Projects on the running stack, through REST (docs/projects.md): an owner creates a project, adds one
member as contributor and one as viewer, the contributor makes a project-bound key whose principal names
the project, the viewer cannot, another organization's key gets 404 on the project and its members, and
an archived project refuses a bound key's creation (422 project-archived) while staying readable."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import client

pytestmark = pytest.mark.e2e


def _problem(r: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = dict(r.json())
    if slug is not None:
        assert body["type"].endswith("/" + slug), body
    return body


async def _member(stack, owner: httpx.AsyncClient, role: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = await owner.post(
        "/invites", json={"email": f"{role}-{uuid.uuid4().hex[:8]}@example.com", "role": role}
    )
    assert r.status_code == 201, r.text
    async with client(stack, r.json()["token"]) as anon:
        accepted = await anon.post("/invites/accept", json={"name": role.title()})
    assert accepted.status_code == 201, accepted.text
    return dict(accepted.json())


async def test_projects_members_bound_keys_and_isolation(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    slug = "vision-" + uuid.uuid4().hex[:8]
    async with client(stack, orgs["a"]) as owner, client(stack, orgs["b"]) as other:
        r = await owner.post("/projects", json={"name": "Vision", "slug": slug, "description": "cameras"})
        assert r.status_code == 201, r.text
        project = r.json()
        assert (project["slug"], project["archived_at"]) == (slug, None)
        _problem(await owner.post("/projects", json={"name": "Again", "slug": slug}), 409)
        _problem(
            await owner.post("/projects", json={"name": "Bad", "slug": "Not A Slug"}), 422, "validation-error"
        )
        listed = (await owner.get("/projects")).json()["projects"]
        assert project["id"] in [p["id"] for p in listed]

        contributor = await _member(stack, owner, "member")
        viewer = await _member(stack, owner, "member")
        for who, role in ((contributor, "contributor"), (viewer, "viewer")):
            r = await owner.put(
                f"/projects/{project['id']}/members/{who['member']['user_id']}", json={"role": role}
            )
            assert r.status_code == 200, r.text
            assert (r.json()["role"], r.json()["email"]) == (role, who["member"]["email"])
        members = (await owner.get(f"/projects/{project['id']}/members")).json()["members"]
        assert sorted(m["role"] for m in members) == ["contributor", "viewer"]
        one = await owner.get(f"/projects/{project['id']}/members/{viewer['member']['user_id']}")
        assert one.status_code == 200 and one.json()["role"] == "viewer"

        # The contributor binds a key to the project; its principal names it.
        async with client(stack, contributor["api_key"]["secret"]) as c:
            me = (await c.get("/me")).json()["principal"]
            assert me["project_roles"] == [{"project_id": project["id"], "role": "contributor"}]
            assert me["project_id"] is None
            r = await c.post("/api-keys", json={"name": "ci", "project_id": project["id"]})
            assert r.status_code == 201, r.text
            bound = r.json()
            assert bound["project_id"] == project["id"]
            _problem(await c.post("/projects", json={"name": "Mine"}), 403)  # members create no projects
        async with client(stack, bound["secret"]) as b:
            principal = (await b.get("/me")).json()["principal"]
            assert (principal["project_id"], principal["user_id"]) == (
                project["id"],
                contributor["member"]["user_id"],
            )
            assert [p["id"] for p in (await b.get("/projects")).json()["projects"]] == [project["id"]]
        # The viewer may read the project but not bind a key to it.
        async with client(stack, viewer["api_key"]["secret"]) as v:
            assert (await v.get(f"/projects/{project['id']}")).status_code == 200
            _problem(await v.post("/api-keys", json={"name": "v", "project_id": project["id"]}), 403)
            _problem(
                await v.put(
                    f"/projects/{project['id']}/members/{viewer['member']['user_id']}", json={"role": "owner"}
                ),
                403,
            )
        keys = {k["id"]: k for k in (await owner.get("/api-keys")).json()["api_keys"]}
        assert keys[bound["id"]]["project_id"] == project["id"]

        # Another organization: its key sees the project and its members as absent, like an unknown id.
        for path in (f"/projects/{project['id']}", f"/projects/{project['id']}/members"):
            absent = _problem(await other.get(path), 404, "not-found")
            unknown = _problem(await other.get(path.replace(project["id"], str(uuid.uuid4()))), 404)
            assert absent["detail"] == unknown["detail"] and "Vision" not in str(absent)
        _problem(
            await other.put(
                f"/projects/{project['id']}/members/{contributor['member']['user_id']}",
                json={"role": "owner"},
            ),
            404,
        )
        _problem(await other.post("/api-keys", json={"name": "x", "project_id": project["id"]}), 404)
        _problem(await other.delete(f"/projects/{project['id']}"), 404)
        assert project["id"] not in [
            p["id"]
            for p in (await other.get("/projects", params={"include_archived": "true"})).json()["projects"]
        ]

        # Archive: a bound key can no longer be created; the project stays readable.
        r = await owner.delete(f"/projects/{project['id']}")
        assert r.status_code == 200 and r.json()["archived_at"], r.text
        _problem(
            await owner.post("/api-keys", json={"name": "late", "project_id": project["id"]}),
            422,
            "project-archived",
        )
        async with client(stack, contributor["api_key"]["secret"]) as c:
            _problem(
                await c.post("/api-keys", json={"name": "late", "project_id": project["id"]}),
                422,
                "project-archived",
            )
        assert (await owner.get(f"/projects/{project['id']}")).json()["archived_at"]
        assert project["id"] not in [p["id"] for p in (await owner.get("/projects")).json()["projects"]]
        archived = (await owner.get("/projects", params={"include_archived": "true"})).json()["projects"]
        assert project["id"] in [p["id"] for p in archived]
