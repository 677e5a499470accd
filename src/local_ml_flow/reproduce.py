"""Reproduce a run, verified: train it again and compare bit for bit with what it stored.

A reproduction trains in the process that asks (the API server, or the CLI) from the run's
archived dataset version, recorded parameters and seed, stores nothing of the model, and
compares: the model's bytes (skops, made canonical: ``storage.model_to_bytes``) with the run's
``model_sha256``, the test split with its sha256s, and the predictions on the test split
(values, or class probabilities) with the stored model's on the stored split, bit for bit.
``identical`` is all of them equal. Each attempt is kept as a write-once document under the
run (``reproduction-<UTC time>.json``); the run's own documents never change.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict

from local_ml_flow import pipeline
from local_ml_flow.errors import AlreadyExistsError, ModelVersionError
from local_ml_flow.events import RunId
from local_ml_flow.runlog import REPRODUCTION_PREFIX as PREFIX
from local_ml_flow.runlog import Manifest, RunLog
from local_ml_flow.storage import (
    array_bytes,
    gather,
    key_stamp,
    model_to_bytes,
    parse_document,
    sha256,
    utc_now,
)

_COMPARED = ("python", "numpy", "pandas", "scikit-learn", "skops")


class Reproduction(BaseModel):
    """One attempt to reproduce a run, and what differs when it is not identical."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: RunId
    dataset: str
    identical: bool
    model_identical: bool
    predictions_identical: bool | None  # None: the stored model's could not be computed
    test_split_identical: bool
    recorded_model_sha256: str
    reproduced_model_sha256: str
    n_test: int
    rows_differing: int | None = None
    max_abs_difference: float | None = None
    # package -> [the version the run was trained with, this process's], when they differ
    versions: dict[str, list[str]]
    differences: list[str]
    reproduced_at: str
    took_s: float


def reproduce(runs: RunLog, run_id: str, limits: pipeline.Limits) -> Reproduction:
    """Train ``run_id`` again and compare (see the module); the attempt is stored under the
    run (a failure to store it is the caller's error: nothing acknowledged is lost)."""
    started = time.perf_counter()
    info = runs.manifest(run_id)  # RunNotFoundError, or NoModelError for a run not trained
    fit = pipeline.refit(runs, info, limits)
    blob = model_to_bytes(fit.model)
    model_sha = sha256(blob)
    differences: list[str] = []
    versions = _versions(info)
    if versions:
        differences.append(
            "library versions differ: "
            + ", ".join(f"{name} {then} then, {now} now" for name, (then, now) in versions.items())
        )
    split_same = (
        sha256(array_bytes(np.asarray(fit.x_test))) == info.x_test_sha256
        and sha256(array_bytes(np.asarray(fit.y_test))) == info.y_test_sha256
    )
    if not split_same:
        differences.append("the test split differs from the stored one")
    model_same = model_sha == info.model_sha256
    if not model_same:
        differences.append(
            f"the model's bytes differ: sha256 {model_sha[:12]}… reproduced,"
            f" {info.model_sha256[:12]}… recorded"
        )
    new = pipeline.predict_test_split(info, fit.model, fit.x_test)
    rows, largest, note = _compare(runs, info, new)
    if note:
        differences.append(note)
    predictions_same = None if rows is None else rows == 0
    result = Reproduction(
        run_id=run_id,
        dataset=runs.dataset,
        identical=bool(model_same and split_same and predictions_same),
        model_identical=model_same,
        predictions_identical=predictions_same,
        test_split_identical=split_same,
        recorded_model_sha256=info.model_sha256,
        reproduced_model_sha256=model_sha,
        n_test=fit.n_test,
        rows_differing=rows,
        max_abs_difference=largest,
        versions=versions,
        differences=differences,
        reproduced_at=utc_now(),
        took_s=round(time.perf_counter() - started, 3),
    )
    key = runs.key(run_id, f"{PREFIX}{key_stamp(result.reproduced_at)}.json")
    with contextlib.suppress(AlreadyExistsError):  # the same microsecond: the same attempt
        runs.store.put_json(runs.store.data_bucket, key, result, once=True)
    return result


def _compare(
    runs: RunLog, info: Manifest, new: np.ndarray
) -> tuple[int | None, float | None, str | None]:
    """Rows whose predictions differ at all (bit for bit), the largest difference, and what
    to say; (None, None, why) when the stored model's predictions cannot be computed."""
    try:
        old = pipeline.stored_test_predictions(runs, info)
    except ModelVersionError as exc:
        return None, None, f"the stored model cannot be loaded here to compare: {exc.message}"
    if old.shape != new.shape:
        return len(new), None, f"predictions of shape {new.shape}, {old.shape} stored"
    same = old.view(np.uint8).reshape(len(old), -1) == new.view(np.uint8).reshape(len(new), -1)
    rows = int((~same.all(axis=1)).sum())
    if rows == 0:
        return 0, 0.0, None
    largest = float(np.max(np.abs(old - new)))
    said = f"predictions differ on {rows} of {len(new)} test rows (largest: {largest:.3g})"
    return rows, largest, said


def _versions(info: Manifest) -> dict[str, list[str]]:
    now = pipeline.environment()
    return {
        name: [info.environment[name], now.get(name, "unknown")]
        for name in _COMPARED
        if name in info.environment and info.environment[name] != now.get(name, "unknown")
    }


def reproductions(runs: RunLog, run_id: str, limit: int = 10) -> list[Reproduction]:
    """A run's reproductions, newest first; RunNotFoundError for an unknown run."""
    found = runs.store.list_objects(runs.store.data_bucket, runs.key(run_id, PREFIX))
    if not found:
        runs.record(run_id)  # RunNotFoundError for an unknown run
        return []
    keys = sorted((o.key for o in found), reverse=True)[:limit]
    data = runs.store.data_bucket

    def reader(key: str) -> Callable[[], Reproduction]:
        def read() -> Reproduction:
            blob = runs.store.read(data, key)
            return parse_document(blob.data, Reproduction, f"s3://{data}/{key}")

        return read

    found_documents: list[Reproduction] = gather(*(reader(k) for k in keys))
    return found_documents
