"""The web dashboard: static files under ``/ui/`` (``/`` redirects there), outside the OpenAPI document.

The dashboard is a client of the public API like any other: its pages hold no data, its scripts read
``/v1/...`` with the API key the user pasted (kept in the tab's ``sessionStorage``, sent as
``Authorization: Bearer``), so these routes need no authentication and there is no cookie to forge.

The files are read once, at import, from ``services/gateway/dashboard/``; only those files are served
(a request names a key of that table, never a path on disk, so nothing outside it can be reached).
Every answer here carries a strict Content-Security-Policy: scripts and styles from this origin only
(no inline script or style), connections to this origin only, no framing, no forms, no base URL, and
Trusted Types required, so that an ``innerHTML`` with a string fails in the browser instead of running.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

ASSETS = Path(__file__).resolve().parents[2] / "dashboard"
PREFIX = "/ui/"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets(root: Path = ASSETS) -> dict[str, Asset]:
    """Every servable file below ``root`` by its URL path relative to ``/ui/`` (``index.html``,
    ``js/api.js``); files of other kinds (and dot files) are left out."""
    table: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        media_type = _MEDIA_TYPES.get(path.suffix)
        if media_type is None:
            continue
        body = path.read_bytes()
        table[relative.as_posix()] = Asset(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    return table


_ASSETS = load_assets()

router = APIRouter(include_in_schema=False)


def _answer(request: Request, asset: Asset) -> Response:
    # Revalidated on every load (a new gateway version shows at once), but a 304 costs no body.
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in (request.headers.get("if-none-match") or ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse(PREFIX, status_code=307, headers=SECURITY_HEADERS)


@router.get("/ui")
async def ui_without_slash() -> RedirectResponse:
    return RedirectResponse(PREFIX, status_code=307, headers=SECURITY_HEADERS)


@router.get(PREFIX)
async def index(request: Request) -> Response:
    return _answer(request, _ASSETS["index.html"])


@router.get(PREFIX + "{asset_path:path}")
async def asset(asset_path: str, request: Request) -> Response:
    found = _ASSETS.get(asset_path)
    if found is None:
        raise HTTPException(status_code=404, headers=SECURITY_HEADERS)
    return _answer(request, found)
