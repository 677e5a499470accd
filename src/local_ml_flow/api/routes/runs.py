"""Pipeline runs: start one (ingestion then inference), list them, read one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from local_ml_flow.api.deps import CachesDep, InvokerDep, RunsDep, SettingsDep
from local_ml_flow.api.schemas import ErrorResponse, Run, RunRequest, RunsResponse
from local_ml_flow.events import RunId
from local_ml_flow.runner import run_pipeline

router = APIRouter(prefix="/pipeline", tags=["pipeline"])

RunIdPath = Annotated[RunId, Path(description="a run id")]


@router.post(
    "/runs",
    status_code=201,
    response_model=Run,
    responses={
        422: {"model": ErrorResponse},
        502: {"model": ErrorResponse, "description": "a function failed; the run is recorded"},
        503: {"model": ErrorResponse},
    },
)
def start_run(
    runs: RunsDep,
    invoker: InvokerDep,
    settings: SettingsDep,
    caches: CachesDep,
    body: Annotated[RunRequest | None, Body()] = None,
) -> Run:
    """Run ingestion then inference; returns the run record."""
    try:
        result = run_pipeline(invoker, runs, settings, body or RunRequest())
    finally:
        caches.invalidate()
    return Run.model_validate(runs.record(result["run_id"]))


@router.get("/runs", response_model=RunsResponse)
def list_runs(
    runs: RunsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RunsResponse:
    """Runs, newest first."""
    return RunsResponse(runs=[Run.model_validate(r) for r in runs.list(limit)])


@router.get("/runs/{run_id}", response_model=Run, responses={404: {"model": ErrorResponse}})
def get_run(run_id: RunIdPath, runs: RunsDep) -> Run:
    """One run (404 if unknown)."""
    return Run.model_validate(runs.record(run_id))
