"""The dashboard at /ui: runs, a run, compare, dataset, predict (HTML; data from the API)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from local_ml_flow import datasets, pipeline
from local_ml_flow.api import pages
from local_ml_flow.api.dataset_pages import DatasetPages
from local_ml_flow.api.deps import RunsDep, StoreDep
from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from local_ml_flow.errors import InvalidRequestError, LocalMlFlowError
from local_ml_flow.events import RunId
from local_ml_flow.ml import dataset, model
from local_ml_flow.runindex import Cursor
from local_ml_flow.storage import ArtifactStore

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_ROWS = 20
SUMMARY_MAX_BYTES = 5 * 1024 * 1024  # a column summary reads the whole file: small ones only


@router.get("", response_class=HTMLResponse)
def runs_page(
    runs: RunsDep,
    status: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    """A page of runs (newest first), of a status if chosen; "older runs" links the next."""
    chosen = status if status in pages.STATUSES else None
    records, after = runs.page(limit, Cursor.decode(cursor) if cursor else None, chosen)
    following = after.encode() if after is not None else None
    return HTMLResponse(pages.runs_page(records, chosen, limit, following, cursor is not None))


@router.get("/", include_in_schema=False)
def runs_page_slash() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: RunId, runs: RunsDep) -> HTMLResponse:
    record = runs.record(run_id)
    train: dict[str, Any] | None = None
    weights: tuple[str, list[tuple[str, float]]] | None = None
    note = None
    if record.get("model_sha256"):
        try:
            loaded = pipeline.load_model(runs, run_id)
            info = loaded.manifest
            train = info.train_metrics.model_dump()
            found = model.weights(loaded.model)
            if found is not None and len(found[1]) == len(info.features):
                weights = (found[0], list(zip(info.features, found[1], strict=True)))
        except LocalMlFlowError as exc:
            note = f"model details unavailable: {exc.message}"
    return HTMLResponse(pages.run_page(record, train, weights, note))


@router.get("/compare", response_class=HTMLResponse)
def compare_page(runs: RunsDep, run: Annotated[list[RunId], Query()]) -> HTMLResponse:
    chosen = list(dict.fromkeys(run))
    if not 2 <= len(chosen) <= 4:
        raise InvalidRequestError(f"choose 2 to 4 runs to compare, not {len(chosen)}")
    return HTMLResponse(pages.compare_page([runs.record(r) for r in chosen]))


@router.get("/dataset", response_class=HTMLResponse)
def dataset_page(
    request: Request,
    store: StoreDep,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    dataset_pages: DatasetPages = request.app.state.dataset_pages
    index, rows = dataset_pages.page(offset, PAGE_ROWS)
    history = [asdict(a) for a in datasets.history(store)]
    for version in history:  # a seeded file has no sha256 metadata: the index hashed it
        version["current"] = version["current"] or version["sha256"] == index.sha256
    summary: dict[str, Any] = {
        "bucket": store.data_bucket,
        "key": store.dataset_key,
        "sha256": index.sha256,
    }
    summary["columns"] = _column_summary(store, index.size)
    page = {
        "offset": offset,
        "limit": PAGE_ROWS,
        "row_count": index.rows,
        "values": [dict(zip(index.header, row, strict=False)) for row in rows],
    }
    return HTMLResponse(pages.dataset_page(summary, page, history))


@router.get("/predict", response_class=HTMLResponse)
def predict_page(runs: RunsDep) -> HTMLResponse:
    pointer = runs.latest()
    return HTMLResponse(pages.predict_page(EXAMPLE_HOUSE, pointer.run_id if pointer else None))


def _column_summary(store: ArtifactStore, size: int) -> dict[str, str]:
    """Each column's range or counts, for a dataset small enough to read whole."""
    if size > SUMMARY_MAX_BYTES:
        return {}
    blob = store.read(store.data_bucket, store.dataset_key)
    try:
        frame = dataset.parse_csv(blob.data, max_bytes=SUMMARY_MAX_BYTES, max_rows=10**6)
    except LocalMlFlowError:
        return {}  # an invalid file: its rows are still shown, and runs will say why
    return dataset.column_summary(frame)
