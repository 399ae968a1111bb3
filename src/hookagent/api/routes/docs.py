"""``/docs`` and ``/redoc`` with their assets served by us: they work with no internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google),
so on an offline or locked-down host they render blank. The ``fastapi-offline`` package
ships those files; we serve them under ``/static/docs`` and point the pages at them. ReDoc's
bundle itself still fetched its sidebar logo from ``cdn.redoc.ly``: we serve the bundle with
that address replaced by an empty image, which the component then leaves out.
"""

from __future__ import annotations

import functools
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/static/docs"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
# An image that fails to load: ReDoc's logo component then renders nothing.
NO_LOGO = b'"data:,"'
# Our copy of the bundle, outside the static mount (whose files are served as shipped).
REDOC_JS = "/static/redoc/redoc.standalone.js"

router = APIRouter(include_in_schema=False)


def _asset(request: Request, name: str) -> str:
    # root_path keeps the links right behind a proxy that mounts us under a prefix.
    return f"{request.scope.get('root_path', '')}{STATIC_URL}/{name}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI, from our own static files."""
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=_asset(request, "swagger-ui-bundle.js"),
        swagger_css_url=_asset(request, "swagger-ui.css"),
        swagger_favicon_url=_asset(request, "favicon.png"),
        # The default validator badge is an image from validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(REDOC_JS)
async def redoc_js() -> Response:
    """ReDoc's bundle without its one outside address."""
    return Response(
        offline_redoc(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc, from our own static files and without Google Fonts."""
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{request.scope.get('root_path', '')}{REDOC_JS}",
        redoc_favicon_url=_asset(request, "favicon.png"),
        with_google_fonts=False,
    )


@functools.cache
def offline_redoc() -> bytes:
    """ReDoc's bundle without its one outside address (tests/ui checks no other appeared)."""
    return (ASSETS / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO, NO_LOGO)


def install_docs(app: FastAPI) -> None:
    """Add the two pages and the static mount their assets come from."""
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    app.include_router(router)
