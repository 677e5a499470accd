"""The latest score, where the original project kept it."""

from __future__ import annotations

from fastapi import APIRouter

from local_ml_flow.api import responses
from local_ml_flow.api.deps import CachesDep
from local_ml_flow.api.schemas import ResultResponse
from local_ml_flow.errors import NotFoundError

router = APIRouter(prefix="/result", tags=["result"])


@router.get(
    "/{bucket_name}",
    response_model=ResultResponse,
    responses=responses.errors(*responses.READ, 404, 409, only={409: ("NoModelError",)}),
)
async def get_result(bucket_name: str, caches: CachesDep) -> ResultResponse:
    """The current run's score (as in ``score.txt``) of the data bucket; other buckets are 404."""
    data_bucket = caches.runs.store.data_bucket
    if bucket_name != data_bucket:
        raise NotFoundError(f"no result in bucket {bucket_name!r}: results live in {data_bucket!r}")
    return ResultResponse(content=await caches.score.get())
