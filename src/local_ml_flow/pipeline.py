"""The service layer: ingest (train) and evaluate (score) runs over an ArtifactStore.

Keys follow DESIGN.md: every run writes under ``runs/<run_id>/`` once; the latest
pointer and the seed-compatible root keys move only when a step fully succeeded.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local_ml_flow.errors import (
    AlreadyExistsError,
    DatasetValidationError,
    InvalidRequestError,
    LocalMlFlowError,
    NoModelError,
    NotFoundError,
)
from local_ml_flow.ml import dataset, model
from local_ml_flow.ml.model import Regressor, array_predictor
from local_ml_flow.storage import (
    LATEST_KEY,
    MODEL_KEY,
    RUNS_PREFIX,
    SCORE_KEY,
    X_TEST_KEY,
    Y_TEST_KEY,
    ArtifactStore,
    run_key,
    sha256,
    utc_now,
)

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

# Serialises promotion (latest pointer + root keys) among runs of this process.
_PROMOTION_LOCK = threading.Lock()


@dataclass(frozen=True)
class Limits:
    """Dataset size limits."""

    max_bytes: int = 200 * 1024 * 1024
    max_rows: int = 2_000_000


@dataclass(frozen=True)
class IngestRequest:
    """Parameters of a training run (the ingestion event)."""

    run_id: str | None = None
    model: str = "linear"
    feature_set: str = "all"
    test_size: float = 0.2
    random_state: int = 42
    promote: bool = True  # False: the caller promotes once the whole run succeeded

    def parameters(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "feature_set": self.feature_set,
            "test_size": self.test_size,
            "random_state": self.random_state,
        }


@dataclass(frozen=True)
class EvaluateRequest:
    """Parameters of a scoring run (the inference event)."""

    run_id: str | None = None


def new_run_id() -> str:
    """Time-sortable and unique: ``20261126T054012123456Z-3f9a1c``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def _check_run_id(value: Any) -> str:
    if not isinstance(value, str) or not RUN_ID_RE.match(value) or ".." in value:
        raise InvalidRequestError(
            f"run_id {value!r} is invalid: use 1-100 letters, digits, '_', '-' or '.',"
            " starting with a letter or digit"
        )
    return value


def _reject_unknown(event: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(event) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"unknown event fields: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _as_event(event: Any) -> Mapping[str, Any]:
    if event is None:
        return {}
    if not isinstance(event, Mapping):
        raise InvalidRequestError(f"event must be a JSON object, got {type(event).__name__}")
    return event


def parse_ingest_event(event: Any, defaults: IngestRequest) -> IngestRequest:
    """Validate an ingestion event; absent fields take the defaults."""
    ev = _as_event(event)
    _reject_unknown(ev, {"run_id", "model", "feature_set", "test_size", "random_state", "promote"})
    run_id = _check_run_id(ev["run_id"]) if ev.get("run_id") is not None else None
    kind = ev.get("model", defaults.model)
    if kind not in model.MODEL_KINDS:
        raise InvalidRequestError(f"model {kind!r} is unknown; expected one of {model.MODEL_KINDS}")
    feature_set = ev.get("feature_set", defaults.feature_set)
    if feature_set not in dataset.FEATURE_SETS:
        raise InvalidRequestError(
            f"feature_set {feature_set!r} is unknown;"
            f" expected one of {sorted(dataset.FEATURE_SETS)}"
        )
    test_size = ev.get("test_size", defaults.test_size)
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, int | float)
        or not (0 < test_size < 1)
    ):
        raise InvalidRequestError(f"test_size must be a number with 0 < x < 1, got {test_size!r}")
    random_state = ev.get("random_state", defaults.random_state)
    if isinstance(random_state, bool) or not isinstance(random_state, int) or random_state < 0:
        raise InvalidRequestError(
            f"random_state must be a non-negative integer, got {random_state!r}"
        )
    promote = ev.get("promote", True)
    if not isinstance(promote, bool):
        raise InvalidRequestError(f"promote must be true or false, got {promote!r}")
    return IngestRequest(run_id, kind, feature_set, float(test_size), random_state, promote)


