"""The latest score, where the original project kept it."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter, Request, Response

from local_ml_flow.api import responses
from local_ml_flow.api.caches import Caches
from local_ml_flow.api.schemas import ResultResponse
from local_ml_flow.errors import NotFoundError

router = APIRouter(prefix="/result", tags=["result"])


@lru_cache(maxsize=16)
def _body(score: str) -> bytes:
    """The JSON answer for a score, serialised once per score (scores change per run)."""
    return ResultResponse(content=score).model_dump_json().encode()


@router.get(
    "/{bucket_name}",
    response_model=ResultResponse,
    responses=responses.errors(*responses.READ, 404, 409, only={409: ("NoModelError",)}),
)
async def get_result(bucket_name: str, request: Request) -> Response:
    """The current run's score (as in ``score.txt``) of the data bucket; other buckets are 404."""
    caches: Caches = request.app.state.caches  # the hot path skips dependency resolution
    data_bucket = caches.runs.store.data_bucket
    if bucket_name != data_bucket:
        raise NotFoundError(f"no result in bucket {bucket_name!r}: results live in {data_bucket!r}")
    # Validated and serialised by the model itself, once per score (FastAPI would validate
    # the returned model again and encode it on every request).
    return Response(_body(await caches.score()), media_type="application/json")
