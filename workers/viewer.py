"""The viewer page at ``/``, and the API's documentation pages, offline.

The page is plain HTML, CSS and ES modules shipped in the package
(``workers/static/viewer``): no build step, no CDN. Swagger UI
(``/docs``) and ReDoc (``/redoc``) load their scripts from this service
too, from the assets the ``fastapi-offline`` package ships (MIT, the
upstream Swagger UI and ReDoc bundles), instead of FastAPI's default
CDN URLs, so both pages work where the service has no internet.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS", "VIEWER_ASSETS", "add_viewer"]

#: The page's own files.
VIEWER_ASSETS = Path(__file__).parent / "static" / "viewer"
#: Swagger UI's and ReDoc's bundles, as fastapi-offline ships them.
DOCS_ASSETS = Path(str(files("fastapi_offline") / "static"))

_VIEWER_URL = "/viewer"
_DOCS_URL = "/docs-assets"
_REDOC_JS = "redoc.standalone.js"
#: ReDoc's sidebar shows a logo it loads from its vendor's CDN (and hides
#: when that fails); served with this empty image instead, the page makes
#: no request outside the service.
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_EMPTY_SVG = (
    b"data:image/svg+xml,%3Csvg%20xmlns=%27http://www.w3.org/2000/svg%27/%3E"
)


@functools.cache
def _redoc_bundle() -> bytes:
    """Return ReDoc's bundle with its CDN logo replaced (read once)."""
    return (
        (DOCS_ASSETS / _REDOC_JS).read_bytes().replace(_REDOC_LOGO, _EMPTY_SVG)
    )


def add_viewer(app: FastAPI) -> None:
    """Serve the viewer page, its assets and the offline docs pages.

    The app must be built with ``docs_url=None, redoc_url=None``: these
    routes replace FastAPI's CDN-backed pages.
    """

    async def redoc_bundle() -> Response:
        return Response(_redoc_bundle(), media_type="text/javascript")

    # Before the mount of the other assets, which would serve it as is.
    app.add_api_route(
        f"{_DOCS_URL}/{_REDOC_JS}",
        redoc_bundle,
        methods=["GET"],
        include_in_schema=False,
    )
    app.mount(_VIEWER_URL, StaticFiles(directory=VIEWER_ASSETS), name="viewer")
    app.mount(_DOCS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs")

    async def viewer_page() -> FileResponse:
        return FileResponse(
            VIEWER_ASSETS / "index.html",
            media_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    async def swagger_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{_DOCS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{_DOCS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{_DOCS_URL}/favicon.png",
            # No badge that asks the public validator about the document.
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def redoc_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{_DOCS_URL}/{_REDOC_JS}",
            redoc_favicon_url=f"{root}{_DOCS_URL}/favicon.png",
            with_google_fonts=False,
        )

    for path, endpoint in (
        ("/", viewer_page),
        ("/docs", swagger_page),
        ("/redoc", redoc_page),
    ):
        app.add_api_route(
            path, endpoint, methods=["GET"], include_in_schema=False
        )
