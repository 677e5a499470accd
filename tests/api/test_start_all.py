"""`./bin/start_all.sh`: the embedded stack served here; the Docker path against a fake `docker`.

No Docker engine runs here: tests/api/fake/docker.py plays the CLI (engine, compose plugin,
containers that come up, fail or crash) and records what the script asked of it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port

START_ALL = ROOT / "bin" / "start_all.sh"
FAKE_DOCKER = Path(__file__).parent / "fake" / "docker.py"


def start(
    args: list[str], log: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "LMF_EMBEDDED_PORT": str(free_port()),
        "LMF_STATE_DIR": str(log.parent / "state"),
        **(extra_env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            # SIGINT at its default even if this test process inherited it ignored: bash
            # cannot trap a signal that was ignored when it started
            ["env", "--default-signal=INT", str(START_ALL), "--port", str(port), *args],
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


def serve_once(args: list[str], log: Path, extra_env: dict[str, str]) -> list[str]:
    """Start the script, wait until /health answers 200, stop it; the lines it logged."""
    process, port = start(args, log, extra_env)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/health", process, log).status_code == 200
    finally:
        stop(process)
    return log.read_text().splitlines()


def stop(process: subprocess.Popen[bytes]) -> int:
    """Ctrl-C to the script's process group; killed (and the test failed) if it hangs."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        status = Path(f"/proc/{process.pid}/status").read_text()
        ignored = next(line for line in status.splitlines() if line.startswith("SigIgn"))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"start_all.sh ignored Ctrl-C for 60 s ({ignored})") from None


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
    # the AWS CLI line carries what the CLI needs even against an emulator
    assert (
        "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 aws" in out
    )


def test_start_all_without_docker_engine_falls_back_with_one_line(tmp_path, dataset_path):
    log = tmp_path / "start_all.log"
    # an always-failing `docker` stands in for a client whose engine does not answer
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n"
    )
    (fake_bin / "docker").chmod(0o755)
    path = {"PATH": f"{fake_bin}:{os.environ['PATH']}"}
    lines = serve_once(["--dataset", str(dataset_path)], log, path)
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


def test_an_empty_state_offline_without_a_dataset_is_one_clear_error(tmp_path):
    """The reference dataset is looked for only when the state holds none: offline, with no
    local copy, the start stops with one line saying how to provide it."""
    env = {
        **os.environ,
        "LMF_DATASET_URL": f"http://127.0.0.1:{free_port()}/housing.csv",  # nothing listens
        "LMF_CACHE_DIR": str(tmp_path / "cache"),
        "LMF_STATE_DIR": str(tmp_path / "state"),
        "LMF_EMBEDDED_PORT": str(free_port()),
        "LMF_API_PORT": str(free_port()),
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
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: cannot download the dataset from http://127.0.0.1:")
    assert "Point LMF_DATASET_PATH (or --dataset) at a local copy instead." in errors[0]
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- options --------------


def run_script(
    args: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(START_ALL), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_help_prints_the_usage_and_nothing_else():
    done = run_script(["--help"])
    assert done.returncode == 0
    assert "--port N" in done.stdout
    assert "LMF_LOCALSTACK_PORT" in done.stdout
    assert "set -euo" not in done.stdout
    assert "#" not in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port"], "error: --port needs a value (see --help)"),
        (["--dataset"], "error: --dataset needs a value (see --help)"),
        (["--port", "http"], "error: --port must be a TCP port (1-65535), not 'http' (see --help)"),
        (["--bogus"], "error: unknown option --bogus (see --help)"),
    ],
)
def test_bad_options_are_named(args, message):
    done = run_script(args)
    assert done.returncode == 2
    assert done.stderr.strip() == message


def test_a_relative_dataset_is_the_callers(tmp_path):
    done = run_script(["--embedded", "--dataset", "mine.csv"], cwd=tmp_path)
    assert done.returncode == 1
    assert f"error: dataset file {tmp_path}/mine.csv does not exist" in done.stderr


def test_a_busy_api_port_stops_before_any_setup_or_training():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_script(["--embedded", "--port", str(port)])
    assert done.returncode == 1
    assert done.stdout == ""  # no set-up, no training
    assert f"error: port {port} is already in use" in done.stderr
    assert "--port N" in done.stderr


# ---------------------------------------------------------------- the Docker path ------


