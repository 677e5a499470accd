"""One router per resource, gathered here.

Hot endpoints first: the app tries routers in this order, so it also orders match cost.
"""

from fastapi import APIRouter

from local_ml_flow.api.routes import (
    bucket,
    datasets,
    docs,
    health,
    lambdas,
    predict,
    result,
    root,
    runs,
    ui,
    ui_datasets,
)

ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (
        predict,
        result,
        health,
        runs,
        datasets,
        bucket,
        lambdas,
        root,
        docs,
        ui_datasets,
        ui,
    )
)
