"""GET /: what this service is and where everything is."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from local_ml_flow import __version__
from local_ml_flow.api.deps import RuntimeDep
from local_ml_flow.api.schemas import Link, RootResponse

router = APIRouter(tags=["meta"])


@router.get(
    "/",
    response_model=RootResponse,
    responses={307: {"description": "a browser (Accept: text/html) is sent to the dashboard"}},
)
def read_root(request: Request, runtime: RuntimeDep) -> RootResponse | Response:
    """App name, version, mode and links to every endpoint; browsers go to /ui."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/ui", status_code=307)
    links = [
        Link(
            method=method.upper(),
            path=path,
            description=operation.get("description") or operation.get("summary", ""),
        )
        for path, operations in request.app.openapi().get("paths", {}).items()
        for method, operation in operations.items()
    ]
    return RootResponse(
        app="Local Machine Learning Flow",
        version=__version__,
        mode=runtime.mode.value,
        docs="/docs",
        endpoints=links,
    )
