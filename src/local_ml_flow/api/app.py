"""``create_app``: the FastAPI application over a wired Runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from local_ml_flow import __version__, bootstrap
from local_ml_flow.api import access_log, assets, errors, limits, methods, responses
from local_ml_flow.api.background import BackgroundRuns
from local_ml_flow.api.caches import Caches, DatasetCaches
from local_ml_flow.api.dataset_pages import DatasetPages
from local_ml_flow.api.routes import ROUTERS
from local_ml_flow.api.schemas import PredictRequest
from local_ml_flow.settings import Settings

DESCRIPTION = """
Drive the local-ml-flow pipeline: the **ingestion** function trains a model on a dataset, the
**inference** function scores it. Bring your own CSV with `PUT /datasets/{name}` (regression
or classification), train with `POST /datasets/{name}/runs`, predict with
`POST /datasets/{name}/predict`. The built-in housing dataset keeps the original endpoints:
start a run with `POST /pipeline/runs`, read the score with `GET /result/local-ml-flow-data`,
predict with `POST /predict`.
Every error is `{"error": {"type", "message", "details"?}}`. The dashboard is at [/ui](/ui).
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
        runtime_ = app.state.runtime
        app.state.caches = Caches(runtime_.runs, runtime_.settings.model_refresh_s)
        app.state.dataset_caches = DatasetCaches(
            app.state.caches, runtime_.settings.model_refresh_s
        )
        app.state.dataset_pages = DatasetPages(runtime_.store)
        app.state.background_runs = BackgroundRuns()
        runtime_.runs.index.warm()  # the run index read meanwhile: the first listing is quick
        try:
            yield
        finally:
            app.state.background_runs.close()
            if owned is not None:
                owned.close()

    app = FastAPI(
        title="local-ml-flow",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py from vendored assets (no CDN)
        redoc_url=None,
    )
    if runtime is not None:
        app.state.runtime = runtime
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount(assets.STATIC_URL, StaticFiles(directory=assets.STATIC_DIR), name="static")

    methods.install(app, ROUTERS)  # inside the guard: HEAD and OPTIONS pass its Host check first
    limits.install(app)
    access_log.install(app)  # outermost: it sees every answer, the guard's refusals included
    _document_models(app, PredictRequest)
    return app


def _document_models(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put models that routes validate themselves into the OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[model.__name__] = model_schema
            _validation_errors_as_ours(schema)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_errors_as_ours(schema: dict[str, Any]) -> None:
    """FastAPI documents its own 422 body (HTTPValidationError) on routes with parameters;
    ours is the one error shape, with examples (``responses.errors``)."""
    ours = responses.errors(422)[422]
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            documented = operation.get("responses", {}).get("422")
            if documented is None or "HTTPValidationError" not in str(documented):
                continue
            operation["responses"]["422"] = {
                "description": ours["description"],
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorResponse"},
                        **ours["content"]["application/json"],
                    }
                },
            }
