"""The use cases: ingest (train) and evaluate (score) a run, and load a run's model.

They work over the run log (``runlog.py``: which run is current, what each run wrote) and
its store; the maths is in ``ml/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_ml_flow.errors import (
    DatasetValidationError,
    InvalidRequestError,
    LocalMlFlowError,
    NoModelError,
    NotFoundError,
)
from local_ml_flow.events import EvaluateEvent, RunParameters, new_run_id
from local_ml_flow.ml import dataset, model
from local_ml_flow.ml.model import Regressor, array_predictor
from local_ml_flow.runlog import MODEL_KEY, X_TEST_KEY, Y_TEST_KEY, RunLog, run_key
from local_ml_flow.storage import sha256, utc_now


@dataclass(frozen=True)
class Limits:
    """Dataset size limits."""

    max_bytes: int = 200 * 1024 * 1024
    max_rows: int = 2_000_000


@dataclass(frozen=True)
class IngestRequest:
    """A training run to do: its id (None: a new one), parameters, and whether to promote it."""

    parameters: RunParameters
    run_id: str | None = None
    promote: bool = True  # False: the caller promotes once the whole run succeeded


def _record(runs: RunLog, run_id: str, stage: str, exc: LocalMlFlowError) -> None:
    details = exc.details if isinstance(exc, DatasetValidationError) else None
    runs.record_failure(run_id, stage, type(exc).__name__, exc.message, details)


# -- ingestion --------------------------------------------------------------------------


def ingest(request: IngestRequest, runs: RunLog, limits: Limits) -> dict[str, Any]:
    """Read the dataset, validate and clean it, split, train, store the run, promote it."""
    run_id = request.run_id or new_run_id()
    created_at = runs.create(run_id, request.parameters)
    try:
        manifest = _train(run_id, created_at, request.parameters, runs, limits)
        if request.promote:
            runs.promote(run_id, manifest)
    except LocalMlFlowError as exc:
        _record(runs, run_id, "ingestion", exc)
        raise
    except ValueError as exc:  # e.g. too few rows for the split
        error = InvalidRequestError(str(exc))
        _record(runs, run_id, "ingestion", error)
        raise error from None
    return {
        "run_id": run_id,
        "n_train": manifest["n_train"],
        "n_test": manifest["n_test"],
        "features": manifest["features"],
        "model_sha256": manifest["model_sha256"],
        "dataset_sha256": manifest["dataset_sha256"],
        **request.parameters.model_dump(),
        "train_r2": manifest["train_metrics"]["r2"],
        "promoted": request.promote,
    }


def _train(
    run_id: str, created_at: str, parameters: RunParameters, runs: RunLog, limits: Limits
) -> dict[str, Any]:
    """Train and store a run's artifacts; returns its manifest (written last)."""
    store = runs.store
    raw = store.get_dataset()
    dataset_sha = sha256(raw)
    clean = dataset.load_dataset(raw, max_bytes=limits.max_bytes, max_rows=limits.max_rows)
    x = dataset.features(clean, parameters.feature_set)
    parts = model.split(
        x,
        dataset.target(clean),
        test_size=parameters.test_size,
        random_state=parameters.random_state,
    )
    fitted = model.train(
        parameters.model, parts.x_train, parts.y_train, random_state=parameters.random_state
    )
    train_metrics = model.evaluate(fitted, parts.x_train, parts.y_train)

    data, models = store.data_bucket, store.models_bucket
    manifest = {
        "run_id": run_id,
        "status": "trained",
        "parameters": parameters.model_dump(),
        "features": list(x.columns),
        "dataset": {"bucket": data, "key": store.dataset_key, "sha256": dataset_sha},
        "dataset_sha256": dataset_sha,
        "x_test_sha256": store.put_joblib(data, run_key(run_id, X_TEST_KEY), parts.x_test),
        "y_test_sha256": store.put_joblib(data, run_key(run_id, Y_TEST_KEY), parts.y_test),
        "model_sha256": store.put_joblib(models, run_key(run_id, MODEL_KEY), fitted),
        "n_train": len(parts.x_train),
        "n_test": len(parts.x_test),
        "train_metrics": train_metrics.as_dict(),
        "created_at": created_at,
        "trained_at": utc_now(),
    }
    runs.write_manifest(manifest)
    return manifest


# -- models -------------------------------------------------------------------------------


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


def load_model(runs: RunLog, run_id: str | None = None) -> LoadedModel:
    """The model of a run (default: the latest), after checking its sha256."""
    if run_id is None:
        run_id = runs.latest_run_id("no trained model yet: run the pipeline (ingestion) first")
    info = runs.manifest(run_id)
    store = runs.store
    fitted = store.get_joblib(store.models_bucket, run_key(run_id, MODEL_KEY), info["model_sha256"])
    return LoadedModel(run_id, fitted, str(info["parameters"]["feature_set"]), info)


# -- inference --------------------------------------------------------------------------


def evaluate(request: EvaluateEvent, runs: RunLog) -> dict[str, Any]:
    """Score a run's model on its test split; store metrics, and score.txt if it is the latest."""
    run_id = request.run_id or runs.latest_run_id(
        "no trained model yet: run the ingestion function first"
    )
    try:
        return _score(run_id, runs)
    except LocalMlFlowError as exc:
        if not isinstance(exc, NotFoundError) or isinstance(exc, NoModelError):
            _record(runs, run_id, "inference", exc)
        raise


def _score(run_id: str, runs: RunLog) -> dict[str, Any]:
    loaded = load_model(runs, run_id)
    info, store = loaded.manifest, runs.store
    data = store.data_bucket
    x_test = store.get_joblib(data, run_key(run_id, X_TEST_KEY), info["x_test_sha256"])
    y_test = store.get_joblib(data, run_key(run_id, Y_TEST_KEY), info["y_test_sha256"])
    metrics = model.evaluate(loaded.model, x_test, y_test)
    result: dict[str, Any] = {
        "run_id": run_id,
        "r2": metrics.r2,
        "mae": metrics.mae,
        "rmse": metrics.rmse,
        "n_test": metrics.n,
        "score": metrics.score,
    }
    runs.write_metrics(run_id, result)
    runs.write_score_if_latest(run_id, metrics.score)
    return result
