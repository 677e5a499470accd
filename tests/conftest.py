"""Shared fixtures: AWS credentials for the emulator, a real moto server over HTTP."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASET = ROOT.parent / "shared" / "data" / "housing.csv"

# Fake credentials: tests never talk to real AWS.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
)
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_var, None)

# Embedded stacks started by the tests keep their state in a private temporary folder,
# never in the user's data directory (a test may still set its own LMF_STATE_DIR).
os.environ["LMF_STATE_DIR"] = tempfile.mkdtemp(prefix="lmf-test-state-")
atexit.register(shutil.rmtree, os.environ["LMF_STATE_DIR"], ignore_errors=True)


class Exploit:
    """Unpickling (or building) one creates ``marker``: proof that foreign code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.system, (f"touch {self.marker}",))


def s3_client(endpoint_url: str):
    """A plain boto3 S3 client on an emulator, to look at (or break) what is stored."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def dataset_path() -> Path:
    """The reference housing.csv from ../shared/data (never committed)."""
    if not SHARED_DATASET.is_file():
        pytest.fail(f"reference dataset missing: {SHARED_DATASET}")
    return SHARED_DATASET


@pytest.fixture(scope="session")
def dataset_bytes(dataset_path: Path) -> bytes:
    return dataset_path.read_bytes()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real moto server (HTTP on loopback) for the whole session."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
