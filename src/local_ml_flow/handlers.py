"""Lambda entry points: parse the event, run the pipeline, return a JSON-able dict.

``local_ml_flow.handlers.ingestion_handler`` and ``...inference_handler`` are what
Terraform and the Lambda image name. The store is created once per container and can
be injected (the embedded mode and tests pass their own).
"""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache
from typing import Any

from local_ml_flow import aws, pipeline
from local_ml_flow.settings import Settings, get_settings
from local_ml_flow.storage import ArtifactStore

logger = logging.getLogger("local_ml_flow.handlers")
logger.setLevel(logging.INFO)


def make_store(settings: Settings, *, endpoint_url: str | None = None) -> ArtifactStore:
    """An ArtifactStore over a fresh S3 client, buckets and key from settings."""
    return ArtifactStore(
        aws.client("s3", endpoint_url=endpoint_url),
        data_bucket=settings.data_bucket,
        models_bucket=settings.models_bucket,
        dataset_key=settings.dataset_key,
    )


@lru_cache(maxsize=1)
def _default_store() -> ArtifactStore:
    return make_store(get_settings())


def _defaults(settings: Settings) -> pipeline.IngestRequest:
    return pipeline.IngestRequest(
        model=settings.model,
        feature_set=settings.feature_set,
        test_size=settings.test_size,
        random_state=settings.random_state,
    )


def _log(function: str, started: float, result: dict[str, Any]) -> None:
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    logger.info(json.dumps({"function": function, "took_ms": took_ms, **result}, default=str))


def ingestion(
    event: Any,
    context: Any = None,
    *,
    store: ArtifactStore | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Train a run: housing.csv -> clean -> split -> train -> artifacts in S3."""
    started = time.perf_counter()
    settings = settings or get_settings()
    request = pipeline.parse_ingest_event(event, _defaults(settings))
    limits = pipeline.Limits(settings.max_dataset_bytes, settings.max_dataset_rows)
    result = pipeline.ingest(request, store or _default_store(), limits)
    _log("ingestion", started, result)
    return result


def inference(
    event: Any,
    context: Any = None,
    *,
    store: ArtifactStore | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Score a run (default: the latest): predict on its test split, R² and friends."""
    started = time.perf_counter()
    request = pipeline.parse_evaluate_event(event)
    result = pipeline.evaluate(request, store or _default_store())
    _log("inference", started, result)
    return result


def ingestion_handler(event: Any, context: Any) -> dict[str, Any]:
    """AWS Lambda entry point of the ingestion function."""
    return ingestion(event, context)


def inference_handler(event: Any, context: Any) -> dict[str, Any]:
    """AWS Lambda entry point of the inference function."""
    return inference(event, context)
