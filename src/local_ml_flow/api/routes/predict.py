"""Predictions from the latest good model."""

from __future__ import annotations

from fastapi import APIRouter

from local_ml_flow.api.deps import ModelCacheDep, StoreDep
from local_ml_flow.api.schemas import ErrorResponse, PredictRequest, PredictResponse
from local_ml_flow.ml import dataset

router = APIRouter(tags=["predict"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def predict(body: PredictRequest, store: StoreDep, cache: ModelCacheDep) -> PredictResponse:
    """Predict prices of 1-1000 houses with the latest good model."""
    loaded = cache.get(store)
    clean = dataset.houses_frame([h.model_dump() for h in body.houses])
    predictions = loaded.model.predict(dataset.features(clean, loaded.feature_set))
    return PredictResponse(run_id=loaded.run_id, predictions=[float(p) for p in predictions])
