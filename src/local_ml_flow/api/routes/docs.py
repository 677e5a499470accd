"""/docs and /redoc from the app's own vendored assets (FastAPI's defaults load a CDN)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

from local_ml_flow.api import assets

router = APIRouter(include_in_schema=False)

OAUTH2_REDIRECT = "/docs/oauth2-redirect"


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI; no validator badge (it would call validator.swagger.io)."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=assets.SWAGGER_JS,
        swagger_css_url=assets.SWAGGER_CSS,
        swagger_favicon_url=assets.FAVICON,
        oauth2_redirect_url=OAUTH2_REDIRECT,
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
    )


@router.get(OAUTH2_REDIRECT)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc, without Google Fonts."""
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=assets.REDOC_JS,
        redoc_favicon_url=assets.FAVICON,
        with_google_fonts=False,
    )
