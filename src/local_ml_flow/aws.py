"""The one boto3 client factory: region, retries, timeouts.

The endpoint is boto3's own business (``AWS_ENDPOINT_URL``); only the embedded
emulator passes one explicitly, because it knows the port it started on.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
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
    service: Literal["lambda"], *, endpoint_url: str | None = ..., function_timeout_s: int = ...
) -> LambdaClient: ...
@overload
def client(service: Literal["iam"], *, endpoint_url: str | None = ...) -> IAMClient: ...


def client(service: str, *, endpoint_url: str | None = None, function_timeout_s: int = 300) -> Any:
    """A boto3 client configured for local-ml-flow.

    ``endpoint_url`` is only for the embedded emulator; it also gets dummy credentials
    when none are configured, since the emulator accepts any.
    """
    config = lambda_config(function_timeout_s) if service == "lambda" else s3_config()
    kwargs: dict[str, Any] = {"config": config, "region_name": region()}
    if endpoint_url is not None:
        kwargs["endpoint_url"] = endpoint_url
        if boto3.Session().get_credentials() is None:
            kwargs.update(EMULATOR_CREDENTIALS)
    return boto3.client(service, **kwargs)  # type: ignore[call-overload]