def parse_evaluate_event(event: Any) -> EvaluateRequest:
    ev = _as_event(event)
    _reject_unknown(ev, {"run_id"})
    run_id = _check_run_id(ev["run_id"]) if ev.get("run_id") is not None else None
    return EvaluateRequest(run_id)


# -- ingestion --------------------------------------------------------------------------


def ingest(request: IngestRequest, store: ArtifactStore, limits: Limits) -> dict[str, Any]:
    """Read the dataset, validate and clean it, split, train, store the run, promote it."""
    run_id = request.run_id or new_run_id()
    created_at = utc_now()
    try:
        store.put_json(
            store.data_bucket,
            run_key(run_id, "request.json"),
            {"run_id": run_id, "parameters": request.parameters(), "created_at": created_at},
            once=True,
        )
    except AlreadyExistsError:
        raise InvalidRequestError(
            f"run {run_id!r} already exists; runs are never rewritten"
        ) from None
    try:
        return _train(run_id, created_at, request, store, limits)
    except LocalMlFlowError as exc:
        _record(store, run_id, "ingestion", exc)
        raise
    except ValueError as exc:  # e.g. too few rows for the split
        error = InvalidRequestError(str(exc))
        _record(store, run_id, "ingestion", error)
        raise error from None


def _train(
    run_id: str, created_at: str, request: IngestRequest, store: ArtifactStore, limits: Limits
) -> dict[str, Any]:
    raw = store.get_dataset()
    dataset_sha = sha256(raw)
    clean = dataset.load_dataset(raw, max_bytes=limits.max_bytes, max_rows=limits.max_rows)
    x = dataset.features(clean, request.feature_set)
    parts = model.split(
        x, dataset.target(clean), test_size=request.test_size, random_state=request.random_state
    )
    fitted = model.train(
        request.model, parts.x_train, parts.y_train, random_state=request.random_state
    )
    train_metrics = model.evaluate(fitted, parts.x_train, parts.y_train)

    data, models = store.data_bucket, store.models_bucket
    x_sha = store.put_joblib(data, run_key(run_id, X_TEST_KEY), parts.x_test)
    y_sha = store.put_joblib(data, run_key(run_id, Y_TEST_KEY), parts.y_test)
    model_sha = store.put_joblib(models, run_key(run_id, MODEL_KEY), fitted)
    manifest = {
        "run_id": run_id,
        "status": "trained",
        "parameters": request.parameters(),
        "features": list(x.columns),
        "dataset": {"bucket": data, "key": store.dataset_key, "sha256": dataset_sha},
        "dataset_sha256": dataset_sha,
        "model_sha256": model_sha,
        "x_test_sha256": x_sha,
        "y_test_sha256": y_sha,
        "n_train": len(parts.x_train),
        "n_test": len(parts.x_test),
        "train_metrics": train_metrics.as_dict(),
        "created_at": created_at,
        "trained_at": utc_now(),
    }
    # The manifest is written last: a run without one never finished training.
    store.put_json(data, run_key(run_id, "manifest.json"), manifest)
    if request.promote:
        _promote(store, manifest)
    return {
        "run_id": run_id,
        "n_train": manifest["n_train"],
        "n_test": manifest["n_test"],
        "features": manifest["features"],
        "model_sha256": model_sha,
        "dataset_sha256": dataset_sha,
        **request.parameters(),
        "train_r2": train_metrics.r2,
        "promoted": request.promote,
    }


def promote(store: ArtifactStore, run_id: str) -> None:
    """Make a trained run the latest: root keys (and score.txt once it is scored), then
    the latest pointer. A caller running ingestion then inference promotes after both."""
    _promote(store, manifest(store, run_id))


