"""Starting a run from the API, waited for or in the background, for any dataset; sampling
a run's test predictions for a chart."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from local_ml_flow.api.background import BackgroundRuns
from local_ml_flow.api.caches import Caches
from local_ml_flow.api.schemas import Run
from local_ml_flow.events import HOUSING
from local_ml_flow.invoke import Invoker
from local_ml_flow.promotions import Actor
from local_ml_flow.runlog import RunLog
from local_ml_flow.runner import Options, queue_run, run_pipeline
from local_ml_flow.settings import Settings


def start(
    request: Request,
    response: Response,
    runs: RunLog,
    invoker: Invoker,
    settings: Settings,
    caches: Caches,
    options: Options,
    asynchronous: bool,
    by: Actor = "api",
) -> Run:
    """Start a run of ``runs``' dataset: wait for it (its record), or queue it and answer 202
    with the queued record and a ``Location`` to poll. ``by``: ``api``, or ``dashboard`` when
    the dashboard says so (for the promotion log)."""
    if asynchronous:
        run_id = queue_run(runs, options)
        background: BackgroundRuns = request.app.state.background_runs

        def work() -> None:
            try:
                run_pipeline(invoker, runs, settings, options, run_id=run_id, by=by)
            finally:
                caches.invalidate()

        background.submit(run_id, work)
        response.status_code = 202
        response.headers["Location"] = location(runs, run_id)
        return Run.model_validate(runs.record(run_id))
    try:
        result = run_pipeline(invoker, runs, settings, options, by=by)
    finally:
        caches.invalidate()  # the next answers read the pointer just written
    return Run.model_validate(runs.record(result["run_id"]))


def location(runs: RunLog, run_id: str) -> str:
    """Where a run of ``runs``' dataset is read."""
    if runs.dataset == HOUSING:
        return f"/pipeline/runs/{run_id}"
    return f"/datasets/{runs.dataset}/runs/{run_id}"


def sampled(
    values: list[Any], others: list[Any], max_points: int | None
) -> tuple[list[Any], list[Any]]:
    """At most ``max_points`` rows of two paired lists, evenly spaced (first and last kept)."""
    n = len(values)
    if max_points is None or n <= max_points:
        return values, others
    rows = [round(i * (n - 1) / (max_points - 1)) for i in range(max_points)]
    return [values[i] for i in rows], [others[i] for i in rows]
