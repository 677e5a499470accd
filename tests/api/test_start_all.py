"""`./bin/start_all.sh` on this machine (no Docker engine): the embedded stack, served."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port


def start(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "LMF_EMBEDDED_PORT": str(free_port()),
        "LMF_STATE_DIR": str(log.parent / "state"),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(ROOT / "bin" / "start_all.sh"), "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return process, port


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url}:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> int:
    os.killpg(process.pid, signal.SIGINT)
    return process.wait(timeout=30)


def test_start_all_embedded_runs_once_and_serves(tmp_path, dataset_path):
    log = tmp_path / "start_all.log"
    process, port = start(["--embedded", "--dataset", str(dataset_path)], log)
    try:
        result = wait_for(f"http://127.0.0.1:{port}/result/local-ml-flow-data", process, log)
        assert result.json() == {"content": "65.29%"}
        assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10).status_code == 200
    finally:
        code = stop(process)
    out = log.read_text()
    assert code == 0, out
    assert "R² 0.6529 (65.29%)" in out
    assert f"Swagger UI: http://localhost:{port}/docs" in out


def test_start_all_without_docker_engine_falls_back_with_one_line(tmp_path, dataset_path):
    log = tmp_path / "start_all.log"
    # an always-failing `docker` stands in for a client whose engine does not answer
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n"
    )
    (fake_bin / "docker").chmod(0o755)
    os.environ["PATH"], old = f"{fake_bin}:{os.environ['PATH']}", os.environ["PATH"]
    try:
        process, port = start(["--dataset", str(dataset_path)], log)
    finally:
        os.environ["PATH"] = old
    try:
        assert wait_for(f"http://127.0.0.1:{port}/health", process, log).status_code == 200
    finally:
        stop(process)
    lines = log.read_text().splitlines()
    assert (
        "==> no Docker engine answers: using the embedded AWS emulator instead"
        " (same code, in-process Lambdas)"
    ) in lines


def test_start_all_refuses_a_missing_dataset(tmp_path):
    done = subprocess.run(
        [str(ROOT / "bin" / "start_all.sh"), "--embedded", "--dataset", str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert f"error: dataset file {tmp_path / 'x.csv'} does not exist" in done.stderr


def test_a_failing_step_names_itself_and_its_log(tmp_path):
    env = {
        **os.environ,
        "LMF_DATASET_URL": f"http://127.0.0.1:{free_port()}/housing.csv",  # nothing listens
        "LMF_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("LMF_DATASET_PATH", None)
    done = subprocess.run(
        [str(ROOT / "bin" / "start_all.sh"), "--embedded"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 1
    assert (
        "error: step 'dataset-fetch' failed; full log: .lmf/logs/dataset-fetch.log" in done.stderr
    )
    log = (ROOT / ".lmf" / "logs" / "dataset-fetch.log").read_text()
    assert "cannot download the dataset" in log
