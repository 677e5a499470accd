"""The use cases: ingest (train) and evaluate (score) a run, and load a run's model.

They work over the run log (``runlog.py``: which run is current, what each run wrote) and
its store; the maths is in ``ml/``.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from local_ml_flow import __version__, datasets
from local_ml_flow.errors import (
    DatasetValidationError,
    IntegrityError,
    InvalidRequestError,
    LocalMlFlowError,
    ModelVersionError,
    NoModelError,
    NonFiniteMetricsError,
    NotFoundError,
)
from local_ml_flow.events import EvaluateEvent, RunParameters, new_run_id
from local_ml_flow.ml import dataset, model
from local_ml_flow.ml.model import Regressor, array_predictor
from local_ml_flow.runlog import (
    MODEL_FILE,
    MODEL_KEY,
    X_TEST_FILE,
    X_TEST_KEY,
    Y_TEST_FILE,
    Y_TEST_KEY,
    Manifest,
    Metrics,
    Predictions,
    RunLog,
    Scores,
    run_key,
)
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
    except LocalMlFlowError as exc:
        _record(runs, run_id, "ingestion", exc)
        raise
    except ValueError as exc:  # e.g. too few rows for the split
        error = InvalidRequestError(str(exc))
        _record(runs, run_id, "ingestion", error)
        raise error from None
    if request.promote:
        runs.promote(run_id, manifest)
    return {
        "run_id": run_id,
        "n_train": manifest.n_train,
        "n_test": manifest.n_test,
        "features": manifest.features,
        "model_sha256": manifest.model_sha256,
        "dataset_sha256": manifest.dataset_sha256,
        **request.parameters.model_dump(),
        "train_r2": manifest.train_metrics.r2,
        "promoted": request.promote,
    }


def _train(
    run_id: str, created_at: str, parameters: RunParameters, runs: RunLog, limits: Limits
) -> Manifest:
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
    train_metrics = _finite(model.evaluate(fitted, parts.x_train, parts.y_train), "training")
    test_metrics = _finite(model.evaluate(fitted, parts.x_test, parts.y_test), "test")
    data, models = store.data_bucket, store.models_bucket
    x_sha = store.put_array(data, run_key(run_id, X_TEST_FILE), parts.x_test.to_numpy())
    y_sha = store.put_array(data, run_key(run_id, Y_TEST_FILE), parts.y_test.to_numpy())
    model_sha = store.put_model(models, run_key(run_id, MODEL_FILE), fitted)
    # the original project's pickles, for users' scripts (never loaded here)
    store.put_joblib(data, run_key(run_id, X_TEST_KEY), parts.x_test)
    store.put_joblib(data, run_key(run_id, Y_TEST_KEY), parts.y_test)
    store.put_joblib(models, run_key(run_id, MODEL_KEY), fitted)
    manifest = Manifest(
        run_id=run_id,
        parameters=parameters,
        features=list(x.columns),
        dataset_sha256=dataset_sha,
        model_sha256=model_sha,
        x_test_sha256=x_sha,
        y_test_sha256=y_sha,
        n_train=len(parts.x_train),
        n_test=len(parts.x_test),
        train_metrics=Scores(**train_metrics.as_dict()),
        test_metrics=Scores(**test_metrics.as_dict()),
        environment=environment(),
        created_at=created_at,
        trained_at=utc_now(),
    )
    datasets.archive(store, raw, dataset_sha)  # every dataset a run used is kept
    runs.write_manifest(manifest)
    return manifest


def _finite(metrics: model.Metrics, what: str) -> model.Metrics:
    if not metrics.finite:
        raise NonFiniteMetricsError(
            f"the model's {what} metrics are not finite (R² {metrics.r2}, MAE {metrics.mae}):"
            " some values are too large for the arithmetic; check the dataset"
        )
    return metrics


def environment() -> dict[str, str]:
    """Versions that decide whether a stored model can be read back and gives the same
    predictions."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "local-ml-flow": __version__}
    for package in ("numpy", "pandas", "scikit-learn", "skops"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


# -- models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A run's model, loaded after its sha256 was checked, with what it expects as input."""

    run_id: str
    model: Regressor
    feature_set: str
    manifest: Manifest

    def array_predictor(self) -> Regressor:
        """The model, predicting from arrays in ``dataset.feature_names(feature_set)`` order."""
        return array_predictor(self.model, dataset.feature_names(self.feature_set))


def _check_version(info: Manifest) -> None:
    """A model made by another scikit-learn minor version may predict differently."""
    import sklearn

    made = info.environment.get("scikit-learn", "unknown")
    if made.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        raise ModelVersionError(
            f"run {info.run_id!r} was trained with scikit-learn {made}; this is"
            f" {sklearn.__version__}: train a new run (or install scikit-learn {made})"
        )


def load_model(runs: RunLog, run_id: str | None = None) -> LoadedModel:
    """The model of a run (default: the latest), after checking its sha256; only the types
    its kind trusts are created."""
    if run_id is None:
        run_id = runs.latest_run_id("no trained model yet: run the pipeline (ingestion) first")
    info = runs.manifest(run_id)
    _check_version(info)
    store = runs.store
    trusted = model.MODELS[info.parameters.model].trusted
    key = run_key(run_id, MODEL_FILE)
    fitted = store.get_model(store.models_bucket, key, info.model_sha256, trusted)
    if not callable(getattr(fitted, "predict", None)):
        raise IntegrityError(f"s3://{store.models_bucket}/{key} is not a model")
    return LoadedModel(run_id, fitted, info.parameters.feature_set, info)


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
    x_test = store.get_array(data, run_key(run_id, X_TEST_FILE), info.x_test_sha256)
    y_test = store.get_array(data, run_key(run_id, Y_TEST_FILE), info.y_test_sha256)
    if x_test.ndim != 2 or x_test.shape != (len(y_test), len(info.features)):
        raise IntegrityError(f"run {run_id!r}: the stored test split does not fit its features")
    frame = pd.DataFrame(x_test, columns=info.features)
    metrics = _finite(model.evaluate(loaded.model, frame, pd.Series(y_test)), "test")
    scored = Metrics(
        run_id=run_id,
        r2=metrics.r2,
        mae=metrics.mae,
        rmse=metrics.rmse,
        n_test=metrics.n,
        score=metrics.score,
        evaluated_at=utc_now(),
    )
    with np.errstate(all="ignore"):
        y_pred = loaded.model.predict(frame)
    runs.write_predictions(
        Predictions(
            run_id=run_id,
            y_true=[float(v) for v in y_test],
            y_pred=[float(v) for v in y_pred],
            evaluated_at=scored.evaluated_at,
        )
    )
    runs.write_metrics(scored)
    runs.write_score_if_latest(run_id, metrics.score)
    return scored.model_dump(exclude={"evaluated_at"})
