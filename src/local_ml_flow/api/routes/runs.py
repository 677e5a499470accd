"""Pipeline runs: start one (ingestion then inference), list them, read one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from local_ml_flow import pipeline, runs
from local_ml_flow.api.deps import CachesDep, InvokerDep, SettingsDep, StoreDep
from local_ml_flow.api.schemas import ErrorResponse, Run, RunRequest, RunsResponse
from local_ml_flow.errors import InvalidRequestError

router = APIRouter(prefix="/pipeline", tags=["pipeline"])

RunId = Annotated[str, Path(pattern=pipeline.RUN_ID_RE.pattern, max_length=100)]


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
    store: StoreDep,
    invoker: InvokerDep,
    settings: SettingsDep,
    caches: CachesDep,
    body: Annotated[RunRequest | None, Body()] = None,
) -> Run:
    """Run ingestion then inference; returns the run record."""
    parameters = (body or RunRequest()).model_dump()
    try:
        result = runs.execute(invoker, store, settings, parameters)
    finally:
        caches.invalidate()
    return Run.model_validate(pipeline.run_record(store, result["run_id"]))


@router.get("/runs", response_model=RunsResponse)
def list_runs(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RunsResponse:
    """Runs, newest first."""
    return RunsResponse(runs=[Run.model_validate(r) for r in pipeline.list_runs(store, limit)])


@router.get("/runs/{run_id}", response_model=Run, responses={404: {"model": ErrorResponse}})
def get_run(run_id: RunId, store: StoreDep) -> Run:
    """One run (404 if unknown)."""
    if ".." in run_id:
        raise InvalidRequestError(f"run_id {run_id!r} is invalid")
    return Run.model_validate(pipeline.run_record(store, run_id))
