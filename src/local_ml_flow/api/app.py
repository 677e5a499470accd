"""``create_app``: the FastAPI application over a wired Runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from local_ml_flow import __version__, bootstrap
from local_ml_flow.api import errors
from local_ml_flow.api.deps import ModelCache
from local_ml_flow.api.routes import api_router
from local_ml_flow.settings import Settings

DESCRIPTION = """
Drive the local-ml-flow pipeline: the **ingestion** function trains a regression model on
`housing.csv`, the **inference** function scores it. Start a run with `POST /pipeline/runs`,
read the score with `GET /result/local-ml-flow-data`, predict with `POST /predict`.
Every error is `{"error": {"type", "message", "details"?}}`.
"""


def create_app(
    runtime: bootstrap.Runtime | None = None, settings: Settings | None = None
) -> FastAPI:
    """The app; without a runtime it wires one (from settings) at startup and closes it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if runtime is None:
            owned = bootstrap.build(settings or Settings())
            app.state.runtime = owned
        app.state.model_cache = ModelCache(app.state.runtime.settings.model_refresh_s)
        try:
            yield
        finally:
            if owned is not None:
                owned.close()

    app = FastAPI(
        title="local-ml-flow",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    if runtime is not None:
        app.state.runtime = runtime
    errors.install(app)
    app.include_router(api_router)

    @app.middleware("http")
    async def limit_upload(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Refuse an oversized upload (413) before reading it."""
        length = request.headers.get("content-length")
        limit = app.state.runtime.settings.max_upload_bytes + 64 * 1024  # multipart framing
        too_large = length is not None and length.isdigit() and int(length) > limit
        if request.method in {"PUT", "POST"} and too_large:
            return errors.error_response(
                413,
                "PayloadTooLargeError",
                f"request body of {length} bytes is above the limit of {limit} bytes",
            )
        return await call_next(request)

    return app
