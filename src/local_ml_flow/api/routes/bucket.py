"""Buckets, model artifacts and the dataset."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from local_ml_flow import datasets
from local_ml_flow.api import responses
from local_ml_flow.api.dataset_pages import DatasetPages
from local_ml_flow.api.deps import SettingsDep, StoreDep
from local_ml_flow.api.schemas import (
    BucketsResponse,
    DatasetResponse,
    DatasetsResponse,
    DatasetUploadResponse,
    DatasetVersion,
    ModelObject,
    ModelsResponse,
)
from local_ml_flow.errors import UploadTooLargeError

router = APIRouter(prefix="/bucket", tags=["buckets"])


@router.get(
    "/get-all-buckets", response_model=BucketsResponse, responses=responses.errors(*responses.READ)
)
def get_all_buckets(store: StoreDep) -> BucketsResponse:
    """Every bucket."""
    return BucketsResponse(buckets=store.list_buckets())


@router.get(
    "/get-all-models", response_model=ModelsResponse, responses=responses.errors(*responses.READ)
)
def get_all_models(store: StoreDep) -> ModelsResponse:
    """Every model artifact (``*.joblib``) in the models bucket, latest and per run."""
    objects = store.list_objects(store.models_bucket)
    return ModelsResponse(
        models=[
            ModelObject(bucket=o.bucket, model=o.key, size=o.size, last_modified=o.last_modified)
            for o in objects
            if o.key.endswith(".joblib")
        ]
    )


@router.get(
    "/dataset",
    response_model=DatasetResponse,
    responses=responses.errors(*responses.READ, 404, 422),
)
def get_dataset(
    request: Request,
    store: StoreDep,
    limit: Annotated[int, Query(ge=0, le=1000, description="rows to return")] = 20,
    offset: Annotated[int, Query(ge=0, description="rows to skip")] = 0,
) -> DatasetResponse:
    """The current dataset: row count and a page of rows."""
    pages: DatasetPages = request.app.state.dataset_pages
    index, rows = pages.page(offset, limit)
    header, count = index.header, index.rows
    return DatasetResponse(
        dataset_name=store.dataset_key.rsplit("/", 1)[-1],
        bucket=store.data_bucket,
        key=store.dataset_key,
        row_count=count,
        offset=offset,
        limit=limit,
        values=[dict(zip(header, row, strict=False)) for row in rows],
    )


@router.get(
    "/datasets", response_model=DatasetsResponse, responses=responses.errors(*responses.READ)
)
def get_datasets(store: StoreDep) -> DatasetsResponse:
    """Every accepted dataset (the archive, keyed by sha256), newest first."""
    return DatasetsResponse(datasets=[DatasetVersion(**asdict(a)) for a in datasets.history(store)])


@router.put(
    "/dataset",
    response_model=DatasetUploadResponse,
    responses=responses.errors(*responses.WRITE),
)
async def put_dataset(
    store: StoreDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="housing CSV (13 columns, header first)")],
) -> DatasetUploadResponse:
    """Validate a CSV, archive it and the dataset it replaces, then make it current."""
    limit = settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLargeError(f"upload is larger than the limit of {limit} bytes")
    accepted = await run_in_threadpool(
        datasets.accept,
        store,
        data,
        max_bytes=min(limit, settings.max_dataset_bytes),
        max_rows=settings.max_dataset_rows,
    )
    return DatasetUploadResponse(
        bucket=store.data_bucket,
        key=store.dataset_key,
        row_count=accepted.row_count,
        sha256=accepted.sha256,
        previous_version_key=accepted.previous_version_key,
    )
