"""One error shape for every failure: ``{"error": {"type", "message", "details"?}}``; under
/ui (a browser's request) the same error as a page of the dashboard, with a way back."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from local_ml_flow.api import pages
from local_ml_flow.errors import (
    AlreadyExistsError,
    ConcurrentUpdateError,
    ConfigurationError,
    CorruptStateError,
    DatasetTooLargeError,
    DatasetValidationError,
    EndpointUnreachableError,
    FunctionFailedError,
    FunctionNotFoundError,
    IntegrityError,
    InvalidRequestError,
    LambdaServiceError,
    LocalMlFlowError,
    MissingCredentialsError,
    ModelVersionError,
    NoModelError,
    NonFiniteMetricsError,
    NotFoundError,
    PromotionRefusedError,
    RunInUseError,
    StorageError,
    StorageFullError,
    UploadTooLargeError,
)
from local_ml_flow.events import HOUSING, valid_dataset_name

logger = logging.getLogger("local_ml_flow.api")

# The error types clients see, and their status. A finer type raised inside (e.g.
# RunNotFoundError) is reported as the nearest of these it derives from.
_STATUS: dict[type[LocalMlFlowError], int] = {
    DatasetTooLargeError: 413,
    UploadTooLargeError: 413,
    DatasetValidationError: 422,
    InvalidRequestError: 422,
    NoModelError: 409,
    AlreadyExistsError: 409,
    ModelVersionError: 409,
    PromotionRefusedError: 409,
    RunInUseError: 409,
    ConcurrentUpdateError: 409,
    NonFiniteMetricsError: 422,
    FunctionNotFoundError: 503,  # the server's set-up, not the client's request
    MissingCredentialsError: 503,
    ConfigurationError: 503,
    NotFoundError: 404,
    FunctionFailedError: 502,
    IntegrityError: 502,
    CorruptStateError: 502,
    EndpointUnreachableError: 503,
    StorageFullError: 507,  # the state's disk is full or failing: nothing was changed
    StorageError: 502,
    LambdaServiceError: 502,
    LocalMlFlowError: 502,  # a failure on the AWS side
}


# A function failure is a bad gateway (the stored data or the function is at fault), except
# where the function refused the request's parameters or state (the client's side) or could
# not reach AWS (unavailable, as everywhere else).
_FUNCTION_ERROR_STATUS = {
    kind.__name__: _STATUS[kind]
    for kind in (
        InvalidRequestError,
        NoModelError,
        PromotionRefusedError,
        ConcurrentUpdateError,
        EndpointUnreachableError,
        MissingCredentialsError,
        StorageFullError,
    )
}


def public_type(exc: LocalMlFlowError) -> type[LocalMlFlowError]:
    """The nearest documented error type of ``exc``."""
    return next(kind for kind in type(exc).__mro__ if kind in _STATUS)


def error_response(status: int, error_type: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"type": error_type, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(status_code=status, content=jsonable_encoder({"error": body}))


def _back(path: str) -> tuple[str, str]:
    """Where an error page under /ui leads back to: the dataset's page, or a list."""
    parts = path.split("/")  # "", "ui", "datasets", name, ...
    if len(parts) > 2 and parts[2] == "datasets":
        if len(parts) > 3 and parts[3] != HOUSING and valid_dataset_name(parts[3]):
            return f"/ui/datasets/{parts[3]}", f"dataset {parts[3]}"
        return "/ui/datasets", "all datasets"
    return "/ui", "all runs"


def _answer(
    request: Request, status: int, error_type: str, message: str, details: Any = None
) -> JSONResponse | HTMLResponse:
    """The error as JSON, or as a dashboard page for a request under /ui that takes HTML."""
    path = request.url.path
    accept = request.headers.get("accept", "")
    json_only = "application/json" in accept and "text/html" not in accept
    if not (path == "/ui" or path.startswith("/ui/")) or json_only:
        return error_response(status, error_type, message, details)
    if isinstance(details, list) and details:  # the request's invalid fields, for people
        message = "; ".join(
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}"
            if isinstance(d, dict)
            else str(d)
            for d in details
        )
    page = pages.error_page(status, error_type, message, back=_back(path))
    return HTMLResponse(page, status_code=status)


async def _domain(request: Request, exc: Exception) -> JSONResponse | HTMLResponse:
    assert isinstance(exc, LocalMlFlowError)
    if isinstance(exc, FunctionFailedError):
        # The function refused the request's parameters: the client's fault, not the
        # function's. Every other function failure is a bad gateway.
        return _answer(
            request,
            _FUNCTION_ERROR_STATUS.get(exc.error_type, 502),
            exc.error_type,
            exc.message,
            {"function": exc.function_name, **(exc.details or {})},
        )
    kind = public_type(exc)
    message = exc.message
    if kind is EndpointUnreachableError:  # the embedded emulator died: say so, and what happens
        emulator = getattr(getattr(request.app.state, "runtime", None), "emulator", None)
        failure = getattr(emulator, "down", None)
        if failure:
            message = f"{message} ({failure})"
    return _answer(request, _STATUS[kind], kind.__name__, message, exc.details)


async def _validation(request: Request, exc: Exception) -> JSONResponse | HTMLResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return _answer(request, 422, "RequestValidationError", _summary(request, fields), fields)


def _summary(request: Request, fields: list[dict[str, Any]]) -> str:
    """One line: each failing field (up to 5) with what is wrong with it; a body whose fields
    all belong one level down (a house sent without ``houses``) is told so."""
    body = [f for f in fields if f["loc"][:1] == ["body"]]
    extra = [f for f in body if f["type"] == "extra_forbidden" and len(f["loc"]) == 2]
    if request.url.path.endswith("/predict") and extra and len(extra) >= len(body) - 1:
        wrap = "houses" if request.url.path == "/predict" else "rows"
        return (
            f"invalid request: {', '.join(str(f['loc'][1]) for f in extra[:5])}... are a row's"
            f' fields: send them inside a list, {{"{wrap}": [{{...}}]}}'
        )
    shown = [f"{'.'.join(str(p) for p in f['loc'])}: {f['msg'].lower()}" for f in fields[:5]]
    more = f" (+{len(fields) - 5} more)" if len(fields) > 5 else ""
    return f"invalid request: {'; '.join(shown)}{more}"


async def _http(request: Request, exc: Exception) -> JSONResponse | HTMLResponse:
    assert isinstance(exc, StarletteHTTPException)
    names = {404: "NotFoundError", 405: "MethodNotAllowedError", 413: "PayloadTooLargeError"}
    message = str(exc.detail)
    if exc.status_code == 400:  # FastAPI's "error parsing the body": the body, not the request
        return error_response(
            422,
            "InvalidBodyError",
            f"the request body cannot be read ({message.rstrip('.')}): send JSON (UTF-8) or,"
            " for an upload, a well-formed multipart form",
        )
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    response = _answer(request, exc.status_code, names.get(exc.status_code, "HTTPError"), message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse | HTMLResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return _answer(request, 500, "InternalError", "internal error; see the server log for details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(LocalMlFlowError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
