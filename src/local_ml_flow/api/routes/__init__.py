"""One router per resource, gathered here."""

from fastapi import APIRouter

from local_ml_flow.api.routes import bucket, health, lambdas, predict, result, root, runs

api_router = APIRouter()
for module in (root, health, bucket, lambdas, result, runs, predict):
    api_router.include_router(module.router)
