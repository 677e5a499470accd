"""Shared fixtures: the reference dataset, AWS credentials for the emulator, a moto server."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from local_ml_flow import datasource
from local_ml_flow.errors import DatasetFetchError
from local_ml_flow.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASET = ROOT.parent / "shared" / "data" / "housing.csv"
# Where the controller process put the dataset it found, for the pytest-xdist workers.
_FOUND_DATASET = "_LMF_TESTS_DATASET"

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


def emulator_client(service: str, endpoint_url: str) -> Any:
    """A plain boto3 client on an emulator (any credentials do), to look at or break what is
    stored, or invoke a function directly (room for a cold start, never retried)."""
    config = Config(read_timeout=600, retries={"max_attempts": 1}) if service == "lambda" else None
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_dataset() -> Path:
    """The reference housing.csv (never committed), in the order of `datasource.locate`."""
    settings = Settings(_env_file=None)
    return datasource.locate(
        explicit=settings.dataset_path,
        shared=SHARED_DATASET,
        cache_dir=settings.cache_dir,
        url=settings.dataset_url,
        expected_sha256=settings.dataset_sha256,
        timeout_s=20,
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    """Find the dataset once, before any test (and before xdist starts its workers).

    Not found: one message saying how to provide it, instead of an error per test.
    """
    if os.environ.get(_FOUND_DATASET):
        return  # an xdist worker: the controller found it
    try:
        os.environ[_FOUND_DATASET] = str(find_dataset())
    except DatasetFetchError as exc:
        sys.stderr.write(f"\nerror: {exc.message}\n\n")
        pytest.exit("no reference dataset", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def dataset_path() -> Path:
    """The reference housing.csv, as found at the start of the session."""
    return Path(os.environ[_FOUND_DATASET])


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


# Under pytest-xdist (`./bin/test.sh` runs `--dist loadfile`) each module stays on one worker,
# so its module-scoped servers and emulators start once, and no test runs twice. The slowest
# modules go first, so that they do not start last on an otherwise idle machine.
_SLOW_FIRST = (
    "test_terraform",
    "test_packaging",
    "test_embedded_state",
    "test_dashboard_fit",
    "test_start_all",
    "test_readme",
    "test_faults",
    "test_schema_fuzz",
    "test_trust",
    "test_state",
)


# The exhaustive suite: LMF_TESTS=full ./bin/test.sh runs the tests marked "full" too (every
# crash and ENOSPC point, the image variants); the default suite skips them, saying so.
FULL = os.environ.get("LMF_TESTS") == "full"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not FULL:
        skip = pytest.mark.skip(reason="exhaustive suite only: LMF_TESTS=full ./bin/test.sh")
        for item in items:
            if item.get_closest_marker("full") is not None:
                item.add_marker(skip)

    def rank(item: pytest.Item) -> int:
        stem = Path(item.nodeid.split("::", 1)[0]).stem
        return _SLOW_FIRST.index(stem) if stem in _SLOW_FIRST else len(_SLOW_FIRST)

    items.sort(key=rank)  # stable: the order inside each module is kept


# Lines a test reports to the user (record_property(name, [lines])), each under its title in
# the terminal summary: shown with -q and under xdist too (a print is captured).
SUMMARIES = {
    "readme_blocks_not_run": "README blocks not run by tests/docs/test_readme.py",
    "fault_points": "crash and ENOSPC points explored by tests/durability/test_faults.py",
}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, title in SUMMARIES.items():
        entries = [
            entry
            for kind in ("passed", "failed")
            for report in terminalreporter.stats.get(kind, [])
            if getattr(report, "when", "") == "call"
            for recorded, value in getattr(report, "user_properties", ())
            if recorded == name
            for entry in value
        ]
        if entries:
            terminalreporter.section(title)
            for entry in entries:
                terminalreporter.write_line(entry)
