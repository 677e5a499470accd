"""The functions deployed on the AWS side."""

from __future__ import annotations

from fastapi import APIRouter

from local_ml_flow.api.deps import RuntimeDep
from local_ml_flow.api.schemas import LambdasResponse
from local_ml_flow.invoke import function_names

router = APIRouter(prefix="/lambda", tags=["lambdas"])


@router.get("/get-all-lambdas", response_model=LambdasResponse)
def get_all_lambdas(runtime: RuntimeDep) -> LambdasResponse:
    """Every function name (a real ListFunctions)."""
    return LambdasResponse(lambdas=function_names(runtime.lambda_client))
