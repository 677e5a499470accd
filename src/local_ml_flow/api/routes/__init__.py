"""One router per resource, gathered here.

Hot endpoints first: the app tries routers in this order, so it also orders match cost.
"""

from fastapi import APIRouter

from local_ml_flow.api.routes import (
    bucket,
    docs,
    health,
    lambdas,
    predict,
    result,
    root,
    runs,
    ui,
)

ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router for module in (predict, result, health, runs, bucket, lambdas, root, docs, ui)
)