def _promote(store: ArtifactStore, info: Mapping[str, Any]) -> None:
    """Copy the run's artifacts to the root keys, then move the latest pointer."""
    run_id = info["run_id"]
    data, models = store.data_bucket, store.models_bucket
    with _PROMOTION_LOCK:
        store.copy(models, run_key(run_id, MODEL_KEY), MODEL_KEY)
        store.copy(data, run_key(run_id, X_TEST_KEY), X_TEST_KEY)
        store.copy(data, run_key(run_id, Y_TEST_KEY), Y_TEST_KEY)
        try:
            scored = store.get_json(data, run_key(run_id, "metrics.json"))
        except NotFoundError:
            scored = None  # not scored yet: inference writes score.txt for the latest run
        if scored is not None:
            store.put_text(data, SCORE_KEY, str(scored["score"]))
        store.put_json(
            data,
            LATEST_KEY,
            {
                "run_id": run_id,
                "model_sha256": info["model_sha256"],
                "dataset_sha256": info["dataset_sha256"],
                "promoted_at": utc_now(),
            },
        )


def record_failure(
    store: ArtifactStore,
    run_id: str,
    stage: str,
    error_type: str,
    message: str,
    details: Any = None,
) -> None:
    """Write ``runs/<run_id>/error.json`` once; a failing store is left to the caller."""
    key = run_key(run_id, "error.json")
    # a failing store is left to the caller, which raises the original error
    with contextlib.suppress(LocalMlFlowError):
        store.put_json(
            store.data_bucket,
            key,
            {
                "run_id": run_id,
                "stage": stage,
                "error_type": error_type,
                "message": message,
                "details": details,
                "failed_at": utc_now(),
            },
            once=True,
        )


def _record(store: ArtifactStore, run_id: str, stage: str, exc: LocalMlFlowError) -> None:
    details = exc.details if isinstance(exc, DatasetValidationError) else None
    record_failure(store, run_id, stage, type(exc).__name__, exc.message, details)


# -- inference --------------------------------------------------------------------------


def latest(store: ArtifactStore) -> dict[str, Any] | None:
    """The latest pointer, or None before the first successful ingestion."""
    try:
        value: dict[str, Any] = store.get_json(store.data_bucket, LATEST_KEY)
    except NotFoundError as exc:
        if "bucket" in exc.message:
            raise
        return None
    return value