def fake_docker_env(tmp_path: Path, scenario: str) -> dict[str, str]:
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_DOCKER}" "$@"\n')
    (fake_bin / "docker").chmod(0o755)
    state = tmp_path / "docker-state"
    state.mkdir()
    return {
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "FAKE_DOCKER_DIR": str(state),
        "FAKE_DOCKER_SCENARIO": scenario,
        "LMF_LOCALSTACK_PORT": str(free_port()),
    }


def fake_down(env: dict[str, str]) -> None:
    """Stop the fake API the fake `docker compose up` started, if it runs."""
    fake = [sys.executable, str(FAKE_DOCKER), "compose", "down"]
    subprocess.run(fake, env={**os.environ, **env}, check=False)


def docker_calls(env: dict[str, str]) -> list[dict]:
    """The docker calls so far (complete lines only: the script may be writing one)."""
    path = Path(env["FAKE_DOCKER_DIR"]) / "calls.jsonl"
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def posts(env: dict[str, str]) -> list[str]:
    path = Path(env["FAKE_DOCKER_DIR"]) / "posts.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_docker_without_the_compose_plugin_falls_back_with_one_line(tmp_path, dataset_path):
    env = fake_docker_env(tmp_path, "no-compose")
    log = tmp_path / "start_all.log"
    lines = serve_once(["--dataset", str(dataset_path)], log, env)
    assert (
        "==> Docker has no compose v2 plugin ('docker compose'):"
        " using the embedded AWS emulator instead"
    ) in lines
    assert not [call for call in docker_calls(env) if call["args"][1:2] == ["up"]]


@pytest.mark.slow
def test_docker_path_passes_ports_and_user_to_compose_and_stops_on_ctrl_c(tmp_path, dataset_path):
    env = fake_docker_env(tmp_path, "ok")
    log = tmp_path / "start_all.log"
    process, port = start(["--dataset", str(dataset_path)], log, env)
    try:
        deadline = time.monotonic() + 600  # the first start builds the Lambda zip
        # serving: the API logs followed; then a person's Ctrl-C, not one in the same instant
        while not [call for call in docker_calls(env) if "--follow" in call["args"]]:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        time.sleep(1)
    finally:
        try:
            code = stop(process)
        finally:  # whatever happened, no fake API left running
            fake_down(env)
    out = log.read_text()
    assert code == 0, out
    assert "==> run fake-run: R² 0.6529 (65.29%)" in out
    assert f"Swagger UI: http://localhost:{port}/docs" in out
    assert "LocalStack keeps nothing" in out
    calls = docker_calls(env)
    up = next(call for call in calls if call["args"][:2] == ["compose", "up"])
    assert up["env"]["LMF_API_PORT"] == str(port)
    assert up["env"]["LMF_LOCALSTACK_PORT"] == env["LMF_LOCALSTACK_PORT"]
    assert up["env"]["LMF_UID"] == str(os.getuid())
    assert up["env"]["LMF_GID"] == str(os.getgid())
    assert calls[-1]["args"] == ["compose", "down"]  # Ctrl-C took the stack down
    assert posts(env) == ["/pipeline/runs"]
    for bind_source in ("lambdas/dist", ".cache", ".lmf/terraform-data"):
        assert (ROOT / bind_source).is_dir()
        assert (ROOT / bind_source).stat().st_uid == os.getuid()


@pytest.mark.slow
def test_docker_path_reports_a_failed_run_from_its_one_post(tmp_path, dataset_path):
    env = fake_docker_env(tmp_path, "run-fails")
    try:
        done = run_script(["--dataset", str(dataset_path), "--port", str(free_port())], env=env)
    finally:  # the script leaves the stack up for `docker compose logs`: stop the fake API
        fake_down(env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: the pipeline run failed (HTTP 502)" in done.stderr
    assert "FunctionFailedError" in done.stderr  # the first response's body
    assert posts(env) == ["/pipeline/runs"]  # one POST: no second run


@pytest.mark.slow
def test_docker_path_notices_a_crashed_container_at_once(tmp_path, dataset_path):
    env = fake_docker_env(tmp_path, "api-crashes")
    started = time.monotonic()
    done = run_script(["--dataset", str(dataset_path), "--port", str(free_port())], env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: the api container exited; log: .lmf/logs/api.log" in done.stderr
    assert time.monotonic() - started < 300  # not the 10-minute ready wait
    assert docker_calls(env)[-1]["args"] == ["compose", "down"]
