"""Liveness and readiness."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from local_ml_flow.api.deps import RuntimeDep
from local_ml_flow.api.limits import SharedCall
from local_ml_flow.api.schemas import Health, Readiness
from local_ml_flow.bootstrap import Runtime
from local_ml_flow.errors import LocalMlFlowError
from local_ml_flow.invoke import function_state

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
    settings, store = runtime.settings, runtime.store
    checks: dict[str, bool] = {}
    try:
        buckets = set(store.list_buckets())
        checks["s3"] = True
    except LocalMlFlowError:
        buckets = set()
        checks["s3"] = False
    checks[f"bucket:{settings.data_bucket}"] = settings.data_bucket in buckets
    checks[f"bucket:{settings.models_bucket}"] = settings.models_bucket in buckets
    try:
        has_dataset = checks["s3"] and store.exists(settings.data_bucket, settings.dataset_key)
    except LocalMlFlowError:
        has_dataset = False
    checks[f"dataset:{settings.dataset_key}"] = has_dataset
    for name in (settings.ingestion_function, settings.inference_function):
        try:
            state = function_state(runtime.lambda_client, name) if checks["s3"] else None
        except LocalMlFlowError:
            state = None
        checks[f"function:{name}"] = state == "Active"
    missing = [name for name, ok in checks.items() if not ok]
    return Readiness(
        status="not ready" if missing else "ready",
        mode=runtime.mode.value,
        checks=checks,
        missing=missing,
    )
