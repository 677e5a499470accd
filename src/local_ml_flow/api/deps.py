"""FastAPI dependencies: the runtime wired at startup, its parts, and the in-memory caches."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from local_ml_flow.api.caches import Caches
from local_ml_flow.bootstrap import Runtime
from local_ml_flow.invoke import Invoker
from local_ml_flow.runlog import RunLog
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore


# Dependencies are async: FastAPI would run a sync one in the thread pool, a hop per request.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_store(runtime: Annotated[Runtime, Depends(get_runtime)]) -> ArtifactStore:
    return runtime.store


async def get_invoker(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Invoker:
    return runtime.invoker


async def get_runs(runtime: Annotated[Runtime, Depends(get_runtime)]) -> RunLog:
    return runtime.runs


async def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


async def get_caches(request: Request) -> Caches:
    caches: Caches = request.app.state.caches
    return caches


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
InvokerDep = Annotated[Invoker, Depends(get_invoker)]
RunsDep = Annotated[RunLog, Depends(get_runs)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CachesDep = Annotated[Caches, Depends(get_caches)]
