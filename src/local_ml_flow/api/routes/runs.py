"""Pipeline runs: start one (ingestion then inference), list them, read one, its test
predictions, and make one current (rollback)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Header, Path, Query, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from local_ml_flow import bundle, pipeline, registry, reproduce, retention
from local_ml_flow.api import responses
from local_ml_flow.api.deps import CachesDep, InvokerDep, RunsDep, SettingsDep, StoreDep
from local_ml_flow.api.schemas import (
    RUN_REQUEST_EXAMPLES,
    DeletedResponse,
    PredictionsResponse,
    PromotionsResponse,
    ReproductionsResponse,
    Run,
    RunRequest,
    RunsResponse,
)
from local_ml_flow.api.starts import sampled, start
from local_ml_flow.errors import UploadTooLargeError
from local_ml_flow.events import DATASET_NAME_PATTERN, HOUSING, RunId
from local_ml_flow.runindex import Cursor
from local_ml_flow.runlog import RunLog

router = APIRouter(prefix="/pipeline", tags=["pipeline"])

RunIdPath = Annotated[RunId, Path(description="a run id", examples=["20260101T120000Z-3f2a9c1b"])]
# Who asks, for the promotion log: what the caller says (the dashboard sends `dashboard`),
# a label and not an identity (the API has no authentication).
ByQuery = Annotated[
    Literal["api", "dashboard"],
    Query(description="who asks, for the promotion log: `api` (default) or `dashboard`"),
]

LimitQuery = Annotated[int, Query(ge=1, le=500, description="at most this many runs")]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=512,
        description="the `next_cursor` of the previous page (older runs); none: the newest",
    ),
]
StatusQuery = Annotated[
    Literal["queued", "running", "succeeded", "failed", "corrupt"] | None,
    Query(description="only the runs of this status"),
]


def runs_page(log: RunLog, limit: int, cursor: str | None, status: str | None) -> RunsResponse:
    """A page of a run log's runs, newest first, and the cursor of the next (422 for a
    cursor this API did not give)."""
    records, after = log.page(limit, Cursor.decode(cursor) if cursor else None, status)
    return RunsResponse(
        runs=[Run.model_validate(r) for r in records],
        next_cursor=after.encode() if after is not None else None,
    )


@router.post(
    "/runs",
    status_code=201,
    response_model=Run,
    responses={
        202: {
            "model": Run,
            "description": "started without waiting (`?wait=false` or `Prefer: respond-async`):"
            " the run as queued; `Location` is where to follow it",
            "headers": {"Location": {"description": "the run", "schema": {"type": "string"}}},
        },
        **responses.errors(*responses.WRITE, 409),
    },
)
def start_run(
    request: Request,
    response: Response,
    runs: RunsDep,
    invoker: InvokerDep,
    settings: SettingsDep,
    caches: CachesDep,
    body: Annotated[RunRequest | None, Body(openapi_examples=RUN_REQUEST_EXAMPLES)] = None,
    wait: Annotated[
        bool,
        Query(description="false: answer 202 at once and run in the background"),
    ] = True,
    prefer: Annotated[
        str | None,
        Header(description="`respond-async`: the same as `wait=false` (RFC 7240)"),
    ] = None,
    by: ByQuery = "api",
) -> Run:
    """Run ingestion then inference and make the run current; returns the run record (201).

    Without waiting the answer is 202 with the queued run and a `Location` to poll:
    its status goes queued -> running -> succeeded (or failed)."""
    options = body or RunRequest()
    asynchronous = not wait or (prefer is not None and "respond-async" in prefer.lower())
    return start(request, response, runs, invoker, settings, caches, options, asynchronous, by)


@router.get("/runs", response_model=RunsResponse, responses=responses.errors(*responses.READ, 404))
def list_runs(
    runs: RunsDep,
    store: StoreDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: StatusQuery = None,
    dataset: Annotated[
        str | None,
        Query(pattern=DATASET_NAME_PATTERN, description="only the runs of this dataset"),
    ] = None,
) -> RunsResponse:
    """Runs, newest first, a page at a time: `next_cursor` asks for the next page. Housing's
    unless `dataset` names another (the same as `GET /datasets/{name}/runs`)."""
    log = runs
    if dataset is not None and dataset != HOUSING:
        registry.get(store, dataset)  # 404 for an unknown dataset
        log = runs.of_dataset(dataset)
    return runs_page(log, limit, cursor, status)


@router.get(
    "/promotions", response_model=PromotionsResponse, responses=responses.errors(*responses.READ)
)
def list_promotions(
    runs: RunsDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> PromotionsResponse:
    """What served when, and why: housing's promotions, newest first."""
    return PromotionsResponse.model_validate(
        {"promotions": runs.promotions(limit)}, from_attributes=True
    )


@router.get("/runs/{run_id}", response_model=Run, responses=responses.errors(*responses.READ, 404))
def get_run(run_id: RunIdPath, runs: RunsDep) -> Run:
    """One run (404 if unknown)."""
    return Run.model_validate(runs.record(run_id))


@router.get(
    "/runs/{run_id}/predictions",
    response_model=PredictionsResponse,
    responses=responses.errors(*responses.READ, 404, 409, only={409: ("NoModelError",)}),
)
def get_predictions(
    run_id: RunIdPath,
    runs: RunsDep,
    max_points: Annotated[
        int | None,
        Query(
            ge=2,
            le=1_000_000,
            description="at most this many rows, evenly spaced through the test split (a"
            " chart of a large run needs no more than a few thousand)",
        ),
    ] = None,
) -> PredictionsResponse:
    """A scored run's test split: actual (`y_true`) and predicted (`y_pred`) prices; 409 for a
    run not scored."""
    stored = runs.predictions(run_id)
    n = len(stored.y_true)
    y_true, y_pred = sampled(stored.y_true, stored.y_pred, max_points)
    return PredictionsResponse(
        run_id=stored.run_id,
        y_true=y_true,
        y_pred=y_pred,
        n_test=n,
        evaluated_at=stored.evaluated_at,
    )