def manifest(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    try:
        value: dict[str, Any] = store.get_json(store.data_bucket, run_key(run_id, "manifest.json"))
    except NotFoundError:
        if store.exists(store.data_bucket, run_key(run_id, "request.json")):
            raise NoModelError(f"run {run_id!r} has no trained model") from None
        raise NotFoundError(f"run {run_id!r} does not exist") from None
    return value


@dataclass(frozen=True)
class LoadedModel:
    """A run's model, loaded after its sha256 was checked, with what it expects as input."""

    run_id: str
    model: Regressor
    feature_set: str
    manifest: dict[str, Any]

    def array_predictor(self) -> Regressor:
        """The model, predicting from arrays in ``dataset.feature_names(feature_set)`` order."""
        return array_predictor(self.model, dataset.feature_names(self.feature_set))


def load_model(store: ArtifactStore, run_id: str | None = None) -> LoadedModel:
    """The model of a run (default: the latest), after checking its sha256."""
    if run_id is None:
        pointer = latest(store)
        if pointer is None:
            raise NoModelError("no trained model yet: run the pipeline (ingestion) first")
        run_id = str(pointer["run_id"])
    info = manifest(store, run_id)
    fitted = store.get_joblib(store.models_bucket, run_key(run_id, MODEL_KEY), info["model_sha256"])
    return LoadedModel(run_id, fitted, str(info["parameters"]["feature_set"]), info)


def evaluate(request: EvaluateRequest, store: ArtifactStore) -> dict[str, Any]:
    """Score a run's model on its test split; store metrics, and score.txt if it is the latest."""
    run_id = request.run_id
    if run_id is None:
        pointer = latest(store)
        if pointer is None:
            raise NoModelError("no trained model yet: run the ingestion function first")
        run_id = str(pointer["run_id"])
    try:
        return _score(run_id, store)
    except LocalMlFlowError as exc:
        if not isinstance(exc, NotFoundError) or isinstance(exc, NoModelError):
            _record(store, run_id, "inference", exc)
        raise


def _score(run_id: str, store: ArtifactStore) -> dict[str, Any]:
    loaded = load_model(store, run_id)
    info, fitted, data = loaded.manifest, loaded.model, store.data_bucket
    x_test = store.get_joblib(data, run_key(run_id, X_TEST_KEY), info["x_test_sha256"])
    y_test = store.get_joblib(data, run_key(run_id, Y_TEST_KEY), info["y_test_sha256"])
    metrics = model.evaluate(fitted, x_test, y_test)
    result: dict[str, Any] = {
        "run_id": run_id,
        "r2": metrics.r2,
        "mae": metrics.mae,
        "rmse": metrics.rmse,
        "n_test": metrics.n,
        "score": metrics.score,
    }
    # run artifacts are written once: scoring a run again keeps its first metrics
    with contextlib.suppress(AlreadyExistsError):
        store.put_json(
            data, run_key(run_id, "metrics.json"), {**result, "evaluated_at": utc_now()}, once=True
        )
    with _PROMOTION_LOCK:
        pointer = latest(store)
        if pointer is not None and pointer["run_id"] == run_id:
            store.put_text(data, SCORE_KEY, metrics.score)
    return result


# -- run records --------------------------------------------------------------------------


def run_record(store: ArtifactStore, run_id: str, files: set[str] | None = None) -> dict[str, Any]:
    """What is known of a run, from its own files: parameters, status, metrics, error.

    ``files``: the names under the run's prefix, when the caller listed them already.
    """
    data = store.data_bucket
    try:
        request = store.get_json(data, run_key(run_id, "request.json"))
    except NotFoundError:
        raise NotFoundError(f"run {run_id!r} does not exist") from None
    record: dict[str, Any] = {
        "run_id": run_id,
        "status": "running",
        "parameters": request.get("parameters", {}),
        "metrics": None,
        "created_at": request.get("created_at"),
        "finished_at": None,
        "error": None,
    }
    if files is None:
        files = {o.key.rsplit("/", 1)[-1] for o in store.list_objects(data, run_key(run_id, ""))}
    info = (
        store.get_json(data, run_key(run_id, "manifest.json")) if "manifest.json" in files else {}
    )
    if "metrics.json" in files:
        scored = store.get_json(data, run_key(run_id, "metrics.json"))
        record["status"] = "succeeded"
        record["metrics"] = {
            "r2": scored["r2"],
            "mae": scored["mae"],
            "rmse": scored["rmse"],
            "n_train": info.get("n_train"),
            "n_test": scored["n_test"],
            "score": scored["score"],
        }
        record["finished_at"] = scored.get("evaluated_at")
    elif "error.json" in files:
        failure = store.get_json(data, run_key(run_id, "error.json"))
        record["status"] = "failed"
        record["error"] = {
            "stage": failure.get("stage"),
            "type": failure.get("error_type"),
            "message": failure.get("message"),
            "details": failure.get("details"),
        }
        record["finished_at"] = failure.get("failed_at")
    if info:
        record["model_sha256"] = info.get("model_sha256")
        record["dataset_sha256"] = info.get("dataset_sha256")
        record["features"] = info.get("features")
    return record


def list_runs(store: ArtifactStore, limit: int = 50) -> list[dict[str, Any]]:
    """Run records, newest first (by creation time).

    One listing of ``runs/`` finds every run, its files and when it was created; only the
    newest ``limit`` are read.
    """
    files: dict[str, set[str]] = {}
    created: dict[str, str] = {}
    for obj in store.list_objects(store.data_bucket, RUNS_PREFIX):
        run_id, _, name = obj.key[len(RUNS_PREFIX) :].partition("/")
        if not name:
            continue  # runs/latest.json
        files.setdefault(run_id, set()).add(name)
        if name == "request.json":
            created[run_id] = obj.last_modified
    newest = sorted(created, key=lambda r: (created[r], r), reverse=True)
    if len(newest) > limit:  # S3 times are coarse: keep every run as new as the last one kept
        cutoff = created[newest[limit - 1]]
        newest = [r for r in newest if created[r] >= cutoff]
    records = [run_record(store, run_id, files[run_id]) for run_id in newest]
    records.sort(key=lambda r: (r["created_at"] or "", r["run_id"]), reverse=True)
    return records[:limit]
