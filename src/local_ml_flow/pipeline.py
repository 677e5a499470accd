"""The use cases: ingest (train) and evaluate (score) a run, and load a run's model.

They work over the run log (``runlog.py``: which run is current, what each run wrote) and
its store; the maths is in ``ml/``.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import numpy as np
import pandas as pd

from local_ml_flow import __version__, datasets, registry
from local_ml_flow.errors import (
    CorruptStateError,
    DatasetTooLargeError,
    DatasetValidationError,
    IntegrityError,
    InvalidRequestError,
    KeyNotFoundError,
    LocalMlFlowError,
    ModelVersionError,
    NoModelError,
    NonFiniteMetricsError,
    NotFoundError,
    PromotionRefusedError,
)
from local_ml_flow.events import (
    HOUSING,
    EvaluateEvent,
    Promotion,
    RunParameters,
    TabularOptions,
    TabularParameters,
    new_run_id,
)
from local_ml_flow.ml import dataset, model, tabular
from local_ml_flow.ml.documents import ClassScores, DatasetSchema, Encoding
from local_ml_flow.ml.kinds import CLASSIFICATION, DEFAULT_MODEL, model_spec
from local_ml_flow.ml.model import Regressor, array_predictor
from local_ml_flow.promotions import Actor
from local_ml_flow.runlog import (
    MODEL_FILE,
    MODEL_KEY,
    TEST_SPLIT_FILE,
    X_TEST_FILE,
    X_TEST_KEY,
    Y_TEST_FILE,
    Y_TEST_KEY,
    Decision,
    Manifest,
    Metrics,
    Pointer,
    Predictions,
    RunLog,
    Scores,
    Seen,
)
from local_ml_flow.storage import (
    array_from_bytes,
    background,
    gather,
    model_from_bytes,
    model_to_bytes,
    sha256,
    split_from_bytes,
    split_to_bytes,
    utc_now,
    verified,
)


@dataclass(frozen=True)
class Limits:
    """Dataset size limits."""

    max_bytes: int = 200 * 1024 * 1024
    max_rows: int = 2_000_000


@dataclass(frozen=True)
class IngestRequest:
    """A training run to do: its id (None: a new one), parameters, and the promotion policy
    applied once it is trained (None: the caller promotes once the whole run succeeded)."""

    parameters: RunParameters | TabularParameters
    run_id: str | None = None
    policy: Promotion | None = "better"
    # a registered dataset's document, as read to choose the parameters (None: housing)
    document: registry.DatasetDocument | None = None


def tabular_parameters(
    options: TabularOptions, document: registry.DatasetDocument, defaults: RunParameters
) -> TabularParameters:
    """The parameters of a run on a registered dataset: the options over the defaults (the
    task's default model), checked against the dataset (its task's models, its features)."""
    schema = document.schema
    kind = options.model or DEFAULT_MODEL[schema.task]
    try:
        model_spec(schema.task, kind)
    except ValueError as exc:
        raise InvalidRequestError(f"dataset {document.name!r}: {exc}") from None
    if options.features is not None:
        known = {c.name: c for c in schema.columns}
        problems = []
        for name in options.features:
            column = known.get(name)
            if column is None:
                problems.append(f"{name[:80]!r} is not a column")
            elif not column.feature:
                problems.append(f"{name!r} cannot be a feature ({column.reason})")
        if len(set(options.features)) != len(options.features):
            problems.append("a column is named twice")
        if problems:
            raise InvalidRequestError(
                f"features of dataset {document.name!r}: {'; '.join(problems)}"
                f" (its features: {', '.join(schema.features)})"
            )
    chosen = TabularParameters(
        model=kind,
        test_size=options.test_size if options.test_size is not None else defaults.test_size,
        random_state=(
            options.random_state if options.random_state is not None else defaults.random_state
        ),
        features=options.features,
    )
    problem = _size_problem(document, chosen)
    if problem:
        raise InvalidRequestError(f"dataset {document.name!r}: {problem}")
    return chosen


def _size_problem(document: registry.DatasetDocument, parameters: TabularParameters) -> str | None:
    """Why a run cannot be done on the dataset's current version, known before anything is
    recorded: a split too small for its classes, or too many model inputs."""
    schema, n = document.schema, document.rows
    n_classes = len(schema.labels or []) if schema.task == CLASSIFICATION else 0
    try:
        model.held_out(n, parameters.test_size, n_classes)
    except ValueError as exc:
        return str(exc)
    width = tabular.input_width(schema, parameters.features or schema.features)
    if width > tabular.MAX_INPUTS or width * n > tabular.MAX_CELLS:
        return (
            f"the features make up to {width:,} model inputs (a category: one per level) for"
            f" {n:,} rows, above the limits of {tabular.MAX_INPUTS:,} inputs and"
            f" {tabular.MAX_CELLS:,} rows x inputs: choose fewer features"
        )
    return None


def _promote_trained(
    request: IngestRequest, runs: RunLog, manifest: Manifest, seen: Seen | None
) -> dict[str, Any]:
    """Promote a run just trained under the request's policy (unless the caller promotes);
    ``promoted``, and why not, for the function's answer."""
    if request.policy is None:
        return {"promoted": False}
    run_id = manifest.run_id
    decision = runs.promote(
        run_id,
        manifest,
        policy=request.policy,
        serves=partial(_serves, runs),
        just_trained=True,
        seen=seen,
        by="lambda",  # the ingestion function promotes only when invoked directly
    )
    if not decision.promoted:  # kept: scored now, a finished run that can be promoted later
        try:
            _score(run_id, runs, decision.pointer)
        except LocalMlFlowError as exc:
            _record(runs, run_id, "inference", exc)
            raise
    return _said(decision)


