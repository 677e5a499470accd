"""The one boto3 client factory (region, retries, timeouts) and the one boto -> domain error table.

The endpoint is boto3's own business (``AWS_ENDPOINT_URL``); only the embedded
emulator passes one explicitly, because it knows the port it started on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from local_ml_flow.errors import (
    AlreadyExistsError,
    AwsError,
    BucketNotFoundError,
    EndpointUnreachableError,
    FunctionNotFoundError,
    KeyNotFoundError,
    LambdaServiceError,
    LocalMlFlowError,
    MissingCredentialsError,
    StorageError,
    StorageFullError,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client

DEFAULT_REGION = "us-east-1"
# botocore errors meaning the endpoint did not answer (emulator down, network gone).
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ProxyConnectionError,
    ResponseStreamingError,  # the connection broke (or stalled) while a body was read
    IncompleteReadError,
)
EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def region() -> str:
    """AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


# S3 bounds: a hung endpoint (accepts, never answers) costs at most
# S3_ATTEMPTS x (S3_CONNECT_TIMEOUT_S or S3_READ_TIMEOUT_S) plus a short backoff, about 12 s,
# so the API answers 503 within ~15 s. The read timeout is per socket read, not per object:
# a large dataset streams for as long as bytes keep coming.
S3_CONNECT_TIMEOUT_S = 3
S3_READ_TIMEOUT_S = 5
S3_ATTEMPTS = 2


def s3_config() -> Config:
    """S3: standard retry mode, bounded connect/read timeouts and attempts."""
    return Config(
        region_name=region(),
        retries={"mode": "standard", "total_max_attempts": S3_ATTEMPTS},
        connect_timeout=S3_CONNECT_TIMEOUT_S,
        read_timeout=S3_READ_TIMEOUT_S,
        s3={"addressing_style": "path"},
    )


def lambda_config(function_timeout_s: int) -> Config:
    """Lambda invoke: no automatic retries (a retried invoke trains twice), read timeout
    above the function timeout."""
    return Config(
        region_name=region(),
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=function_timeout_s + 60,
        tcp_keepalive=True,
    )


@overload
def client(service: Literal["s3"], *, endpoint_url: str | None = ...) -> S3Client: ...
@overload
def client(
    service: Literal["lambda"],
    *,
    endpoint_url: str | None = ...,
    function_timeout_s: int | None = ...,
) -> LambdaClient: ...
@overload
def client(service: Literal["iam"], *, endpoint_url: str | None = ...) -> IAMClient: ...


def client(
    service: str, *, endpoint_url: str | None = None, function_timeout_s: int | None = 300
) -> Any:
    """A boto3 client configured for local-ml-flow.

    ``endpoint_url`` is only for the embedded emulator; it also gets dummy credentials
    when none are configured, since the emulator accepts any. A Lambda client with
    ``function_timeout_s`` None is for the control plane (list, get): bounded like S3.
    """
    invokes = service == "lambda" and function_timeout_s is not None
    config = lambda_config(function_timeout_s) if invokes and function_timeout_s else s3_config()
    kwargs: dict[str, Any] = {"config": config, "region_name": region()}
    session = _default_session()
    if endpoint_url is not None:
        kwargs["endpoint_url"] = endpoint_url
        if session.get_credentials() is None:
            kwargs.update(EMULATOR_CREDENTIALS)
    return session.client(service, **kwargs)  # type: ignore[call-overload]


def _default_session() -> boto3.Session:
    """boto3's default session, the one ``boto3.client`` uses: asked for credentials, it
    keeps those it found (a fresh session per client looked them up again, about 10 ms)."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    return boto3.DEFAULT_SESSION


# -- errors --------------------------------------------------------------------------------
Service = Literal["s3", "lambda"]

# AWS error codes -> domain errors: the only place a boto error code is looked at.
ERROR_CODES: dict[str, type[LocalMlFlowError]] = {
    "NoSuchBucket": BucketNotFoundError,
    "NoSuchKey": KeyNotFoundError,
    "404": KeyNotFoundError,  # HEAD has no body, so no code but the status
    "NotFound": KeyNotFoundError,
    "PreconditionFailed": AlreadyExistsError,  # a conditional (write-once) put lost
    "ConditionalRequestConflict": AlreadyExistsError,  # ...to a concurrent conditional put
    "ResourceNotFoundException": FunctionNotFoundError,
    "InsufficientStorage": StorageFullError,  # the embedded emulator's disk is full or failing
}
_SERVICE_ERRORS: dict[Service, type[AwsError]] = {"s3": StorageError, "lambda": LambdaServiceError}


@dataclass(frozen=True)
class Target:
    """What a call was about, for the error message."""

    service: Service
    bucket: str | None = None
    key: str | None = None
    function: str | None = None
    action: str = "accessing"

    def __str__(self) -> str:
        if self.function is not None:
            return f"function {self.function!r}"
        if self.key is not None:
            return f"s3://{self.bucket}/{self.key}"
        return f"bucket {self.bucket!r}"

    def missing(self, kind: type[LocalMlFlowError]) -> str:
        if kind is BucketNotFoundError:
            return f"bucket {self.bucket!r} does not exist"
        return f"{self} does not exist"


def domain_error(exc: Exception, target: Target) -> LocalMlFlowError:
    """The typed error for a boto exception raised while working on ``target``."""
    service_error = _SERVICE_ERRORS[target.service]
    name = "S3" if target.service == "s3" else "Lambda"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        kind = ERROR_CODES.get(code)
        if kind is AlreadyExistsError:
            return AlreadyExistsError(f"{target} already exists")
        if kind is not None and issubclass(kind, BucketNotFoundError | KeyNotFoundError):
            return kind(target.missing(kind))
        if kind is FunctionNotFoundError and target.function is not None:
            return kind(target.missing(kind))
        if kind is StorageFullError:
            return kind(f"S3 could not store {target}: {error.get('Message', exc)}")
        return service_error(f"{name} error on {target}: {code}: {error.get('Message', exc)}")
    if isinstance(exc, NoCredentialsError):
        return MissingCredentialsError(
            f"no AWS credentials for {target}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            " (any values for an emulator) or AWS_PROFILE"
        )
    if isinstance(exc, CONNECTION_ERRORS):
        return EndpointUnreachableError(
            f"AWS endpoint unreachable while {target.action} {target}: {exc}"
        )
    return service_error(f"{name} error on {target}: {exc}")


@contextmanager
def translated(target: Target) -> Iterator[None]:
    """Turn botocore exceptions raised inside into domain errors."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise domain_error(exc, target) from None
