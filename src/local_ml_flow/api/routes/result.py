"""The latest score, where the original project kept it."""

from __future__ import annotations

from fastapi import APIRouter

from local_ml_flow.api.deps import StoreDep
from local_ml_flow.api.schemas import ErrorResponse, ResultResponse
from local_ml_flow.errors import NoModelError, NotFoundError
from local_ml_flow.storage import SCORE_KEY

router = APIRouter(prefix="/result", tags=["result"])


@router.get(
    "/{bucket_name}",
    response_model=ResultResponse,
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
)
def get_result(bucket_name: str, store: StoreDep) -> ResultResponse:
    """The latest score (``score.txt``) of the data bucket; other buckets are 404."""
    if bucket_name != store.data_bucket:
        raise NotFoundError(
            f"no result in bucket {bucket_name!r}: results live in {store.data_bucket!r}"
        )
    try:
        content = store.get_text(store.data_bucket, SCORE_KEY)
    except NotFoundError as exc:
        if "bucket" in exc.message:
            raise
        raise NoModelError("no score yet: POST /pipeline/runs first") from None
    return ResultResponse(content=content)
