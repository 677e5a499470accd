"""Predictions from the latest good model."""

from __future__ import annotations

from fastapi import APIRouter, Response

from local_ml_flow.api.deps import CachesDep
from local_ml_flow.api.schemas import ErrorResponse, PredictRequest, PredictResponse
from local_ml_flow.ml import dataset

router = APIRouter(tags=["predict"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def predict(body: PredictRequest, caches: CachesDep) -> Response:
    """Predict prices of 1-1000 houses with the latest good model."""
    loaded = await caches.model.get()
    x = dataset.encode_houses([h.model_dump() for h in body.houses], loaded.feature_set)
    predictions = loaded.predictor.predict(x)
    answer = PredictResponse(run_id=loaded.run_id, predictions=predictions.tolist())
    # Serialised here, by the model itself: FastAPI would validate it a second time.
    return Response(answer.model_dump_json(), media_type="application/json")
