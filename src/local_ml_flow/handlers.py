"""Lambda entry points: parse the event, run the pipeline, return a JSON-able dict.

``local_ml_flow.handlers.ingestion_handler`` and ``...inference_handler`` are what
Terraform and the Lambda image name. The store is created once per container and can
be injected (the embedded mode and tests pass their own).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

from local_ml_flow import notifications, pipeline, registry
from local_ml_flow.errors import LocalMlFlowError
from local_ml_flow.events import HOUSING, EvaluateEvent, IngestEvent, parse_event
from local_ml_flow.runlog import RunLog
from local_ml_flow.settings import Settings, get_settings
from local_ml_flow.storage import ArtifactStore, make_store

logger = logging.getLogger("local_ml_flow.handlers")
logger.setLevel(logging.INFO)


@lru_cache(maxsize=1)
def _default_store() -> ArtifactStore:
    return make_store(get_settings())


Work = Callable[[Any, RunLog, Settings], dict[str, Any]]


class FunctionHandler(Protocol):
    """A function's handler, with its store and settings injectable (embedded mode, tests)."""

    def __call__(
        self,
        event: Any,
        context: Any = None,
        *,
        store: ArtifactStore | None = None,
        settings: Settings | None = None,
    ) -> dict[str, Any]: ...


def _handler(function: str, work: Work) -> FunctionHandler:
    """``work`` as a handler: default store and settings, one JSON log line per call."""

    def handle(
        event: Any,
        context: Any = None,
        *,
        store: ArtifactStore | None = None,
        settings: Settings | None = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        settings = settings or get_settings()
        runs = RunLog.from_settings(store or _default_store(), settings)
        result = work(event, runs, settings)
        took_ms = round((time.perf_counter() - started) * 1000, 1)
        logger.info(json.dumps({"function": function, "took_ms": took_ms, **result}, default=str))
        return result

    handle.__doc__ = work.__doc__
    return handle


def _ingest(event: Any, runs: RunLog, settings: Settings) -> dict[str, Any]:
    """Train a run: the dataset (housing.csv, or a registered dataset's current version) ->
    validate -> clean -> split -> train -> artifacts in S3. An S3 upload notification: a
    whole run for each new dataset version (``_retrain``)."""
    if notifications.is_s3_event(event):
        return _retrain(event, runs, settings)
    ev = parse_event(IngestEvent, event)
    limits = pipeline.Limits(settings.max_dataset_bytes, settings.max_dataset_rows)
    policy = (ev.promotion or runs.policy) if ev.promote else None
    if ev.dataset is None or ev.dataset == HOUSING:
        parameters = ev.options().over(settings.run_defaults())
        return pipeline.ingest(pipeline.IngestRequest(parameters, ev.run_id, policy), runs, limits)
    document = registry.get(runs.store, ev.dataset)
    chosen = pipeline.tabular_parameters(ev.tabular_options(), document, settings.run_defaults())
    request = pipeline.IngestRequest(chosen, ev.run_id, policy, document)
    return pipeline.ingest(request, runs.of_dataset(ev.dataset), limits)


def _evaluate(event: Any, runs: RunLog, settings: Settings) -> dict[str, Any]:
    """Score a run (default: the dataset's current run): predict on its test split, R² and
    friends (or accuracy and friends)."""
    ev = parse_event(EvaluateEvent, event)
    if ev.dataset is not None and ev.dataset != HOUSING:
        registry.get(runs.store, ev.dataset)  # DatasetNotFoundError for an unknown dataset
    return pipeline.evaluate(ev, runs.of_dataset(ev.dataset or HOUSING))


def _retrain(event: Any, runs: RunLog, settings: Settings) -> dict[str, Any]:
    """Retrain when data lands: each upload of a dataset version (``notifications.plan``)
    is a run made as the API makes one (ingestion, inference, promotion by the policy);
    a failure is recorded in the run (the current one stays) and raised."""
    done = []
    for upload in notifications.parse(event):
        job = notifications.plan(upload, runs, settings)
        if isinstance(job, notifications.Ignored):
            done.append(job.said())
            continue
        log, stage = runs.of_dataset(job.dataset), "ingestion"
        try:
            trained = _ingest(job.ingest_event(), runs, settings)
            stage = "inference"
            scored = _evaluate(job.evaluate_event(), runs, settings)
            stage = "promotion"
            decision = pipeline.promote(log, job.run_id, log.policy)
        except LocalMlFlowError as exc:  # recorded once: the step's own record stands
            log.record_failure(job.run_id, stage, type(exc).__name__, exc.message)
            raise
        said = {"not_promoted": decision.reason} if not decision.promoted else {}
        done.append(
            {"object": upload.where, **trained, **scored, "promoted": decision.promoted, **said}
        )
    return {"uploads": done}


ingestion = _handler("ingestion", _ingest)
inference = _handler("inference", _evaluate)


def ingestion_handler(event: Any, context: Any) -> dict[str, Any]:
    """AWS Lambda entry point of the ingestion function."""
    return ingestion(event, context)


def inference_handler(event: Any, context: Any) -> dict[str, Any]:
    """AWS Lambda entry point of the inference function."""
    return inference(event, context)