def _said(decision: Decision) -> dict[str, Any]:
    """A promotion's outcome in a run's answer: ``promoted``, and ``not_promoted`` (why)."""
    if decision.promoted:
        return {"promoted": True}
    return {"promoted": False, "not_promoted": decision.reason}


def _record(runs: RunLog, run_id: str, stage: str, exc: LocalMlFlowError) -> None:
    details = exc.details if isinstance(exc, DatasetValidationError) else None
    runs.record_failure(run_id, stage, type(exc).__name__, exc.message, details)


# -- ingestion --------------------------------------------------------------------------


def ingest(request: IngestRequest, runs: RunLog, limits: Limits) -> dict[str, Any]:
    """Read the dataset, validate and clean it, split, train, store the run, promote it."""
    run_id = request.run_id or new_run_id()
    if request.document is not None:
        return _ingest_tabular(request, request.document, run_id, runs, limits)
    # The dataset is read while the run's first write is made; it is used only if that
    # write succeeded (a run id is never reused).
    reading = background(partial(runs.store.get_dataset, limits.max_bytes))
    try:
        created_at = runs.create(run_id, request.parameters)
    except BaseException:
        reading.exception()  # wait for it: nothing is left in flight
        raise
    # Only _train holds the dataset's bytes from here: they are let go as soon as they were
    # parsed and archived (a large dataset is not kept through training).
    pending = [reading]
    del reading
    assert isinstance(request.parameters, RunParameters)  # housing's (checked by the caller)
    try:
        manifest = _train(
            run_id, created_at, request.parameters, runs, limits, lambda: pending.pop().result()
        )
        # The manifest is the run's last training write; a promotion to come reads the
        # pointer it compare-and-swaps meanwhile (one round trip less).
        _, seen = gather(
            lambda: runs.write_manifest(manifest),
            runs.peek_pointer if request.policy else lambda: None,
        )
    except LocalMlFlowError as exc:
        _record(runs, run_id, "ingestion", exc)
        raise
    except ValueError as exc:  # e.g. too few rows for the split
        error = InvalidRequestError(str(exc))
        _record(runs, run_id, "ingestion", error)
        raise error from None
    promoted = _promote_trained(request, runs, manifest, seen)
    return {
        "run_id": run_id,
        "n_train": manifest.n_train,
        "n_test": manifest.n_test,
        "features": manifest.features,
        "model_sha256": manifest.model_sha256,
        "dataset_sha256": manifest.dataset_sha256,
        **request.parameters.model_dump(),
        "train_r2": manifest.train_metrics.r2,
        **promoted,
    }


def _train(
    run_id: str,
    created_at: str,
    parameters: RunParameters,
    runs: RunLog,
    limits: Limits,
    read_dataset: Callable[[], bytes],
) -> Manifest:
    """Train and store a run's artifacts; returns its manifest (for the caller to write:
    the run's last training write).

    Each large intermediate (the dataset's bytes, the cleaned frame, the whole feature
    matrix) is let go once the next step has what it needs, so a large dataset's peak
    memory is the training's, not the sum of every stage."""
    store = runs.store
    raw = read_dataset()
    dataset_sha = sha256(raw)
    clean = dataset.load_dataset(raw, max_bytes=limits.max_bytes, max_rows=limits.max_rows)
    # Every dataset a run used is kept: archived while the run trains (write-once).
    archiving = background(partial(datasets.archive, store, raw, dataset_sha))
    del raw
    cleaned = [clean]
    del clean  # fit_housing lets it go once it has the features
    try:
        fit = fit_housing(cleaned.pop(), parameters)
        manifest = _stored(runs, run_id, created_at, parameters, fit, dataset_sha)
    finally:
        archiving.exception()  # wait for it: nothing is left in flight
    archiving.result()  # the archive failed: so does the run
    return manifest


