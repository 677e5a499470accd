"""A pipeline run as users start it (CLI, API): ingestion then inference, through an invoker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from local_ml_flow import pipeline, retention
from local_ml_flow.errors import FunctionFailedError, LocalMlFlowError
from local_ml_flow.events import HOUSING, RunOptions, TabularOptions, new_run_id
from local_ml_flow.invoke import Invoker
from local_ml_flow.promotions import Actor
from local_ml_flow.runlog import RunLog
from local_ml_flow.settings import Settings

Progress = Callable[[str], None]
logger = logging.getLogger("local_ml_flow.runs")


def _quiet(message: str) -> None:
    """Default progress callback: say nothing."""


Options = RunOptions | TabularOptions


def queue_run(runs: RunLog, options: Options) -> str:
    """Record a new run as queued (before anything is invoked); returns its id."""
    run_id = new_run_id()
    runs.queue(run_id, options.model_dump(exclude_none=True))
    return run_id


def run_pipeline(
    invoker: Invoker,
    runs: RunLog,
    settings: Settings,
    options: Options,
    *,
    progress: Progress = _quiet,
    run_id: str | None = None,
    by: Actor = "library",
) -> dict[str, Any]:
    """Invoke ingestion then inference for a new run, then promote it under the promotion
    policy (the options', else the setting's); returns both results merged, with
    ``promoted`` (and ``not_promoted``: why the current run stayed).

    The run is promoted (latest pointer, root keys, score.txt) only once both functions
    succeeded and its model is known to serve. A failing function raises FunctionFailedError
    carrying the run id; the run is then recorded as failed in its own prefix (the function
    usually did so itself) and the previous model and score stay. ``run_id``: a run already
    queued (``queue_run``). ``by``: who starts it (``cli``, ``api``, ``dashboard``), for the
    promotion log.
    """
    chosen = options.model_dump(exclude_none=True)
    if run_id is None:
        run_id = queue_run(runs, options)  # the run exists (queued) before anything is invoked
    started = time.monotonic()
    logger.info("run %s started: %s", run_id, chosen or "default parameters")
    try:
        result = _run(invoker, runs, settings, run_id, chosen, progress, by)
    except LocalMlFlowError as exc:  # logged here, once, with the run
        logger.warning(
            "run %s failed after %.1f s: %s",
            run_id,
            time.monotonic() - started,
            exc.log_line()
            if isinstance(exc, FunctionFailedError)
            else f"{type(exc).__name__}: {exc.message}",
        )
        raise
    except Exception:
        logger.exception("run %s failed with an unexpected error", run_id)
        raise
    finally:
        _retain(runs, settings)
    logger.info(
        "run %s%s succeeded in %.1f s: %s",
        run_id,
        "" if runs.dataset == HOUSING else f" of dataset {runs.dataset}",
        time.monotonic() - started,
        summary(result),
    )
    return result


def _retain(runs: RunLog, settings: Settings) -> None:
    """``LMF_KEEP_RUNS``: delete the dataset's finished runs beyond the newest N (a failure
    is logged: the run's own outcome stands)."""
    if settings.keep_runs is None:
        return
    try:
        freed = retention.keep_newest(runs, settings.keep_runs)
    except LocalMlFlowError as exc:
        logger.warning("retention (LMF_KEEP_RUNS=%d) failed: %s", settings.keep_runs, exc.message)
        return
    if freed.run_ids:
        logger.info(
            "retention (LMF_KEEP_RUNS=%d) deleted %d runs: %d objects, %d bytes",
            settings.keep_runs,
            len(freed.run_ids),
            freed.objects,
            freed.bytes,
        )


def summary(result: dict[str, Any]) -> str:
    """A run's main test metrics in one line: R², MAE, RMSE or accuracy and friends."""
    if "accuracy" in result:
        auc = result.get("roc_auc")
        return (
            f"accuracy {result['accuracy']:.4f}, balanced accuracy"
            f" {result['balanced_accuracy']:.4f}, F1 {result['f1_macro']:.4f}"
            + (f", ROC AUC {auc:.4f}" if auc is not None else "")
        )
    return f"R² {result['r2']:.4f}, MAE {result['mae']:.0f}, RMSE {result['rmse']:.0f}"


def _run(
    invoker: Invoker,
    runs: RunLog,
    settings: Settings,
    run_id: str,
    chosen: dict[str, Any],
    progress: Progress,
    by: Actor,
) -> dict[str, Any]:
    stage = "ingestion"
    try:
        progress(f"ingestion: invoking {settings.ingestion_function} for run {run_id}")
        named = {} if runs.dataset == HOUSING else {"dataset": runs.dataset}
        parameters = {k: v for k, v in chosen.items() if k != "promotion"}
        event = {**named, "run_id": run_id, **parameters, "promote": False}
        trained = invoker.invoke(settings.ingestion_function, event)
        progress(
            f"ingestion: trained on {trained['n_train']} rows, {len(trained['features'])}"
            f" features, model sha256 {trained['model_sha256'][:12]}"
        )
        stage = "inference"
        progress(f"inference: invoking {settings.inference_function}")
        scored = invoker.invoke(settings.inference_function, {**named, "run_id": run_id})
        main = (
            f"accuracy {scored['accuracy']:.4f}"
            if "accuracy" in scored
            else f"R² {scored['r2']:.4f}"
        )
        progress(f"inference: scored {scored['n_test']} test rows: {main}")
    except FunctionFailedError as exc:
        runs.record_failure(run_id, stage, exc.error_type, exc.error_message)
        raise FunctionFailedError(
            exc.function_name,
            exc.error_type,
            exc.error_message,
            {"run_id": run_id, "stage": stage},
            exc.trace,
        ) from None
    except LocalMlFlowError as exc:  # the function could not be invoked at all
        runs.record_failure(run_id, stage, type(exc).__name__, exc.message)
        _name_the_run(exc, run_id, stage)
        raise
    try:  # records a failure itself
        decision = pipeline.promote(runs, run_id, chosen.get("promotion") or runs.policy, by)
    except LocalMlFlowError as exc:
        _name_the_run(exc, run_id, "promotion")
        raise
    if decision.promoted:
        progress(f"promotion: run {run_id} is current")
        return {**trained, **scored, "promoted": True}
    progress(f"promotion: run {decision.run_id} stays current: {decision.reason}")
    return {**trained, **scored, "promoted": False, "not_promoted": decision.reason}


def _name_the_run(exc: LocalMlFlowError, run_id: str, stage: str) -> None:
    """Put the run id and stage into ``exc``'s details (when they are a mapping or empty)."""
    if exc.details is None or isinstance(exc.details, dict):
        exc.details = {**(exc.details or {}), "run_id": run_id, "stage": stage}
