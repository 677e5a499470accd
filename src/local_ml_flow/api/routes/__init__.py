"""One router per resource, gathered here.

Hot endpoints first: the app tries routers in this order, so it also orders match cost.
"""

from fastapi import APIRouter

from local_ml_flow.api.routes import bucket, health, lambdas, predict, result, root, runs

ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router for module in (predict, result, health, runs, bucket, lambdas, root)
)