def _stored(
    runs: RunLog,
    run_id: str,
    created_at: str,
    parameters: RunParameters | TabularParameters,
    fit: Fitted,
    dataset_sha256: str,
    **dataset_fields: Any,
) -> Manifest:
    """Store a trained run's artifacts; its manifest (``dataset_fields``: a registered
    dataset's name, task, schema, encoding, labels)."""
    return Manifest(
        run_id=run_id,
        parameters=parameters,
        features=fit.features,
        dataset_sha256=dataset_sha256,
        **_store_artifacts(runs, run_id, fit.model, fit.trusted, fit.x_test, fit.y_test),
        n_train=fit.n_train,
        n_test=fit.n_test,
        train_metrics=fit.train_metrics,
        test_metrics=fit.test_metrics,
        environment=environment(),
        created_at=created_at,
        trained_at=utc_now(),
        **dataset_fields,
    )


@dataclass(frozen=True)
class Fitted:
    """A model trained on a dataset's training split, with its test split and scores (what a
    run stores, and what a reproduction compares)."""

    model: Any
    trusted: Sequence[str]
    x_test: pd.DataFrame | np.ndarray
    y_test: Any  # pd.Series or np.ndarray of float64
    features: list[str]
    train_metrics: Scores
    test_metrics: Scores
    n_train: int
    n_test: int
    encoding: Encoding | None = None


def fit_housing(clean: pd.DataFrame, parameters: RunParameters) -> Fitted:
    """Split the cleaned housing rows and train on them (deterministic for the parameters'
    ``random_state``)."""
    x, y = dataset.features(clean, parameters.feature_set), dataset.target(clean)
    del clean
    names = list(x.columns)
    parts = model.split(x, y, test_size=parameters.test_size, random_state=parameters.random_state)
    del x, y
    fitted = model.train(
        parameters.model, parts.x_train, parts.y_train, random_state=parameters.random_state
    )
    train_metrics = _finite(model.evaluate(fitted, parts.x_train, parts.y_train), "training")
    test_metrics = _finite(model.evaluate(fitted, parts.x_test, parts.y_test), "test")
    return Fitted(
        model=fitted,
        trusted=model_spec("regression", parameters.model).trusted,
        x_test=parts.x_test,
        y_test=parts.y_test,
        features=names,
        train_metrics=Scores(**train_metrics.as_dict()),
        test_metrics=Scores(**test_metrics.as_dict()),
        n_train=len(parts.x_train),
        n_test=len(parts.x_test),
    )


def _store_artifacts(
    runs: RunLog,
    run_id: str,
    fitted: Any,
    trusted: Sequence[str],
    x_test: pd.DataFrame | np.ndarray,
    y_test: pd.Series[float] | np.ndarray,
) -> dict[str, str]:
    """The run's model and test split (one file), all written at once; their sha256s, as the
    manifest's fields. Housing's runs also get the original project's pickles (for users'
    scripts; never loaded here)."""
    store = runs.store
    data, models = store.data_bucket, store.models_bucket
    key = runs.key
    blob = _servable_bytes(fitted, trusted, x_test)
    split, x_sha, y_sha = split_to_bytes(np.asarray(x_test), np.asarray(y_test))
    writes: list[Callable[[], Any]] = [
        lambda: store.put_bytes(data, key(run_id, TEST_SPLIT_FILE), split, "application/zip"),
        lambda: store.put_bytes(models, key(run_id, MODEL_FILE), blob, "application/zip"),
    ]
    if runs.roots:
        writes += [
            lambda: store.put_joblib(data, key(run_id, X_TEST_KEY), x_test),
            lambda: store.put_joblib(data, key(run_id, Y_TEST_KEY), y_test),
            lambda: store.put_joblib(models, key(run_id, MODEL_KEY), fitted),
        ]
    split_sha, model_sha, *_ = gather(*writes)
    return {
        "model_sha256": model_sha,
        "x_test_sha256": x_sha,
        "y_test_sha256": y_sha,
        "test_split_sha256": split_sha,
    }


