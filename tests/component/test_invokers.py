"""LambdaInvoker (real boto3 Invoke over HTTP) and LocalInvoker agree on results and errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from local_ml_flow import aws, bootstrap
from local_ml_flow.errors import EndpointUnreachableError, FunctionFailedError, NotFoundError
from local_ml_flow.invoke import Invocation, Invoker, LambdaInvoker, LocalInvoker
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore
from tests.component.lambda_api import LambdaApi
from tests.conftest import free_port


@pytest.fixture
def invokers(
    store: ArtifactStore, settings: Settings
) -> Iterator[tuple[LocalInvoker, LambdaInvoker]]:
    functions = bootstrap.local_functions(settings, store)
    api = LambdaApi(functions)
    try:
        client = aws.client("lambda", endpoint_url=api.endpoint_url, function_timeout_s=30)
        yield LocalInvoker(functions), LambdaInvoker(client)
    finally:
        api.stop()


def test_same_result_for_the_same_event(invokers, settings):
    local, remote = invokers
    a = local.invoke(settings.ingestion_function, {"run_id": "via-local"})
    b = remote.invoke(settings.ingestion_function, {"run_id": "via-lambda"})
    assert a.pop("run_id") == "via-local"
    assert b.pop("run_id") == "via-lambda"
    assert a == b  # same data, same parameters: same model bytes, same figures
    sa = local.invoke(settings.inference_function, {"run_id": "via-local"})
    sb = remote.invoke(settings.inference_function, {"run_id": "via-lambda"})
    assert {k: v for k, v in sa.items() if k != "run_id"} == {
        k: v for k, v in sb.items() if k != "run_id"
    }
    assert sa["score"] == "65.29%"


def test_same_error_shape(invokers, settings):
    local, remote = invokers
    raw_local = local.invoke_raw(settings.ingestion_function, {"model": "forest"})
    raw_remote = remote.invoke_raw(settings.ingestion_function, {"model": "forest"})
    for raw in (raw_local, raw_remote):
        assert isinstance(raw, Invocation)
        assert raw.status_code == 200
        assert raw.function_error == "Unhandled"
        assert raw.payload["errorType"] == "InvalidRequestError"
    assert raw_local.payload["errorMessage"] == raw_remote.payload["errorMessage"]

    errors = []
    for invoker in (local, remote):
        with pytest.raises(FunctionFailedError) as info:
            invoker.invoke(settings.ingestion_function, {"model": "forest"})
        errors.append(info.value)
    assert {(e.function_name, e.error_type, e.error_message) for e in errors} == {
        (
            settings.ingestion_function,
            "InvalidRequestError",
            "model 'forest' is unknown; expected one of"
            " ('linear', 'ridge', 'gradient_boosting', 'logistic')",
        )
    }


def test_function_traceback_logged_for_unexpected_errors_only(invokers, settings, caplog):
    """The invoker logs nothing above debug level (the caller logs the failure once, with
    its run); the error carries the function's traceback, which its log line shows for an
    unexpected exception only, through either invoker."""

    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"n": event["missing"]}  # KeyError

    api = LambdaApi({"broken": broken})
    try:
        client = aws.client("lambda", endpoint_url=api.endpoint_url, function_timeout_s=30)
        unexpected: list[Invoker] = [LocalInvoker({"broken": broken}), LambdaInvoker(client)]
        caplog.set_level(logging.DEBUG, logger="local_ml_flow.functions")
        for refused, failing in zip(invokers, unexpected, strict=True):
            caplog.clear()
            with pytest.raises(FunctionFailedError) as raised:
                refused.invoke(settings.ingestion_function, {"model": "forest"})
            assert not [r for r in caplog.records if r.levelno > logging.DEBUG]
            (debug,) = [r for r in caplog.records if r.levelno == logging.DEBUG]
            assert "Traceback (in the function):" in debug.message
            assert "handlers.py" in debug.message
            line = raised.value.log_line()
            assert "failed: InvalidRequestError: model 'forest' is unknown" in line
            assert "Traceback" not in line
            assert "handlers.py" in raised.value.trace

            caplog.clear()
            with pytest.raises(FunctionFailedError, match="broken failed with KeyError") as raised:
                failing.invoke("broken", {})
            assert not [r for r in caplog.records if r.levelno > logging.DEBUG]
            line = raised.value.log_line()
            assert line.startswith("broken failed: KeyError: 'missing'\n"), line
            assert "Traceback (in the function):" in line
            assert 'event["missing"]' in line
    finally:
        api.stop()


def test_unknown_function(invokers):
    for invoker in invokers:
        with pytest.raises(NotFoundError, match="function 'nope' does not exist"):
            invoker.invoke("nope", {})


def test_unreachable_endpoint_is_typed():
    client = aws.client("lambda", endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EndpointUnreachableError, match="unreachable while invoking f"):
        LambdaInvoker(client).invoke("f", {})


def test_invoke_client_never_retries_and_outwaits_the_function():
    client = aws.client("lambda", endpoint_url="http://127.0.0.1:1", function_timeout_s=300)
    config: Any = client.meta.config
    assert config.retries["total_max_attempts"] == 1
    assert config.read_timeout > 300
    s3_config: Any = aws.client("s3", endpoint_url="http://127.0.0.1:1").meta.config
    assert s3_config.retries["mode"] == "standard"


def test_events_and_results_round_trip_through_json(store, settings):
    seen = []

    def handler(event, context):
        seen.append(event)
        return {"when": object()}  # not JSON: the invoker must serialise like Lambda

    raw = LocalInvoker({"f": handler}).invoke_raw("f", {"t": (1, 2)})
    assert seen == [{"t": [1, 2]}]
    assert isinstance(raw.payload["when"], str)
