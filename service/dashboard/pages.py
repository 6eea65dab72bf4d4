"""Serving the dashboard: the page at `/dashboard`, its assets under a content digest.

Assets live at `/dashboard/static/<digest>/...`, where the digest is a hash of every asset's
path and bytes, so they are cached for good (`immutable`) and a new release is a new URL; the
page itself is `no-cache`, so a browser always picks up the current digest. The page's
Content-Security-Policy allows scripts, styles and requests to this origin only (no inline
script or style), no framing, and no form submission at all: a sign-in form that somehow
submitted without its script could otherwise put the key in a URL.
"""

import hashlib
from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

PAGE_URL = "/dashboard"
STATIC = Path(str(files("service.dashboard") / "static"))
ASSET_CACHE = "public, max-age=31536000, immutable"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@cache
def asset_digest(root: Path = STATIC) -> str:
    """12 hex digits of sha256 over every asset's relative path and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@cache
def page_html(digest: str) -> str:
    """index.html with its asset URLs pointed at this digest (relative, so the dashboard also
    works behind a proxy that serves the API under a path prefix)."""
    return (STATIC / "index.html").read_text(encoding="utf-8").replace("{{assets}}", assets(digest))


def assets(digest: str) -> str:
    return f"dashboard/static/{digest}"


class _ImmutableAssets(StaticFiles):
    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = ASSET_CACHE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install_dashboard(app: FastAPI) -> None:
    digest = asset_digest()

    @app.get(PAGE_URL, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page_html(digest), headers=PAGE_HEADERS)

    @app.get(f"{PAGE_URL}/", include_in_schema=False)
    async def dashboard_slash() -> RedirectResponse:
        # Relative, so a path prefix in front of the API is kept.
        return RedirectResponse("../dashboard", status_code=308)

    app.mount(f"/{assets(digest)}", _ImmutableAssets(directory=STATIC), name="dashboard-assets")