@router.post(
    "/runs/{run_id}/promote",
    response_model=Run,
    responses=responses.errors(
        400, 403, 404, 409, 502, 503, only={409: ("PromotionRefusedError", "ConcurrentUpdateError")}
    ),
)
async def promote_run(
    run_id: RunIdPath, runs: RunsDep, caches: CachesDep, by: ByQuery = "api"
) -> Run:
    """Make a succeeded run current again (rollback): /predict and /result serve it next.
    A queued, running, failed, corrupt or non-finite run is refused (409)."""
    try:
        await run_in_threadpool(pipeline.make_current, runs, run_id, by)
    finally:
        caches.invalidate()
    return Run.model_validate(await run_in_threadpool(runs.record, run_id))


@router.delete(
    "/runs/{run_id}",
    response_model=DeletedResponse,
    responses=responses.errors(400, 403, 404, 409, 502, 503, only={409: ("RunInUseError",)}),
)
async def delete_run(run_id: RunIdPath, runs: RunsDep, caches: CachesDep) -> DeletedResponse:
    """Delete a run: its files in both buckets, and the dataset versions no remaining run was
    trained on. 409 for the current run, a run in flight or a pinned run."""
    try:
        freed = await run_in_threadpool(retention.delete, runs, run_id)
    finally:
        caches.invalidate()
    return DeletedResponse.model_validate(freed.answer())


@router.put(
    "/runs/{run_id}/pin",
    response_model=Run,
    responses=responses.errors(400, 403, 404, 502, 503),
)
async def pin_run(run_id: RunIdPath, runs: RunsDep) -> Run:
    """Pin a run: no deletion, asked or by retention (`LMF_KEEP_RUNS`), removes it."""
    return Run.model_validate(await run_in_threadpool(retention.pin, runs, run_id, True))


@router.delete(
    "/runs/{run_id}/pin",
    response_model=Run,
    responses=responses.errors(400, 403, 404, 502, 503),
)
async def unpin_run(run_id: RunIdPath, runs: RunsDep) -> Run:
    """Unpin a run."""
    return Run.model_validate(await run_in_threadpool(retention.pin, runs, run_id, False))


BUNDLE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {bundle.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "description": "the run as one zip: bundle.json (every member's sha256), its documents,"
        " model (skops), test split (.npy) and the dataset version it trained on",
    }
}


def bundle_response(log: RunLog, run_id: str, max_dataset_bytes: int) -> Response:
    """A run's bundle as a download (``run-<id>.zip``)."""
    data = bundle.export(log, run_id, max_dataset_bytes=max_dataset_bytes)
    disposition = f'attachment; filename="{bundle.file_name(run_id)}"'
    return Response(
        data, media_type=bundle.MEDIA_TYPE, headers={"Content-Disposition": disposition}
    )


@router.get(
    "/runs/{run_id}/bundle",
    response_class=Response,
    responses={**BUNDLE_RESPONSE, **responses.errors(*responses.READ, 404, 422)},
)
def get_bundle(run_id: RunIdPath, runs: RunsDep, settings: SettingsDep) -> Response:
    """A succeeded run as one file, to import elsewhere (`POST /pipeline/runs/import`)."""
    return bundle_response(runs, run_id, settings.max_dataset_bytes)


@router.post(
    "/runs/import",
    status_code=201,
    response_model=Run,
    responses=responses.errors(*responses.WRITE, 404, 409),
)
async def import_run(
    runs: RunsDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="a run's bundle (GET .../runs/{run_id}/bundle)")],
) -> Run:
    """Import a run's bundle (every member's sha256 checked, nothing unpickled): the run is
    listed as succeeded, not current; promoting it checks that it can be served here."""
    limit = settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLargeError(f"upload is larger than the limit of {limit} bytes")
    record = await run_in_threadpool(
        bundle.import_bundle, runs, data, max_bytes=limit + settings.max_dataset_bytes
    )
    return Run.model_validate(record)


REPRODUCE_ERRORS = responses.errors(
    400, 403, 404, 409, 413, 502, 503, only={409: ("NoModelError",)}
)


def limits(settings: SettingsDep) -> pipeline.Limits:
    return pipeline.Limits(settings.max_dataset_bytes, settings.max_dataset_rows)


@router.post(
    "/runs/{run_id}/reproduce", response_model=reproduce.Reproduction, responses=REPRODUCE_ERRORS
)
def reproduce_run(
    run_id: RunIdPath, runs: RunsDep, settings: SettingsDep
) -> reproduce.Reproduction:
    """Train the run again from its archived dataset version, parameters and seed, and say
    whether it is `identical`: the same model bytes (sha256) and the same test predictions,
    bit for bit; otherwise what differs. Kept under the run; the run itself never changes."""
    return reproduce.reproduce(runs, run_id, limits(settings))


@router.get(
    "/runs/{run_id}/reproductions",
    response_model=ReproductionsResponse,
    responses=responses.errors(*responses.READ, 404),
)
def list_reproductions(
    run_id: RunIdPath, runs: RunsDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> ReproductionsResponse:
    """A run's reproductions, newest first."""
    return ReproductionsResponse(reproductions=reproduce.reproductions(runs, run_id, limit))
