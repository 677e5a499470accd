"""FastAPI dependencies: the runtime wired at startup, and the in-memory model cache."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, Request

from local_ml_flow import pipeline
from local_ml_flow.bootstrap import Runtime
from local_ml_flow.errors import NoModelError
from local_ml_flow.invoke import Invoker
from local_ml_flow.pipeline import LoadedModel
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore


class ModelCache:
    """The latest good model, kept in memory; reloaded only when the latest run changes.

    The latest pointer is re-read at most every ``refresh_s`` seconds (and at once after
    this process finished a run), so a hot /predict does not hit S3 on every request.
    """

    def __init__(self, refresh_s: float) -> None:
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._checked_at = float("-inf")
        self.loads = 0

    def invalidate(self) -> None:
        with self._lock:
            self._checked_at = float("-inf")

    def get(self, store: ArtifactStore) -> LoadedModel:
        now = time.monotonic()
        with self._lock:
            if self._loaded is not None and now - self._checked_at < self.refresh_s:
                return self._loaded
            pointer = pipeline.latest(store)
            if pointer is None:
                raise NoModelError("no trained model yet: POST /pipeline/runs first")
            run_id = str(pointer["run_id"])
            if self._loaded is None or self._loaded.run_id != run_id:
                self._loaded = pipeline.load_model(store, run_id)
                self.loads += 1
            self._checked_at = now
            return self._loaded


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_store(runtime: Annotated[Runtime, Depends(get_runtime)]) -> ArtifactStore:
    return runtime.store


def get_invoker(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Invoker:
    return runtime.invoker


def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def get_model_cache(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.model_cache
    return cache


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
InvokerDep = Annotated[Invoker, Depends(get_invoker)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]
