"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from local_ml_flow.api.deps import RuntimeDep
from local_ml_flow.api.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(runtime: RuntimeDep) -> JSONResponse:
    """S3 reachable, both buckets and the dataset exist, both functions Active (else 503)."""
    checks = runtime.readiness()
    missing = [name for name, ok in checks.items() if not ok]
    body = Readiness(
        status="not ready" if missing else "ready",
        mode=runtime.mode.value,
        checks=checks,
        missing=missing,
    )
    return JSONResponse(status_code=503 if missing else 200, content=body.model_dump())
