"""`/docs` (Swagger UI) and `/redoc` from assets installed with the package, not a CDN.

FastAPI's own pages load Swagger UI and ReDoc from jsDelivr, so on a machine without internet
(the embedded default needs none) they were blank. The `fastapi-offline` distribution ships
those bundles (swagger-ui-dist 5, redoc 2); they are served from its package folder under
`/docs-assets`, and the pages are FastAPI's own HTML pointed at them. A browser test checks
that both render the operations with every request off the server refused
(tests/browser/test_docs_offline.py).
"""

from functools import cache
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS = files("fastapi_offline") / "static"
REDOC_JS = "redoc.standalone.js"
# ReDoc's footer loads its vendor's logo from a CDN (and hides it when that fails): pointed at
# an empty data URL it fails at once, so the page makes no request off this server at all.
REDOC_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,")


@cache
def _redoc_script() -> bytes:
    return (ASSETS / REDOC_JS).read_bytes().replace(*REDOC_LOGO)


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add the two pages and the assets they load (create the app with `docs_url=None` and
    `redoc_url=None`, so FastAPI's CDN pages are not registered too)."""

    @app.get(f"{ASSETS_URL}/{REDOC_JS}", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(_redoc_script(), media_type="text/javascript")

    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS)), name="docs-assets")
    redirect_url = f"{docs_url}/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
