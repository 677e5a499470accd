"""The run log: the ``runs/`` key layout, the latest pointer (the commit point), run records.

A run writes its own files once under ``runs/<run_id>/`` (request, manifest, metrics or
error); it becomes current when the latest pointer names it. The seed-compatible root keys
(``model.joblib``, ``x_test.joblib``, ``y_test.joblib``, ``score.txt``) are copies written
before the pointer moves.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from local_ml_flow.errors import (
    AlreadyExistsError,
    InvalidRequestError,
    KeyNotFoundError,
    LocalMlFlowError,
    NoModelError,
    RunNotFoundError,
)
from local_ml_flow.events import RunParameters
from local_ml_flow.storage import ArtifactStore, StoredObject, utc_now

# Seed-compatible root keys (the original project's users look for them here), which are
# also the names of a run's own artifacts under its prefix.
MODEL_KEY = "model.joblib"
X_TEST_KEY = "x_test.joblib"
Y_TEST_KEY = "y_test.joblib"
SCORE_KEY = "score.txt"
RUNS_PREFIX = "runs/"
LATEST_KEY = f"{RUNS_PREFIX}latest.json"
# A run's own documents.
REQUEST = "request.json"
MANIFEST = "manifest.json"
METRICS = "metrics.json"
ERROR = "error.json"

# Serialises promotion (latest pointer + root keys) among runs of this process.
_PROMOTION_LOCK = threading.Lock()


def run_key(run_id: str, name: str) -> str:
    """Key of a run-scoped file: ``runs/<run_id>/<name>``."""
    return f"{RUNS_PREFIX}{run_id}/{name}"


class RunLog:
    """The runs of one store: what each run wrote, and which run is current."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    @property
    def _data(self) -> str:
        return self.store.data_bucket

    # -- a run's own documents ----------------------------------------------------------
    def create(self, run_id: str, parameters: RunParameters) -> str:
        """Record a requested run (once); returns its creation time."""
        created_at = utc_now()
        request = {
            "run_id": run_id,
            "parameters": parameters.model_dump(),
            "created_at": created_at,
        }
        try:
            self.store.put_json(self._data, run_key(run_id, REQUEST), request, once=True)
        except AlreadyExistsError:
            raise InvalidRequestError(
                f"run {run_id!r} already exists; runs are never rewritten"
            ) from None
        return created_at

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """The manifest is a run's last training write: a run without one never finished."""
        self.store.put_json(self._data, run_key(str(manifest["run_id"]), MANIFEST), manifest)

    def manifest(self, run_id: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = self.store.get_json(self._data, run_key(run_id, MANIFEST))
        except KeyNotFoundError:
            if self.store.exists(self._data, run_key(run_id, REQUEST)):
                raise NoModelError(f"run {run_id!r} has no trained model") from None
            raise RunNotFoundError(f"run {run_id!r} does not exist") from None
        return value

    def write_metrics(self, run_id: str, metrics: Mapping[str, Any]) -> None:
        """Keep a run's first metrics: scoring it again does not rewrite them."""
        with contextlib.suppress(AlreadyExistsError):
            document = {**metrics, "evaluated_at": utc_now()}
            self.store.put_json(self._data, run_key(run_id, METRICS), document, once=True)

    def record_failure(
        self, run_id: str, stage: str, error_type: str, message: str, details: Any = None
    ) -> None:
        """Write ``error.json`` once; a failing store is left to the caller, which raises the
        original error."""
        document = {
            "run_id": run_id,
            "stage": stage,
            "error_type": error_type,
            "message": message,
            "details": details,
            "failed_at": utc_now(),
        }
        with contextlib.suppress(LocalMlFlowError):
            self.store.put_json(self._data, run_key(run_id, ERROR), document, once=True)

    # -- the current run ----------------------------------------------------------------
    def latest(self) -> dict[str, Any] | None:
        """The latest pointer, or None before the first promoted run."""
        try:
            value: dict[str, Any] = self.store.get_json(self._data, LATEST_KEY)
        except KeyNotFoundError:
            return None
        return value

    def latest_run_id(self, missing: str) -> str:
        """The current run's id; NoModelError with ``missing`` when there is none."""
        pointer = self.latest()
        if pointer is None:
            raise NoModelError(missing)
        return str(pointer["run_id"])

    def promote(self, run_id: str, manifest: Mapping[str, Any] | None = None) -> None:
        """Make a trained run current: root keys (and score.txt once it is scored), then the
        latest pointer."""
        info = manifest if manifest is not None else self.manifest(run_id)
        store, data, models = self.store, self._data, self.store.models_bucket
        with _PROMOTION_LOCK:
            store.copy(models, run_key(run_id, MODEL_KEY), MODEL_KEY)
            store.copy(data, run_key(run_id, X_TEST_KEY), X_TEST_KEY)
            store.copy(data, run_key(run_id, Y_TEST_KEY), Y_TEST_KEY)
            try:
                scored = store.get_json(data, run_key(run_id, METRICS))
            except KeyNotFoundError:
                scored = None  # not scored yet: inference writes score.txt for the latest run
            if scored is not None:
                store.put_text(data, SCORE_KEY, str(scored["score"]))
            pointer = {
                "run_id": run_id,
                "model_sha256": info["model_sha256"],
                "dataset_sha256": info["dataset_sha256"],
                "promoted_at": utc_now(),
            }
            store.put_json(data, LATEST_KEY, pointer)

    def write_score_if_latest(self, run_id: str, score: str) -> None:
        """``score.txt`` follows the latest run only."""
        with _PROMOTION_LOCK:
            pointer = self.latest()
            if pointer is not None and pointer["run_id"] == run_id:
                self.store.put_text(self._data, SCORE_KEY, score)

    # -- records ------------------------------------------------------------------------
    def record(self, run_id: str, files: set[str] | None = None) -> dict[str, Any]:
        """What is known of a run, from its own files: parameters, status, metrics, error.

        ``files``: the names under the run's prefix, when the caller listed them already.
        """
        try:
            request = self.store.get_json(self._data, run_key(run_id, REQUEST))
        except KeyNotFoundError:
            raise RunNotFoundError(f"run {run_id!r} does not exist") from None
        if files is None:
            listed = self.store.list_objects(self._data, run_key(run_id, ""))
            files = {o.key.rsplit("/", 1)[-1] for o in listed}
        record: dict[str, Any] = {
            "run_id": run_id,
            "status": "running",
            "parameters": request.get("parameters", {}),
            "metrics": None,
            "created_at": request.get("created_at"),
            "finished_at": None,
            "error": None,
        }
        info = self._optional(run_id, MANIFEST, files)
        if METRICS in files:
            record.update(self._succeeded(run_id, info))
        elif ERROR in files:
            record.update(self._failed(run_id))
        if info:
            record["model_sha256"] = info.get("model_sha256")
            record["dataset_sha256"] = info.get("dataset_sha256")
            record["features"] = info.get("features")
        return record

    def _optional(self, run_id: str, name: str, files: set[str]) -> dict[str, Any]:
        if name not in files:
            return {}
        value: dict[str, Any] = self.store.get_json(self._data, run_key(run_id, name))
        return value

    def _succeeded(self, run_id: str, info: Mapping[str, Any]) -> dict[str, Any]:
        scored = self.store.get_json(self._data, run_key(run_id, METRICS))
        metrics = {name: scored[name] for name in ("r2", "mae", "rmse", "n_test", "score")}
        return {
            "status": "succeeded",
            "metrics": {**metrics, "n_train": info.get("n_train")},
            "finished_at": scored.get("evaluated_at"),
        }

    def _failed(self, run_id: str) -> dict[str, Any]:
        failure = self.store.get_json(self._data, run_key(run_id, ERROR))
        return {
            "status": "failed",
            "error": {
                "stage": failure.get("stage"),
                "type": failure.get("error_type"),
                "message": failure.get("message"),
                "details": failure.get("details"),
            },
            "finished_at": failure.get("failed_at"),
        }

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """Run records, newest first (by creation time).

        One listing of ``runs/`` finds every run, its files and when it was created; only the
        newest ``limit`` are read.
        """
        files, created = _index(self.store.list_objects(self._data, RUNS_PREFIX))
        newest = sorted(created, key=lambda r: (created[r], r), reverse=True)
        if len(newest) > limit:  # S3 times are coarse: keep every run as new as the last one kept
            cutoff = created[newest[limit - 1]]
            newest = [r for r in newest if created[r] >= cutoff]
        records = [self.record(run_id, files[run_id]) for run_id in newest]
        records.sort(key=lambda r: (r["created_at"] or "", r["run_id"]), reverse=True)
        return records[:limit]


def _index(objects: list[StoredObject]) -> tuple[dict[str, set[str]], dict[str, str]]:
    """From a listing of ``runs/``: each run's file names, and when each run was requested."""
    files: dict[str, set[str]] = {}
    created: dict[str, str] = {}
    for obj in objects:
        run_id, _, name = obj.key[len(RUNS_PREFIX) :].partition("/")
        if not name:
            continue  # runs/latest.json
        files.setdefault(run_id, set()).add(name)
        if name == REQUEST:
            created[run_id] = obj.last_modified
    return files, created