def _servable_bytes(
    fitted: Any, trusted: Sequence[str], x_test: pd.DataFrame | np.ndarray
) -> bytes:
    """The model's bytes, once they are known to load (with only the trusted types, as
    serving loads them) into a model predicting the first test row as the trained one does:
    a run is never stored, nor promoted, with a model that cannot be served."""
    blob = model_to_bytes(fitted)
    loaded = model_from_bytes(blob, "the model just trained", trusted)
    sample = x_test.iloc[:1] if isinstance(x_test, pd.DataFrame) else x_test[:1]
    if not np.array_equal(model.predict(fitted, sample), model.predict(loaded, sample)):
        raise IntegrityError("the model does not predict the same once stored and loaded")
    return blob


def _finite(metrics: model.Metrics, what: str) -> model.Metrics:
    if not metrics.finite:
        raise NonFiniteMetricsError(
            f"the model's {what} metrics are not finite (R² {metrics.r2}, MAE {metrics.mae}):"
            " some values are too large for the arithmetic; check the dataset"
        )
    return metrics


# -- a registered dataset's ingestion --------------------------------------------------------


def _ingest_tabular(
    request: IngestRequest,
    document: registry.DatasetDocument,
    run_id: str,
    runs: RunLog,
    limits: Limits,
) -> dict[str, Any]:
    """Train a run on a registered dataset's current version (the one ``document`` names)."""
    parameters = request.parameters
    assert isinstance(parameters, TabularParameters)  # a registered dataset's (the caller's)
    created_at = runs.create(run_id, parameters)
    try:
        manifest = _train_tabular(run_id, created_at, parameters, document, runs, limits)
        _, seen = gather(
            lambda: runs.write_manifest(manifest),
            runs.peek_pointer if request.policy else lambda: None,
        )
    except LocalMlFlowError as exc:
        _record(runs, run_id, "ingestion", exc)
        raise
    except ValueError as exc:  # scikit-learn refusing the data (e.g. a split too small)
        error = InvalidRequestError(str(exc))
        _record(runs, run_id, "ingestion", error)
        raise error from None
    promoted = _promote_trained(request, runs, manifest, seen)
    train = manifest.train_metrics
    return {
        "run_id": run_id,
        "dataset": document.name,
        "task": manifest.task,
        "n_train": manifest.n_train,
        "n_test": manifest.n_test,
        "features": manifest.features,
        "model_sha256": manifest.model_sha256,
        "dataset_sha256": manifest.dataset_sha256,
        **parameters.model_dump(exclude={"features"}),
        "columns": [c.name for c in manifest.encoding.columns] if manifest.encoding else [],
        **({"train_r2": train.r2} if manifest.task != CLASSIFICATION else {}),
        **({"train_accuracy": train.accuracy} if manifest.task == CLASSIFICATION else {}),
        **promoted,
    }


