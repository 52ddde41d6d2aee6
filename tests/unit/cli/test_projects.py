"""`gpufleet projects`: list, create, members (with changes), against the fake gateway."""

from __future__ import annotations

import json

import httpx

PROJECT = {
    "id": "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
    "name": "Vision",
    "slug": "vision",
    "description": "",
    "created_by_user_id": None,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "archived_at": None,
}
USER = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
MEMBER = {
    "project_id": PROJECT["id"],
    "user_id": USER,
    "email": "a@x.example",
    "name": None,
    "role": "viewer",
}


def test_list_and_create(gateway, cli, capsys) -> None:  # type: ignore[no-untyped-def]
    gateway.on("GET", "/v1/projects", {"projects": [PROJECT]})
    assert cli("projects", "list", "--archived") == 0
    out = capsys.readouterr().out
    assert "vision" in out and PROJECT["id"] in out
    assert gateway.sent("GET", "/v1/projects")[0].url.params["include_archived"] == "true"
    gateway.on("POST", "/v1/projects", httpx.Response(201, json=PROJECT))
    assert cli("projects", "create", "Vision", "--slug", "vision", "--json") == 0
    assert json.loads(capsys.readouterr().out)["slug"] == "vision"
    assert json.loads(gateway.sent("POST", "/v1/projects")[0].content) == {"name": "Vision", "slug": "vision"}


def test_members_set_remove_and_a_bad_change(gateway, cli, capsys) -> None:  # type: ignore[no-untyped-def]
    base = f"/v1/projects/{PROJECT['id']}/members"
    gateway.on("PUT", f"{base}/{USER}", {**MEMBER, "role": "contributor"})
    gateway.on("DELETE", f"{base}/other", httpx.Response(204))
    gateway.on("GET", base, {"members": [{**MEMBER, "role": "contributor"}]})
    assert cli("projects", "members", PROJECT["id"], "--set", f"{USER}=contributor", "--remove", "other") == 0
    assert json.loads(gateway.sent("PUT", f"{base}/{USER}")[0].content) == {"role": "contributor"}
    assert gateway.sent("DELETE", f"{base}/other") and "contributor" in capsys.readouterr().out
    assert cli("projects", "members", PROJECT["id"], "--set", f"{USER}=admin") == 64  # usage
    assert not gateway.sent("PUT", f"{base}/{USER}")[1:]
