"""Property-based run of the OpenAPI schema (schemathesis): no server errors, every
response as documented (status code, content type, body schema)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import ApiServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def operations(server: ApiServer) -> list:
    httpx.post(f"{server.url}/pipeline/runs", timeout=60).raise_for_status()
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]


def test_every_operation_is_fuzzed(operations):
    assert len(operations) >= 12


@pytest.mark.parametrize(
    "label",
    [
        "GET /",
        "GET /health",
        "GET /ready",
        "GET /bucket/get-all-buckets",
        "GET /bucket/get-all-models",
        "GET /bucket/dataset",
        "PUT /bucket/dataset",
        "GET /lambda/get-all-lambdas",
        "GET /result/{bucket_name}",
        "POST /pipeline/runs",
        "GET /pipeline/runs",
        "GET /pipeline/runs/{run_id}",
        "POST /predict",
    ],
)
def test_no_server_errors(operations, label):
    [operation] = [op for op in operations if op.label == label]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case) -> None:
        case.call_and_validate(checks=CHECKS)

    check()
