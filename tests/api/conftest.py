"""A real uvicorn server (``local-ml-flow serve``) in a subprocess, talked to over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port


class ApiServer:
    """``local-ml-flow serve`` on a free port; its output goes to a log file."""

    def __init__(self, log: Path, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.embedded_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = {
            **os.environ,
            "LMF_EMBEDDED_PORT": str(self.embedded_port),
            "LMF_CACHE_DIR": str(log.parent / "cache"),
            "LMF_STATE_DIR": str(log.parent / "state"),
            **env,
        }
        self._out = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local_ml_flow.cli", "serve", "--port", str(self.port), *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        self._wait()

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.embedded_port}"

    def _wait(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer in {timeout_s}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()


def start_server(
    tmp_path_factory: pytest.TempPathFactory,
    dataset_path: Path,
    *,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> ApiServer:
    log = tmp_path_factory.mktemp("api") / "server.log"
    base_args = ["--embedded", "--dataset", str(dataset_path), "--no-run"]
    return ApiServer(log, args if args is not None else base_args, env or {})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, dataset_path: Path) -> Iterator[ApiServer]:
    """An embedded-mode server of its own for each test module."""
    api = start_server(tmp_path_factory, dataset_path)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def assert_error(response: httpx.Response, status: int, error_type: str) -> dict:
    """The one error shape, with the right status and type; returns the error body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return dict(body["error"])
