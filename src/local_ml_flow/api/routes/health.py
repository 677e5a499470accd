"""Liveness and readiness."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from local_ml_flow.api.deps import RuntimeDep
from local_ml_flow.api.limits import SharedCall
from local_ml_flow.api.schemas import Health, Readiness
from local_ml_flow.bootstrap import Runtime

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is alive."""
    return Health(status="ok")


# /ready runs its checks in one thread at a time (concurrent callers share the running check;
# no answer is reused once it is done, so a change shows at once) and answers within the
# deadline even when the AWS endpoint hangs (then "not ready").
READY_TTL_S = 0.0
READY_DEADLINE_S = 10.0


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """S3 reachable, both buckets and the dataset exist, both functions Active (else 503)."""
    probe: SharedCall[Readiness] | None = getattr(request.app.state, "readiness", None)
    if probe is None:
        probe = SharedCall(
            partial(_check, runtime),
            ttl_s=READY_TTL_S,
            deadline_s=READY_DEADLINE_S,
            on_timeout=partial(_too_slow, runtime),
        )
        request.app.state.readiness = probe
    body = await probe.get()
    return JSONResponse(status_code=503 if body.missing else 200, content=body.model_dump())


def _too_slow(runtime: Runtime) -> Readiness:
    check = f"answered within {READY_DEADLINE_S:g} s"
    return Readiness(
        status="not ready", mode=runtime.mode.value, checks={check: False}, missing=[check]
    )


def _check(runtime: Runtime) -> Readiness:
    checks = runtime.readiness()
    missing = [name for name, ok in checks.items() if not ok]
    return Readiness(
        status="not ready" if missing else "ready",
        mode=runtime.mode.value,
        checks=checks,
        missing=missing,
    )
