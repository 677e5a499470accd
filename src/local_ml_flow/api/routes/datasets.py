"""Datasets: register a CSV and its new versions, train on it, read its runs, predict.

The built-in ``housing`` is one of them: its pages here read what ``/pipeline``, ``/predict``
and ``/bucket`` serve (the same run log, pointer and model).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Form, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from local_ml_flow import datasets, pipeline, registry, reproduce, retention
from local_ml_flow.api import responses
from local_ml_flow.api.caches import Caches, DatasetCaches, ServedModel
from local_ml_flow.api.dataset_pages import DatasetPages
from local_ml_flow.api.deps import InvokerDep, RunsDep, SettingsDep, StoreDep
from local_ml_flow.api.routes.runs import (
    BUNDLE_RESPONSE,
    REPRODUCE_ERRORS,
    ByQuery,
    CursorQuery,
    LimitQuery,
    RunIdPath,
    StatusQuery,
    bundle_response,
    limits,
    runs_page,
)
from local_ml_flow.api.schemas import (
    CurrentRun,
    DatasetDetail,
    DatasetList,
    DatasetPredictions,
    DatasetPredictRequest,
    DatasetPredictResponse,
    DatasetRegistered,
    DatasetRunRequest,
    DatasetSummary,
    DatasetVersionInfo,
    DeletedResponse,
    MainMetric,
    PredictRequest,
    PromotionsResponse,
    ReproductionsResponse,
    Run,
    RunsResponse,
)
from local_ml_flow.api.starts import sampled, start
from local_ml_flow.errors import (
    InvalidRequestError,
    LocalMlFlowError,
    NoModelError,
    UploadTooLargeError,
)
from local_ml_flow.events import (
    DATASET_NAME_PATTERN,
    HOUSING,
    IngestEvent,
    valid_dataset_name,
)
from local_ml_flow.ml import dataset, tabular
from local_ml_flow.ml import model as ml_model
from local_ml_flow.ml.kinds import CLASSIFICATION, DEFAULT_MODEL, MODEL_KINDS, MODELS_BY_TASK
from local_ml_flow.runlog import Pointer, RunLog
from local_ml_flow.runner import Options
from local_ml_flow.storage import ArtifactStore, gather

router = APIRouter(prefix="/datasets", tags=["datasets"])

NamePath = Annotated[
    str,
    Path(
        description="the dataset's name: 1-64 characters of a-z, 0-9, '_' and '-'",
        pattern=DATASET_NAME_PATTERN,
        max_length=64,
        examples=["iris"],
    ),
]


def _name(name: str) -> str:
    """The name, matched whole (the path pattern's ``$`` lets a trailing newline through)."""
    if not valid_dataset_name(name):
        raise InvalidRequestError(
            f"dataset name {name[:80]!r} is invalid: use 1-64 characters of a-z, 0-9, '_' and '-'"
        )
    return name


def _log(runs: RunLog, store: ArtifactStore, name: str) -> tuple[RunLog, Any]:
    """The run log of a dataset and its document (None for housing); 404 for an unknown
    dataset."""
    _name(name)
    if name == HOUSING:
        return runs, None
    document = registry.get(store, name)  # first: no run log is made for an unknown name
    return runs.of_dataset(name), document


def _current(log: RunLog, *, features: bool = False) -> CurrentRun | None:
    """The dataset's current run and its main metric (None: nothing promoted yet)."""
    pointer: Pointer | None = log.latest()
    if pointer is None:
        return None
    scored = log.metrics(pointer.run_id)
    metric = MainMetric(name=scored.main[0], value=scored.main[1]) if scored else None
    columns = None
    if features:
        manifest = log.manifest(pointer.run_id)
        encoding = manifest.encoding
        columns = [c.name for c in encoding.columns] if encoding else list(dataset.HOUSE_COLUMNS)
    return CurrentRun(run_id=pointer.run_id, metric=metric, features=columns)


def _housing_summary(request: Request, runs: RunLog, store: ArtifactStore) -> DatasetSummary:
    pages: DatasetPages = request.app.state.dataset_pages
    try:
        index, _ = pages.page(0, 0)
        rows: int | None = index.rows
        digest: str | None = index.sha256 or None
    except LocalMlFlowError:  # no housing.csv yet, or one that cannot be read
        rows, digest = None, None
    return DatasetSummary(
        name=HOUSING,
        task="regression",
        target=dataset.TARGET,
        sha256=digest,
        rows=rows,
        builtin=True,
        current_run=_current_or_none(runs),
    )


def _current_or_none(log: RunLog, *, features: bool = False) -> CurrentRun | None:
    """The current run, or None when it cannot be read (a listing shows the others)."""
    try:
        return _current(log, features=features)
    except LocalMlFlowError:
        return None


def _summary(
    document: registry.DatasetDocument | registry.Unreadable, log: RunLog
) -> DatasetSummary:
    if isinstance(document, registry.Unreadable):
        return _unreadable(document)
    return DatasetSummary(
        name=document.name,
        task=document.task,
        target=document.target,
        sha256=document.sha256,
        rows=document.rows,
        builtin=False,
        current_run=_current_or_none(log),
    )


@router.get("", response_model=DatasetList, responses=responses.errors(*responses.READ))
def list_datasets(request: Request, runs: RunsDep, store: StoreDep) -> DatasetList:
    """Every dataset: the built-in housing first, then the registered ones by name."""
    documents = registry.documents(store)
    summaries = gather(
        lambda: _housing_summary(request, runs, store),
        *(lambda d=d: _summary(d, runs.of_dataset(d.name)) for d in documents),
    )
    return DatasetList(datasets=summaries)


def _unreadable(broken: registry.Unreadable) -> DatasetSummary:
    return DatasetSummary(
        name=broken.name,
        task=None,
        target=None,
        sha256=None,
        rows=None,
        builtin=False,
        current_run=None,
        error=broken.error,
    )


@router.get(
    "/{name}", response_model=DatasetDetail, responses=responses.errors(*responses.READ, 404, 422)
)
def get_dataset(name: NamePath, request: Request, runs: RunsDep, store: StoreDep) -> DatasetDetail:
    """One dataset: its schema, current version, version history and current run."""
    log, document = _log(runs, store, name)
    if document is None:
        summary = _housing_summary(request, runs, store)
        schema = dataset.declared_schema()
        versions = [
            DatasetVersionInfo(
                sha256=a.sha256,
                rows=None,
                accepted_at=a.archived_at,
                schema_sha256=schema.structure_sha256(),
                current=a.current,
            )
            for a in datasets.history(store)
        ]
        return DatasetDetail(
            **summary.model_dump(exclude={"current_run"}),
            current_run=_current_or_none(log, features=True),
            schema_=schema,
            versions=versions,
            model_kinds=list(MODEL_KINDS),
            default_model=DEFAULT_MODEL["regression"],
        )
    return DatasetDetail(
        **_summary(document, log).model_dump(exclude={"current_run"}),
        current_run=_current_or_none(log, features=True),
        schema_=document.schema,
        versions=[
            DatasetVersionInfo(
                sha256=v.sha256,
                rows=v.rows,
                accepted_at=v.accepted_at,
                schema_sha256=v.schema_sha256,
                current=v.sha256 == document.sha256 and i == len(document.versions) - 1,
                deleted_at=v.deleted_at,
            )
            for i, v in reversed(list(enumerate(document.versions)))
        ],
        model_kinds=list(MODELS_BY_TASK[document.task]),
        default_model=DEFAULT_MODEL[document.task],
    )


@router.put(
    "/{name}",
    response_model=DatasetRegistered,
    responses=responses.errors(*responses.WRITE, 409),
)
async def put_dataset(
    name: NamePath,
    store: StoreDep,
    settings: SettingsDep,
    file: Annotated[bytes, File(description="the CSV (a header line, then one row per line)")],
    target: Annotated[
        str | None,
        Form(description="the column to predict (required for a new dataset)", max_length=200),
    ] = None,
    task: Annotated[
        Literal["regression", "classification"] | None,
        Form(description="absent: inferred (a numeric target with many values: regression)"),
    ] = None,
    schema: Annotated[
        Literal["keep", "replace"],
        Query(description="replace: accept a changed schema on purpose (inferred again)"),
    ] = "keep",
) -> DatasetRegistered:
    """Register a dataset from a CSV, or add a new version (validated against its schema:
    every problem listed, nothing changed on a refusal)."""
    _name(name)
    if len(file) > settings.max_upload_bytes:
        raise UploadTooLargeError(
            f"upload is larger than the limit of {settings.max_upload_bytes} bytes"
        )
    registered = await run_in_threadpool(
        registry.add,
        store,
        name,
        file,
        target=target or None,
        task=task,
        replace_schema=schema == "replace",
        max_bytes=min(settings.max_upload_bytes, settings.max_dataset_bytes),
        max_rows=settings.max_dataset_rows,
    )
    document = registered.document
    return DatasetRegistered(
        name=document.name,
        sha256=document.sha256,
        rows=document.rows,
        task=document.task,
        target=document.target,
        schema_=document.schema,
        created=registered.created,
    )


@router.get(
    "/{name}/runs", response_model=RunsResponse, responses=responses.errors(*responses.READ, 404)
)
def list_dataset_runs(
    name: NamePath,
    runs: RunsDep,
    store: StoreDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: StatusQuery = None,
) -> RunsResponse:
    """A dataset's runs, newest first, a page at a time (`next_cursor`)."""
    log, _ = _log(runs, store, name)
    return runs_page(log, limit, cursor, status)


@router.get(
    "/{name}/promotions",
    response_model=PromotionsResponse,
    responses=responses.errors(*responses.READ, 404),
)
def list_dataset_promotions(
    name: NamePath,
    runs: RunsDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PromotionsResponse:
    """What served when, and why: a dataset's promotions, newest first."""
    log, _ = _log(runs, store, name)
    return PromotionsResponse.model_validate(
        {"promotions": log.promotions(limit)}, from_attributes=True
    )


def _options(
    name: str, body: DatasetRunRequest, document: registry.DatasetDocument | None, settings: Any
) -> Options:
    """The run's options for its dataset, checked before anything is queued (422)."""
    event = IngestEvent(dataset=name, **body.model_dump())  # the checks of a Lambda event
    if document is None:
        return event.options()
    options = event.tabular_options()
    pipeline.tabular_parameters(options, document, settings.run_defaults())  # 422 if wrong
    return options


@router.post(
    "/{name}/runs",
    status_code=201,
    response_model=Run,
    responses={
        202: {
            "model": Run,
            "description": "started without waiting (`?wait=false` or `Prefer: respond-async`)",
        },
        **responses.errors(*responses.WRITE, 404, 409),
    },
)
def start_dataset_run(
    name: NamePath,
    request: Request,
    response: Response,
    runs: RunsDep,
    store: StoreDep,
    invoker: InvokerDep,
    settings: SettingsDep,
    body: Annotated[DatasetRunRequest | None, Body()] = None,
    wait: Annotated[bool, Query(description="false: answer 202 at once")] = True,
    prefer: Annotated[str | None, Header(description="`respond-async`: as `wait=false`")] = None,
    by: ByQuery = "api",
) -> Run:
    """Train on the dataset's current version (ingestion then inference), make the run
    current; 201 with the run, or 202 at once with `?wait=false`."""
    log, document = _log(runs, store, name)
    options = _options(name, body or DatasetRunRequest(), document, settings)
    caches = _caches(request).of(log)
    asynchronous = not wait or (prefer is not None and "respond-async" in prefer.lower())
    return start(request, response, log, invoker, settings, caches, options, asynchronous, by)


@router.get(
    "/{name}/runs/{run_id}",
    response_model=Run,
    responses=responses.errors(*responses.READ, 404),
)
def get_dataset_run(name: NamePath, run_id: RunIdPath, runs: RunsDep, store: StoreDep) -> Run:
    """One run of a dataset."""
    log, _ = _log(runs, store, name)
    return Run.model_validate(log.record(run_id))


@router.get(
    "/{name}/runs/{run_id}/bundle",
    response_class=Response,
    responses={**BUNDLE_RESPONSE, **responses.errors(*responses.READ, 404, 422)},
)
def get_dataset_run_bundle(
    name: NamePath, run_id: RunIdPath, runs: RunsDep, store: StoreDep, settings: SettingsDep
) -> Response:
    """A succeeded run of a dataset as one file (`POST /pipeline/runs/import` imports it)."""
    log, _ = _log(runs, store, name)
    return bundle_response(log, run_id, settings.max_dataset_bytes)


@router.get(
    "/{name}/runs/{run_id}/predictions",
    response_model=DatasetPredictions,
    responses=responses.errors(*responses.READ, 404, 409, only={409: ("NoModelError",)}),
)
def get_dataset_predictions(
    name: NamePath,
    run_id: RunIdPath,
    runs: RunsDep,
    store: StoreDep,
    max_points: Annotated[int | None, Query(ge=2, le=1_000_000)] = None,
) -> DatasetPredictions:
    """A scored run's test split: actual and predicted values (labels for classification,
    with the confusion matrix and ROC curves)."""
    log, _ = _log(runs, store, name)
    stored = log.predictions(run_id)
    y_true: list[Any] = stored.y_true
    y_pred: list[Any] = stored.y_pred
    labels = stored.labels
    if labels is not None:  # class indices, checked within the labels when read
        y_true = [labels[int(v)] for v in y_true]
        y_pred = [labels[int(v)] for v in y_pred]
    y_true, y_pred = sampled(y_true, y_pred, max_points)
    return DatasetPredictions(
        run_id=stored.run_id,
        task="classification" if labels is not None else "regression",
        y_true=y_true,
        y_pred=y_pred,
        n_test=len(stored.y_true),
        evaluated_at=stored.evaluated_at,
        labels=labels,
        confusion=stored.confusion,
        roc=stored.roc,
    )


@router.post(
    "/{name}/runs/{run_id}/promote",
    response_model=Run,
    responses=responses.errors(
        400, 403, 404, 409, 502, 503, only={409: ("PromotionRefusedError", "ConcurrentUpdateError")}
    ),
)
async def promote_dataset_run(
    name: NamePath,
    run_id: RunIdPath,
    request: Request,
    runs: RunsDep,
    store: StoreDep,
    by: ByQuery = "api",
) -> Run:
    """Make a succeeded run of the dataset current again (rollback)."""
    log, _ = await run_in_threadpool(_log, runs, store, name)
    caches = _caches(request).of(log)
    try:
        await run_in_threadpool(pipeline.make_current, log, run_id, by)
    finally:
        caches.invalidate()
    return Run.model_validate(await run_in_threadpool(log.record, run_id))


@router.delete(
    "/{name}/runs/{run_id}",
    response_model=DeletedResponse,
    responses=responses.errors(400, 403, 404, 409, 502, 503, only={409: ("RunInUseError",)}),
)
async def delete_dataset_run(
    name: NamePath, run_id: RunIdPath, request: Request, runs: RunsDep, store: StoreDep
) -> DeletedResponse:
    """Delete a run of the dataset, and the versions no remaining run was trained on."""
    log, _ = await run_in_threadpool(_log, runs, store, name)
    caches = _caches(request).of(log)
    try:
        freed = await run_in_threadpool(retention.delete, log, run_id)
    finally:
        caches.invalidate()
    return DeletedResponse.model_validate(freed.answer())


@router.put(
    "/{name}/runs/{run_id}/pin",
    response_model=Run,
    responses=responses.errors(400, 403, 404, 502, 503),
)
async def pin_dataset_run(name: NamePath, run_id: RunIdPath, runs: RunsDep, store: StoreDep) -> Run:
    """Pin a run of the dataset: no deletion removes it."""
    log, _ = await run_in_threadpool(_log, runs, store, name)
    return Run.model_validate(await run_in_threadpool(retention.pin, log, run_id, True))


@router.delete(
    "/{name}/runs/{run_id}/pin",
    response_model=Run,
    responses=responses.errors(400, 403, 404, 502, 503),
)
async def unpin_dataset_run(
    name: NamePath, run_id: RunIdPath, runs: RunsDep, store: StoreDep
) -> Run:
    """Unpin a run of the dataset."""
    log, _ = await run_in_threadpool(_log, runs, store, name)
    return Run.model_validate(await run_in_threadpool(retention.pin, log, run_id, False))


@router.post(
    "/{name}/runs/{run_id}/reproduce",
    response_model=reproduce.Reproduction,
    responses=REPRODUCE_ERRORS,
)
def reproduce_dataset_run(
    name: NamePath, run_id: RunIdPath, runs: RunsDep, store: StoreDep, settings: SettingsDep
) -> reproduce.Reproduction:
    """Train a run of the dataset again and say whether it is `identical` (as
    `POST /pipeline/runs/{run_id}/reproduce`)."""
    log, _ = _log(runs, store, name)
    return reproduce.reproduce(log, run_id, limits(settings))


@router.get(
    "/{name}/runs/{run_id}/reproductions",
    response_model=ReproductionsResponse,
    responses=responses.errors(*responses.READ, 404),
)
def list_dataset_reproductions(
    name: NamePath,
    run_id: RunIdPath,
    runs: RunsDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> ReproductionsResponse:
    """A run's reproductions, newest first."""
    log, _ = _log(runs, store, name)
    return ReproductionsResponse(reproductions=reproduce.reproductions(log, run_id, limit))


def _caches(request: Request) -> DatasetCaches:
    caches: DatasetCaches = request.app.state.dataset_caches
    return caches


@router.post(
    "/{name}/predict",
    response_model=DatasetPredictResponse,
    responses=responses.errors(
        *responses.WRITE, 404, 409, only={409: ("NoModelError", "ModelVersionError")}
    ),
)
async def predict_dataset(
    name: NamePath,
    request: Request,
    runs: RunsDep,
    store: StoreDep,
    body: Annotated[DatasetPredictRequest, Body()],
) -> DatasetPredictResponse:
    """Predict with the dataset's current model: `{"rows": [{column: value}]}`, without the
    target; a `null` value is filled as in training."""
    _name(name)
    all_caches = _caches(request)
    if name == HOUSING:
        return await _predict_housing(all_caches.housing, body)
    if not all_caches.has(name):  # caches are made for registered datasets only: 404 first
        await run_in_threadpool(registry.get, store, name)
    try:
        served = await all_caches.of(runs.of_dataset(name)).model()
    except NoModelError:
        await run_in_threadpool(registry.get, store, name)  # deleted meanwhile: 404
        raise
    return _predict(served, body)


async def _predict_housing(caches: Caches, body: DatasetPredictRequest) -> DatasetPredictResponse:
    try:
        houses = PredictRequest.model_validate({"houses": body.rows})
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", "rows", *error["loc"][1:])} for error in exc.errors()]
        ) from None
    served = await caches.model()
    x = dataset.encode_houses([h.model_dump() for h in houses.houses], served.feature_set)
    return DatasetPredictResponse(
        run_id=served.run_id, predictions=served.predictor.predict(x).tolist()
    )


def _predict(served: ServedModel, body: DatasetPredictRequest) -> DatasetPredictResponse:
    manifest = served.manifest
    if manifest is None or manifest.dataset_schema is None or manifest.encoding is None:
        raise NoModelError(f"run {served.run_id!r} has no schema to check rows against")
    x = tabular.encode_rows(body.rows, manifest.dataset_schema, manifest.encoding)
    model: Any = served.predictor
    if manifest.task != CLASSIFICATION:
        return DatasetPredictResponse(
            run_id=served.run_id, predictions=ml_model.predict(model, x).tolist()
        )
    labels = manifest.labels or []
    proba = model.predict_proba(x)
    return DatasetPredictResponse(
        run_id=served.run_id,
        predictions=[labels[int(i)] for i in proba.argmax(axis=1)],
        probabilities=[
            {str(label): float(p) for label, p in zip(labels, row, strict=True)} for row in proba
        ],
    )
