"""The dashboard's static serving: what is served, with which headers, and that nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.gateway.entrypoints.app import _build, openapi_spec
from services.gateway.entrypoints.routes import dashboard

ASSETS = dashboard.ASSETS


@pytest.fixture(scope="module")
def client() -> TestClient:
    # No lifespan: the dashboard needs no downstream service (it is a client of /v1 like any other).
    return TestClient(_build(None), follow_redirects=False)


def _assert_security_headers(response) -> None:  # type: ignore[no-untyped-def]
    csp = response.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["img-src"] == ["'self'", "data:"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["form-action"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["require-trusted-types-for"] == ["'script'"]
    assert not any("unsafe" in v for values in directives.values() for v in values)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_root_and_bare_prefix_redirect_to_the_dashboard(client: TestClient) -> None:
    for path in ("/", "/ui"):
        response = client.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui/"
        _assert_security_headers(response)


def test_index_is_html_with_security_headers_and_no_inline_code(client: TestClient) -> None:
    response = client.get("/ui/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    _assert_security_headers(response)
    html = response.text
    # Every script is an external module of this origin; no inline script, style or handler.
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="module" src="/ui/js/main.js">']
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+\s*=", html)


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/ui/js/main.js", "text/javascript; charset=utf-8"),
        ("/ui/js/pages/queue.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_with_their_media_type(client: TestClient, path: str, media_type: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == (ASSETS / path.removeprefix("/ui/")).read_bytes()
    _assert_security_headers(response)
    assert response.headers["cache-control"] == "no-cache"


def test_a_known_etag_answers_304_without_a_body(client: TestClient) -> None:
    first = client.get("/ui/js/api.js")
    again = client.get("/ui/js/api.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    _assert_security_headers(again)
    changed = client.get("/ui/js/api.js", headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/ui/nope.js",
        "/ui/../config.py",
        "/ui/%2e%2e/config.py",
        "/ui/js/../../entrypoints/app.py",
        "/ui/..%2f..%2fentrypoints%2fapp.py",
        "/ui//etc/passwd",
    ],
)
def test_only_the_dashboards_own_files_are_served(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "import" not in response.text


def test_files_of_other_kinds_are_not_in_the_table(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "secret.py").write_text("x = 1")
    (tmp_path / ".hidden.js").write_text("1")
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("export {}")
    assert sorted(dashboard.load_assets(tmp_path)) == ["index.html", "js/a.js"]


def test_other_methods_are_refused_with_allow(client: TestClient) -> None:
    response = client.post("/ui/")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_the_dashboard_is_not_in_the_openapi_document() -> None:
    paths = openapi_spec()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


def test_the_scripts_never_write_html_from_strings() -> None:
    """Data reaches the page as text nodes and attributes only (the CSP's Trusted Types enforce it in the
    browser; this keeps the sources honest too)."""
    sinks = re.compile(
        r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\("
    )
    for script in ASSETS.rglob("*.js"):
        assert not sinks.search(script.read_text()), script


def test_the_assets_are_packaged() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["services.gateway"]
    for kind in ("html", "css", "js", "svg"):
        assert any(p.endswith(f".{kind}") for p in patterns), kind
