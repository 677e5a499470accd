"""The functions deployed on the AWS side."""

from __future__ import annotations

from fastapi import APIRouter

from local_ml_flow.api import responses
from local_ml_flow.api.deps import InvokerDep
from local_ml_flow.api.schemas import LambdasResponse

router = APIRouter(prefix="/lambda", tags=["lambdas"])


@router.get(
    "/get-all-lambdas", response_model=LambdasResponse, responses=responses.errors(*responses.READ)
)
def get_all_lambdas(invoker: InvokerDep) -> LambdasResponse:
    """Every function name (a real ListFunctions)."""
    return LambdasResponse(lambdas=invoker.names())
