"""A whole run (ingestion, inference, promotion) as the CLI and the API start it."""

from __future__ import annotations

import pytest

from local_ml_flow import bootstrap
from local_ml_flow.errors import FunctionFailedError
from local_ml_flow.events import RunOptions
from local_ml_flow.invoke import LocalInvoker
from local_ml_flow.runlog import RunLog
from local_ml_flow.runner import run_pipeline
from tests.component.conftest import snapshot


def test_a_run_is_promoted_once_both_functions_succeeded(store, settings):
    invoker = LocalInvoker(bootstrap.local_functions(settings, store))
    lines: list[str] = []
    result = run_pipeline(
        invoker, RunLog(store), settings, RunOptions(feature_set="seed"), progress=lines.append
    )
    assert result["promoted"] is True
    pointer = RunLog(store).latest()
    assert pointer is not None
    assert pointer.run_id == result["run_id"]
    assert pointer.score == "35.62%"
    assert store.get_text(settings.data_bucket, "score.txt") == "35.62%"
    assert pointer.model_sha256 == result["model_sha256"]
    # every root copy names the promoted run
    assert set(RunLog(store).root_runs().values()) == {result["run_id"]}
    assert lines[0].startswith(f"ingestion: invoking {settings.ingestion_function} for run")
    assert lines[-2] == "inference: scored 109 test rows: R² 0.3562"
    assert lines[-1] == f"promotion: run {result['run_id']} is current"


def test_a_worse_run_is_kept_back_and_says_why(store, settings):
    """The promotion policy of a run started by a user (CLI, API, dashboard): a worse run
    leaves the current one served and says why, in its answer, its progress and its record."""
    invoker = LocalInvoker(bootstrap.local_functions(settings, store))
    best = run_pipeline(invoker, RunLog(store), settings, RunOptions())
    lines: list[str] = []
    worse = run_pipeline(
        invoker, RunLog(store), settings, RunOptions(feature_set="seed"), progress=lines.append
    )
    assert worse["promoted"] is False
    reason = f"test R² 0.3562 is below 0.6529 of the current run {best['run_id']}"
    assert reason in worse["not_promoted"]
    assert lines[-1].startswith(f"promotion: run {best['run_id']} stays current: {reason}")
    latest = RunLog(store).latest()
    assert latest is not None
    assert latest.run_id == best["run_id"]
    assert store.get_text(settings.data_bucket, "score.txt") == "65.29%"
    assert set(RunLog(store).root_runs().values()) == {best["run_id"]}
    assert RunLog(store).record(worse["run_id"])["not_promoted"]["reason"] == worse["not_promoted"]


def test_a_failing_inference_leaves_the_previous_model_and_score(store, settings):
    functions = bootstrap.local_functions(settings, store)
    run_pipeline(LocalInvoker(functions), RunLog(store), settings, RunOptions())
    before = snapshot(store)

    def broken_inference(event, context):
        raise RuntimeError("out of memory")

    invoker = LocalInvoker({**functions, settings.inference_function: broken_inference})
    with pytest.raises(FunctionFailedError) as info:
        run_pipeline(invoker, RunLog(store), settings, RunOptions(feature_set="seed"))
    assert info.value.error_type == "RuntimeError"
    run_id = info.value.details["run_id"]
    assert info.value.details["stage"] == "inference"

    after = snapshot(store)
    assert {k: after[k] for k in before} == before  # nothing that was there changed
    assert all(f"/runs/{run_id}/" in key for key in set(after) - set(before))
    record = RunLog(store).record(run_id)
    assert record["status"] == "failed"
    assert record["error"] == {
        "stage": "inference",
        "type": "RuntimeError",
        "message": "out of memory",
        "details": None,
    }


def test_ingestion_without_promotion_then_promote(store, settings):
    from local_ml_flow import handlers

    trained = handlers.ingestion({"promote": False}, None, store=store, settings=settings)
    assert trained["promoted"] is False
    assert RunLog(store).latest() is None
    assert not store.exists(settings.models_bucket, "model.joblib")
    handlers.inference({"run_id": trained["run_id"]}, None, store=store, settings=settings)
    assert not store.exists(settings.data_bucket, "score.txt")
    RunLog(store).promote(trained["run_id"])
    assert store.get_text(settings.data_bucket, "score.txt") == "65.29%"
    assert store.exists(settings.models_bucket, "model.joblib")


def test_a_function_that_dies_before_writing_anything_leaves_a_failed_run(store, settings):
    """The run was recorded (queued) before ingestion was invoked: it is listed as failed with
    the function's own error, never a 404."""
    functions = bootstrap.local_functions(settings, store)

    def crashing(event, context):
        raise ImportError("No module named 'sklearn'")

    invoker = LocalInvoker({**functions, settings.ingestion_function: crashing})
    with pytest.raises(FunctionFailedError) as info:
        run_pipeline(invoker, RunLog(store), settings, RunOptions(model="gradient_boosting"))
    run_id = info.value.details["run_id"]
    record = RunLog(store).record(run_id)
    assert record["status"] == "failed"
    assert record["parameters"] == {"model": "gradient_boosting"}
    assert record["error"]["stage"] == "ingestion"
    assert record["error"]["type"] == "ImportError"
    assert [r["run_id"] for r in RunLog(store).list()] == [run_id]
