"""Predictions from the latest good model."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from local_ml_flow.api import responses
from local_ml_flow.api.caches import Caches
from local_ml_flow.api.schemas import EXAMPLE_HOUSE, PredictRequest, PredictResponse
from local_ml_flow.ml import dataset

router = APIRouter(tags=["predict"])

# The body is parsed and validated by pydantic-core straight from the JSON bytes (several
# times faster than FastAPI's parse-then-validate); its schema is declared for /docs
# (app._document_models puts PredictRequest into the components).
_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/PredictRequest"},
                "examples": {
                    "one house": {
                        "summary": "the first house of housing.csv (sold for 13,300,000)",
                        "value": {"houses": [EXAMPLE_HOUSE]},
                    },
                    "two houses": {
                        "summary": "two houses at once",
                        "value": {
                            "houses": [
                                EXAMPLE_HOUSE,
                                {**EXAMPLE_HOUSE, "area": 3000, "airconditioning": "no"},
                            ]
                        },
                    },
                },
            }
        },
    }
}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=responses.errors(
        *responses.WRITE, 409, only={409: ("NoModelError", "ModelVersionError")}
    ),
    openapi_extra=_BODY_SCHEMA,
)
async def predict(request: Request) -> Response:
    """Predict prices of 1-1000 houses with the latest good model."""
    caches: Caches = request.app.state.caches  # the hot path skips dependency resolution
    try:
        body = PredictRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None
    loaded = await caches.model()
    x = dataset.encode_houses([h.model_dump() for h in body.houses], loaded.feature_set)
    predictions = loaded.predictor.predict(x)
    answer = PredictResponse(run_id=loaded.run_id, predictions=predictions.tolist())
    # Serialised here, by the model itself: FastAPI would validate it a second time.
    return Response(answer.model_dump_json(), media_type="application/json")
