"""Documented error responses: each status with examples of its own error types (for /docs)."""

from __future__ import annotations

from typing import Any

from local_ml_flow.api.schemas import ErrorResponse

_RUN = "20260101T120000Z-3f2a9c1b"

# status -> (error type, message, details) examples; the first one of each is the most common.
EXAMPLES: dict[int, list[tuple[str, str, Any]]] = {
    400: [
        (
            "InvalidHostError",
            "Host 'evil.example:8000' is not served here: use localhost or 127.0.0.1, or add"
            " the name to LMF_ALLOWED_HOSTS",
            None,
        )
    ],
    403: [
        (
            "CrossSiteRequestError",
            "a POST from origin 'https://evil.example' is refused: writes come from this"
            " server's own pages or from clients that are not browsers",
            None,
        )
    ],
    404: [("NotFoundError", f"run {_RUN!r} does not exist", None)],
    408: [("RequestTimeoutError", "no request body data for 30 s", None)],
    409: [
        ("NoModelError", "no trained model yet: run the pipeline (ingestion) first", None),
        (
            "PromotionRefusedError",
            f"run {_RUN!r} failed: it cannot become current",
            None,
        ),
        (
            "ModelVersionError",
            f"run {_RUN!r} was trained with scikit-learn 1.4.2; this is 1.6.1: train a new run",
            None,
        ),
        ("ConcurrentUpdateError", "the latest pointer moved while promoting", None),
        ("RunInUseError", f"run {_RUN!r} is current: promote another run first", None),
    ],
    413: [
        (
            "PayloadTooLargeError",
            "request body of 2000000 bytes is above the limit of 1048576 bytes",
            None,
        )
    ],
    415: [
        (
            "UnsupportedMediaTypeError",
            "POST /predict takes Content-Type application/json, not text/plain",
            None,
        )
    ],
    422: [
        (
            "RequestValidationError",
            "invalid request: body.test_size: input should be less than 1",
            [
                {
                    "loc": ["body", "test_size"],
                    "msg": "Input should be less than 1",
                    "type": "less_than",
                }
            ],
        ),
        (
            "DatasetValidationError",
            "invalid dataset: column 'area': non-numeric values at line 3; missing columns:"
            " 'parking'",
            ["column 'area': non-numeric values at line 3", "missing columns: 'parking'"],
        ),
        (
            "InvalidBodyError",
            "the request body cannot be read (There was an error parsing the body): send JSON"
            " (UTF-8) or, for an upload, a well-formed multipart form",
            None,
        ),
    ],
    502: [
        (
            "FunctionFailedError",
            "ingestion failed: the dataset has no rows",
            {"function": "local-ml-flow-ingestion", "run_id": _RUN, "stage": "ingestion"},
        ),
        ("StorageError", "S3 answered InternalError reading s3://local-ml-flow-data/...", None),
        ("CorruptStateError", "s3://local-ml-flow-data/runs/latest.json is not valid", None),
        ("IntegrityError", "sha256 of s3://local-ml-flow-models/... does not match", None),
    ],
    503: [
        (
            "EndpointUnreachableError",
            "cannot reach the AWS endpoint http://127.0.0.1:4566",
            None,
        ),
        ("FunctionNotFoundError", "function local-ml-flow-ingestion does not exist", None),
        ("MissingCredentialsError", "no AWS credentials found", None),
    ],
}

DESCRIPTIONS = {
    400: "the Host header is not a local name",
    403: "a cross-site write from a browser page",
    404: "not found",
    408: "the request body stalled",
    409: "the request conflicts with the state of the runs",
    413: "the body is above its limit",
    415: "the body's Content-Type is not the one this endpoint takes",
    422: "the request is not valid",
    502: "a function, the stored data or the AWS side failed",
    503: "AWS (or a function) is unreachable or not set up",
}

READ = (400, 502, 503)
WRITE = (400, 403, 408, 413, 415, 422, 502, 503)


def _example(error_type: str, message: str, details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": error_type, "message": message}
    if details is not None:
        body["details"] = details
    return {"summary": error_type, "value": {"error": body}}


def errors(*statuses: int, only: dict[int, tuple[str, ...]] | None = None) -> dict[int | str, Any]:
    """``responses=`` for these statuses, each with its own error examples; ``only`` keeps
    some types of a status (e.g. 409: PromotionRefusedError)."""
    out: dict[int | str, Any] = {}
    for status in sorted(set(statuses)):
        chosen = EXAMPLES[status]
        if only and status in only:
            chosen = [e for e in chosen if e[0] in only[status]]
        out[status] = {
            "model": ErrorResponse,
            "description": DESCRIPTIONS[status],
            "content": {"application/json": {"examples": {e[0]: _example(*e) for e in chosen}}},
        }
    return out
