"""Invokers: how functions run. Only this module invokes functions.

``LambdaInvoker`` calls the Lambda API (LocalStack or AWS); ``LocalInvoker`` runs the
same handler functions in-process. Both round-trip events and results through JSON and
turn a function error (``FunctionError`` + ``{"errorType", "errorMessage"}``) into one
``FunctionFailedError``.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol

from local_ml_flow import aws
from local_ml_flow.errors import FunctionFailedError, FunctionNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

Handler = Callable[[Any, Any], Mapping[str, Any]]
logger = logging.getLogger("local_ml_flow.functions")


@dataclass(frozen=True)
class Invocation:
    """What an invoke returns, before error handling: Lambda's own shape."""

    status_code: int
    payload: Any
    function_error: str | None = None


class FunctionDirectory(Protocol):
    """Which functions exist, and their state."""

    def names(self) -> list[str]:
        """Names of all functions."""
        ...

    def state(self, function_name: str) -> str | None:
        """``Active``, ``Pending``, ``Failed``..., or None if the function does not exist."""
        ...


class Invoker(FunctionDirectory, Protocol):
    """Runs a function synchronously with a JSON event and returns its JSON result."""

    def invoke_raw(self, function_name: str, event: Mapping[str, Any]) -> Invocation: ...

    def invoke(self, function_name: str, event: Mapping[str, Any]) -> dict[str, Any]: ...


def result_of(function_name: str, invocation: Invocation) -> dict[str, Any]:
    """The function's result, or FunctionFailedError for an error response."""
    payload = invocation.payload
    if invocation.function_error is not None:
        if isinstance(payload, Mapping):
            error_type = str(payload.get("errorType") or invocation.function_error)
            message = str(payload.get("errorMessage") or "")
        else:
            error_type, message = invocation.function_error, str(payload)
        frames = payload.get("stackTrace") if isinstance(payload, Mapping) else None
        lines = "".join(str(t) for t in frames) if isinstance(frames, list) else ""
        # Server-side only: the client sees the type and message, never the traceback. The
        # caller logs the failure once (the runner, with the run); the traceback goes with
        # the error, and to the debug log here.
        trace = lines.rstrip()
        if trace:
            logger.debug(
                "function %s raised %s:\nTraceback (in the function):\n%s",
                function_name,
                error_type,
                trace,
            )
        raise FunctionFailedError(function_name, error_type, message, trace=trace)
    if not isinstance(payload, dict):
        raise FunctionFailedError(
            function_name, "InvalidResponse", f"expected a JSON object, got {payload!r:.200}"
        )
    return payload


class LambdaFunctions:
    """The functions of a Lambda API (ListFunctions, GetFunction)."""

    def __init__(self, client: LambdaClient) -> None:
        self.client = client

    def names(self) -> list[str]:
        names: list[str] = []
        with aws.translated(aws.Target("lambda", function="*", action="listing")):
            for page in self.client.get_paginator("list_functions").paginate():
                names.extend(f["FunctionName"] for f in page.get("Functions", []))
        return names

    def state(self, function_name: str) -> str | None:
        try:
            with aws.translated(aws.Target("lambda", function=function_name, action="reading")):
                config = self.client.get_function(FunctionName=function_name)["Configuration"]
        except FunctionNotFoundError:
            return None
        return str(config.get("State", "Active"))


class LambdaInvoker:
    """Synchronous invokes through the Lambda API (no retries: see aws.lambda_config).

    ``directory``: where to ask which functions exist (default: the invoke client itself;
    the runtime passes one with short timeouts).
    """

    def __init__(self, client: LambdaClient, directory: FunctionDirectory | None = None) -> None:
        self.client = client
        self.directory = directory or LambdaFunctions(client)

    def names(self) -> list[str]:
        return self.directory.names()

    def state(self, function_name: str) -> str | None:
        return self.directory.state(function_name)

    def invoke_raw(self, function_name: str, event: Mapping[str, Any]) -> Invocation:
        with aws.translated(aws.Target("lambda", function=function_name, action="invoking")):
            response = self.client.invoke(
                FunctionName=function_name,
                InvocationType="RequestResponse",
                Payload=json.dumps(dict(event)).encode(),
            )
        raw = response["Payload"].read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return Invocation(
            status_code=int(response.get("StatusCode", 0)),
            payload=payload,
            function_error=response.get("FunctionError"),
        )

    def invoke(self, function_name: str, event: Mapping[str, Any]) -> dict[str, Any]:
        return result_of(function_name, self.invoke_raw(function_name, event))


class LocalInvoker:
    """Runs handler functions in this process, with the Lambda response shape.

    ``directory``: where the functions are registered (the embedded emulator's Lambda API),
    for ``names`` and ``state``; without one, the handlers given are the functions.
    """

    def __init__(
        self, functions: Mapping[str, Handler], directory: FunctionDirectory | None = None
    ) -> None:
        self.functions = dict(functions)
        self.directory = directory

    def names(self) -> list[str]:
        return self.directory.names() if self.directory else list(self.functions)

    def state(self, function_name: str) -> str | None:
        if self.directory is not None:
            return self.directory.state(function_name)
        return "Active" if function_name in self.functions else None

    def invoke_raw(self, function_name: str, event: Mapping[str, Any]) -> Invocation:
        handler = self.functions.get(function_name)
        if handler is None:
            raise FunctionNotFoundError(f"function {function_name!r} does not exist")
        event_json = json.loads(json.dumps(dict(event)))
        context = SimpleNamespace(function_name=function_name, aws_request_id="local")
        try:
            result = handler(event_json, context)
        except Exception as exc:
            payload = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return Invocation(200, json.loads(json.dumps(payload)), "Unhandled")
        return Invocation(200, json.loads(json.dumps(result, default=str)))

    def invoke(self, function_name: str, event: Mapping[str, Any]) -> dict[str, Any]:
        return result_of(function_name, self.invoke_raw(function_name, event))