def _split_tabular(
    schema: DatasetSchema, y: np.ndarray, parameters: TabularParameters
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test rows (stratified for classification); InvalidRequestError with the
    reason when the split cannot give a score that means something."""
    classification = schema.task == CLASSIFICATION
    try:
        n_classes = len(schema.labels or []) if classification else 0
        n_test = model.held_out(len(y), parameters.test_size, n_classes)
        if not classification:
            train, test = model.split_rows(len(y), n_test, parameters.random_state)
            model.degenerate(y, train, test)
            return train, test
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    return tabular.stratified_rows(y, parameters.test_size, parameters.random_state)


def _train_tabular(
    run_id: str,
    created_at: str,
    parameters: TabularParameters,
    document: registry.DatasetDocument,
    runs: RunLog,
    limits: Limits,
) -> Manifest:
    """Train a registered dataset's run and store its artifacts; returns its manifest."""
    schema = document.schema
    fit = fit_tabular(  # the bytes are let go once parsed
        registry.read_version(runs.store, document.name, document.sha256, limits.max_bytes),
        schema,
        parameters,
        limits,
    )
    return _stored(
        runs,
        run_id,
        created_at,
        parameters,
        fit,
        document.sha256,
        dataset=document.name,
        task=schema.task,
        schema_sha256=document.schema_sha256,
        dataset_schema=schema,
        encoding=fit.encoding,
        labels=schema.labels,
    )


def fit_tabular(
    raw: bytes, schema: DatasetSchema, parameters: TabularParameters, limits: Limits
) -> Fitted:
    """Validate a registered dataset's bytes against its schema, split, encode and train
    (deterministic for the parameters' ``random_state``)."""
    frame, header = tabular.parse(raw, max_bytes=limits.max_bytes, max_rows=limits.max_rows)
    problems = tabular.validate(frame, header, schema, dataset.RecordLines(raw))
    problems += tabular.trainable_problems(frame, schema)
    del raw
    if problems:
        raise DatasetValidationError(problems)
    classification = schema.task == CLASSIFICATION
    if classification:
        y = tabular.target_codes(frame[schema.target], schema)
    else:
        y = tabular.target_values(frame[schema.target])
    train_rows, test_rows = _split_tabular(schema, y, parameters)
    train_frame = frame.iloc[train_rows]
    encoding = tabular.fit_encoding(train_frame, schema, parameters.features or schema.features)
    x_train = tabular.encode(train_frame, encoding)
    x_test = tabular.encode(frame.iloc[test_rows], encoding)
    del frame, train_frame
    y_train, y_test = y[train_rows], y[test_rows]
    spec = model_spec(schema.task, parameters.model)
    fitted = spec.factory(parameters.random_state)
    with np.errstate(all="ignore"):
        fitted.fit(x_train, y_train)
    n_classes = len(schema.labels or [])
    if classification:
        train_scores = _class_scores(fitted, x_train, y_train, n_classes, "training")
        test_scores = _class_scores(fitted, x_test, y_test, n_classes, "test")
    else:
        train_scores = _regression_scores(fitted, x_train, y_train, "training")
        test_scores = _regression_scores(fitted, x_test, y_test, "test")
    return Fitted(
        model=fitted,
        trusted=spec.trusted,
        x_test=x_test,
        y_test=np.asarray(y_test, dtype="float64"),
        features=encoding.names(),
        train_metrics=train_scores,
        test_metrics=test_scores,
        n_train=len(train_rows),
        n_test=len(test_rows),
        encoding=encoding,
    )


def _regression_scores(fitted: Any, x: np.ndarray, y: np.ndarray, what: str) -> Scores:
    metrics = _finite(model.scores(np.asarray(y, dtype="float64"), model.predict(fitted, x)), what)
    return Scores(**metrics.as_dict())


def _class_scores(
    fitted: Any, x: np.ndarray, codes: np.ndarray, n_classes: int, what: str
) -> Scores:
    """Classification scores of a fitted model on rows (NonFiniteMetricsError if not finite)."""
    scored = _checked(
        tabular.class_scores(np.asarray(codes, dtype=np.int64), _proba(fitted, x), n_classes), what
    )
    return Scores(**scored.model_dump())


def _checked(scored: ClassScores, what: str) -> ClassScores:
    """``scored`` if its figures are finite; NonFiniteMetricsError otherwise."""
    if not all(math.isfinite(v) for v in (scored.accuracy, scored.log_loss)):
        raise NonFiniteMetricsError(
            f"the model's {what} metrics are not finite: some values are too large for the"
            " arithmetic; check the dataset"
        )
    return scored


def _proba(fitted: Any, x: np.ndarray) -> np.ndarray:
    """Class probabilities, one column per class of the dataset (the model saw them all:
    the split is stratified)."""
    with np.errstate(all="ignore"):
        proba: np.ndarray = np.asarray(fitted.predict_proba(x), dtype="float64")
    return proba


def environment() -> dict[str, str]:
    """Versions that decide whether a stored model can be read back and gives the same
    predictions (looked up once per process: they cannot change under it)."""
    return dict(_environment())


@cache
def _environment() -> dict[str, str]:
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


def _fetch(runs: RunLog, run_id: str, *keys: tuple[str, str]) -> tuple[Manifest, list[bytes]]:
    """A run's manifest and the bytes of ``(bucket, key)`` objects, read at once (the bytes
    are checked against the manifest's hashes before anything is loaded from them). A
    missing or corrupt manifest is the error reported first."""
    store = runs.store

    def reader(bucket: str, key: str) -> Callable[[], bytes]:
        return lambda: store.get_bytes(bucket, key)

    info, *blobs = gather(lambda: runs.manifest(run_id), *(reader(b, k) for b, k in keys))
    return info, blobs


@dataclass(frozen=True)
class _Split:
    """A run's test split as fetched: each array's .npy bytes, checked against the manifest's
    hash when it is loaded."""

    info: Manifest
    x: bytes
    y: bytes | None
    where: tuple[str, str]  # where x and y are stored, for messages

    def x_test(self) -> np.ndarray:
        return _array(self.x, self.where[0], self.info.x_test_sha256)

    def y_test(self) -> np.ndarray:
        if self.y is None:
            raise IntegrityError(f"{self.where[1]} was not read")
        return _array(self.y, self.where[1], self.info.y_test_sha256)


def _array(data: bytes, where: str, expected_sha256: str) -> np.ndarray:
    return array_from_bytes(verified(data, where, expected_sha256), where)


def _fetch_run(runs: RunLog, run_id: str, *, with_y: bool) -> tuple[Manifest, bytes, _Split]:
    """A run's manifest, model bytes and test split, read at once. A split in one file
    (``test_split.npz``) is read with the manifest; a run that stored it as ``x_test.npy``
    and ``y_test.npy`` (before test_split.npz) has them read once its manifest says so."""
    store = runs.store
    data = store.data_bucket
    split_key = runs.key(run_id, TEST_SPLIT_FILE)

    def split() -> bytes | None:
        try:
            return store.get_bytes(data, split_key)
        except KeyNotFoundError:
            return None

    info, model_blob, split_blob = gather(
        lambda: runs.manifest(run_id),
        lambda: store.get_bytes(store.models_bucket, runs.key(run_id, MODEL_FILE)),
        split,
    )
    if info.test_split_sha256 is not None:
        where = f"s3://{data}/{split_key}"
        if split_blob is None:
            raise KeyNotFoundError(f"{where} does not exist")
        x, y = split_from_bytes(verified(split_blob, where, info.test_split_sha256), where)
        return info, model_blob, _Split(info, x, y, (f"{where} (x.npy)", f"{where} (y.npy)"))
    keys = [runs.key(run_id, X_TEST_FILE), runs.key(run_id, Y_TEST_FILE)]
    found = gather(*(partial(store.get_bytes, data, key) for key in keys[: 2 if with_y else 1]))
    wheres = (f"s3://{data}/{keys[0]}", f"s3://{data}/{keys[1]}")
    return info, model_blob, _Split(info, found[0], found[1] if with_y else None, wheres)


def _model(runs: RunLog, info: Manifest, blob: bytes) -> LoadedModel:
    """The run's model from its fetched bytes: version, sha256, trusted types checked."""
    _check_version(info)
    store = runs.store
    where = f"s3://{store.models_bucket}/{runs.key(info.run_id, MODEL_FILE)}"
    try:
        trusted = model_spec(info.task, info.parameters.model).trusted
    except (KeyError, ValueError):
        raise IntegrityError(f"run {info.run_id!r} names an unknown model kind") from None
    fitted = model_from_bytes(verified(blob, where, info.model_sha256), where, trusted)
    if not callable(getattr(fitted, "predict", None)):
        raise IntegrityError(f"{where} is not a model")
    if info.task == CLASSIFICATION and not callable(getattr(fitted, "predict_proba", None)):
        raise IntegrityError(f"{where} is not a classifier")
    feature_set = info.parameters.feature_set if isinstance(info.parameters, RunParameters) else ""
    return LoadedModel(info.run_id, fitted, feature_set, info)


def load_model(runs: RunLog, run_id: str | None = None) -> LoadedModel:
    """The model of a run (default: the latest), after checking its sha256; only the types
    its kind trusts are created."""
    if run_id is None:
        run_id = runs.latest_run_id("no trained model yet: run the pipeline (ingestion) first")
    key = (runs.store.models_bucket, runs.key(run_id, MODEL_FILE))
    info, (blob,) = _fetch(runs, run_id, key)
    return _model(runs, info, blob)


def servable(runs: RunLog, run_id: str) -> Manifest:
    """A run's manifest, once its model is known to serve: its bytes match the manifest's
    sha256, it loads with only its kind's trusted types under this scikit-learn, and it
    predicts the first row of the run's (checked) test split with finite values of the
    right shape. PromotionRefusedError says what is wrong otherwise."""
    try:
        info, model_blob, split = _fetch_run(runs, run_id, with_y=False)
        loaded = _model(runs, info, model_blob)
        where = split.where[0]
        x_test = split.x_test()
        if x_test.ndim != 2 or x_test.shape[1] != len(info.features) or len(x_test) == 0:
            raise IntegrityError(f"{where} does not fit the run's {len(info.features)} features")
        sample: Any = x_test[:1]
        if isinstance(info.parameters, RunParameters):
            sample = pd.DataFrame(sample, columns=info.features)
        if info.task == CLASSIFICATION:
            predicted = _proba(loaded.model, sample)
            shape: tuple[int, ...] = (1, len(info.labels or []))
        else:
            predicted, shape = model.predict(loaded.model, sample), (1,)
        if predicted.shape != shape or not np.isfinite(predicted).all():
            raise IntegrityError("its model does not predict a test row")
    except (IntegrityError, CorruptStateError, ModelVersionError, NotFoundError) as exc:
        raise PromotionRefusedError(f"run {run_id!r} cannot be served: {exc.message}") from None
    return info


def promote(runs: RunLog, run_id: str, policy: Promotion, by: Actor = "library") -> Decision:
    """Promote a run that was just scored, under ``policy``, once it is known to serve; a
    failure is recorded in the run (stage promotion) and the current run stays. ``by``: who
    started the run (the promotion log says so)."""
    try:
        info = servable(runs, run_id)
    except LocalMlFlowError as exc:
        runs.record_failure(run_id, "promotion", type(exc).__name__, exc.message)
        raise
    return runs.promote(run_id, info, policy=policy, serves=partial(_serves, runs), by=by)


def _serves(runs: RunLog, run_id: str) -> bool:
    """Whether a run can be served (``servable``), for the policy's comparison: a current
    run that cannot be served never keeps a new one out."""
    try:
        servable(runs, run_id)
    except PromotionRefusedError:
        return False
    return True


def make_current(runs: RunLog, run_id: str, by: Actor = "library") -> Decision:
    """Make a succeeded run current on request (roll back or forward), once it is known to
    serve; a refusal changes nothing, the run's record included."""
    runs.check_finished(run_id)
    return runs.promote(
        run_id,
        servable(runs, run_id),
        record_failure=False,
        by=by,
        reason="made current on request (POST .../promote: a rollback or roll forward)",
    )


# -- reproduction -------------------------------------------------------------------------


def refit(runs: RunLog, info: Manifest, limits: Limits) -> Fitted:
    """Train a run again: its archived dataset version (checked against its sha256), its
    recorded parameters and seed, and (a registered dataset's) the schema it was checked
    against. Nothing is stored."""
    store = runs.store
    sha = info.dataset_sha256
    if isinstance(info.parameters, RunParameters):
        key = datasets.archive_key(store, sha)
        where = f"s3://{store.data_bucket}/{key}"
        head = store.head(store.data_bucket, key)
        if head is None:
            raise CorruptStateError(f"run {info.run_id!r} trained on {where}, which is missing")
        if head.size > limits.max_bytes:
            raise DatasetTooLargeError(
                [f"{where} is {head.size} bytes, above the limit of {limits.max_bytes} bytes"]
            )
        raw = verified(store.get_bytes(store.data_bucket, key), where, sha)
        clean = dataset.load_dataset(raw, max_bytes=limits.max_bytes, max_rows=limits.max_rows)
        del raw
        cleaned = [clean]
        del clean
        return fit_housing(cleaned.pop(), info.parameters)
    if info.dataset_schema is None:
        raise CorruptStateError(f"run {info.run_id!r} has no recorded dataset schema")
    raw = registry.read_version(store, info.dataset, sha, limits.max_bytes)
    return fit_tabular(raw, info.dataset_schema, info.parameters, limits)


def predict_test_split(info: Manifest, fitted: Any, x_test: Any) -> np.ndarray:
    """What a run's model gives for its test split, as scoring asks it: predicted values
    (regression) or class probabilities (classification)."""
    if info.task == CLASSIFICATION:
        return _proba(fitted, np.asarray(x_test, dtype="float64"))
    if isinstance(info.parameters, RunParameters):
        frame = pd.DataFrame(np.asarray(x_test, dtype="float64"), columns=info.features)
        return np.asarray(model.predict(fitted, frame), dtype="float64")
    return np.asarray(model.predict(fitted, np.asarray(x_test, dtype="float64")), dtype="float64")


def stored_test_predictions(runs: RunLog, info: Manifest) -> np.ndarray:
    """The stored model's test predictions on the stored test split, both checked against the
    manifest's sha256 (the model loaded with its kind's trusted types only, never unpickled);
    ModelVersionError when this scikit-learn cannot load it."""
    _, model_blob, split = _fetch_run(runs, info.run_id, with_y=False)
    loaded = _model(runs, info, model_blob)
    return predict_test_split(info, loaded.model, split.x_test())


# -- inference --------------------------------------------------------------------------


def evaluate(request: EvaluateEvent, runs: RunLog) -> dict[str, Any]:
    """Score a run's model on its test split; store metrics, and score.txt if it is the latest."""
    pointer: Pointer | None = None
    run_id = request.run_id
    if run_id is None:
        pointer = runs.latest()
        if pointer is None:
            raise NoModelError("no trained model yet: run the ingestion function first")
        run_id = pointer.run_id
    try:
        return _score(run_id, runs, pointer)
    except LocalMlFlowError as exc:
        if not isinstance(exc, NotFoundError) or isinstance(exc, NoModelError):
            _record(runs, run_id, "inference", exc)
        raise


def _score(run_id: str, runs: RunLog, pointer: Pointer | None) -> dict[str, Any]:
    """``pointer``: the latest pointer as read to find this run (None: not read)."""
    info, model_blob, split = _fetch_run(runs, run_id, with_y=True)
    loaded = _model(runs, info, model_blob)
    x_test, y_test = split.x_test(), split.y_test()
    if x_test.ndim != 2 or x_test.shape != (len(y_test), len(info.features)):
        raise IntegrityError(f"run {run_id!r}: the stored test split does not fit its features")
    y_true = np.asarray(y_test, dtype="float64").reshape(-1)
    if info.task == CLASSIFICATION:
        scored, predictions = _score_classes(info, loaded.model, x_test, y_true)
    else:
        scored, predictions = _score_numbers(info, loaded.model, x_test, y_true)
    # Both are written once; if either write fails the run is recorded failed (error.json
    # wins over metrics.json in its record, and a failed run is never promoted). The pointer,
    # if not read yet, is read meanwhile: score.txt follows the current run only.
    *_, latest = gather(
        lambda: runs.write_predictions(predictions),
        lambda: runs.write_metrics(scored),
        (lambda: pointer) if pointer is not None else runs.latest,
    )
    runs.write_score_if_latest(run_id, scored.score, latest)
    result = scored.model_dump(exclude={"evaluated_at"}, exclude_none=True)
    if runs.dataset != HOUSING:
        result["dataset"] = runs.dataset
    return result


def _score_numbers(
    info: Manifest, fitted: Any, x_test: np.ndarray, y_true: np.ndarray
) -> tuple[Metrics, Predictions]:
    """A regression run's test metrics and predictions."""
    frame = pd.DataFrame(x_test, columns=info.features, copy=False)
    y_pred = model.predict(fitted, frame if isinstance(info.parameters, RunParameters) else x_test)
    metrics = _finite(model.scores(y_true, y_pred), "test")
    scored = Metrics(
        run_id=info.run_id,
        r2=metrics.r2,
        mae=metrics.mae,
        rmse=metrics.rmse,
        n_test=metrics.n,
        score=metrics.score,
        evaluated_at=utc_now(),
    )
    predictions = Predictions(
        run_id=info.run_id,
        y_true=y_true.tolist(),
        y_pred=y_pred.tolist(),
        evaluated_at=scored.evaluated_at,
    )
    return scored, predictions


def _score_classes(
    info: Manifest, fitted: Any, x_test: np.ndarray, y_true: np.ndarray
) -> tuple[Metrics, Predictions]:
    """A classification run's test metrics, predictions, confusion matrix and ROC curves."""
    labels = info.labels or []
    codes = y_true.astype(np.int64)
    if len(labels) < 2 or codes.min(initial=0) < 0 or codes.max(initial=0) >= len(labels):
        raise IntegrityError(f"run {info.run_id!r}: the stored test classes do not fit its labels")
    proba = _proba(fitted, x_test)
    if proba.shape != (len(codes), len(labels)):
        raise IntegrityError(f"run {info.run_id!r}: the model does not predict its classes")
    found = _checked(tabular.class_scores(codes, proba, len(labels)), "test")
    predicted = proba.argmax(axis=1)
    evaluated_at = utc_now()
    scored = Metrics(
        run_id=info.run_id,
        **found.model_dump(exclude={"n"}),
        n_test=found.n,
        score=found.score,
        evaluated_at=evaluated_at,
    )
    predictions = Predictions(
        run_id=info.run_id,
        y_true=codes.astype("float64").tolist(),
        y_pred=predicted.astype("float64").tolist(),
        evaluated_at=evaluated_at,
        labels=labels,
        confusion=tabular.confusion(codes, predicted, len(labels)),
        roc=tabular.roc_curves(codes, proba, labels),
    )
    return scored, predictions
