"""The browser assets the app serves itself (vendored, pinned): no page loads another host."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"

SWAGGER_UI = "swagger-ui-dist-5.35.0"
REDOC = "redoc-2.5.2"
UPLOT = "uplot-1.6.32"


def vendor(package: str, name: str) -> str:
    """URL of a vendored file."""
    return f"{STATIC_URL}/vendor/{package}/{name}"


SWAGGER_JS = vendor(SWAGGER_UI, "swagger-ui-bundle.js")
SWAGGER_CSS = vendor(SWAGGER_UI, "swagger-ui.css")
FAVICON = vendor(SWAGGER_UI, "favicon-32x32.png")
REDOC_JS = vendor(REDOC, "redoc.standalone.js")
UPLOT_JS = vendor(UPLOT, "uPlot.iife.min.js")
UPLOT_CSS = vendor(UPLOT, "uPlot.min.css")
UI_JS = f"{STATIC_URL}/ui/app.js"
UI_CSS = f"{STATIC_URL}/ui/app.css"
UI_DATASETS_JS = f"{STATIC_URL}/ui/datasets.js"
