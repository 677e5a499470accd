"""`local-ml-flow run --embedded` end to end, and the embedded emulator itself."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local_ml_flow import aws, notifications
from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from local_ml_flow.embedded import RETRAIN_PERMISSION, EmbeddedEmulator, EmulatorError
from local_ml_flow.settings import Settings
from local_ml_flow.storage import sha256
from tests.conftest import free_port


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_ml_flow.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "LMF_EMBEDDED_PORT": str(free_port()), **(env or {})},
    )


def test_run_embedded_prints_progress_and_metrics(dataset_path):
    done = run_cli("run", "--embedded", "--dataset", str(dataset_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("==> ingestion: invoking local-ml-flow-ingestion") for line in lines)
    assert any(line.startswith("==> inference: scored 109 test rows") for line in lines)
    assert "R2:     0.6529 (65.29%)" in lines


def test_run_embedded_json_with_options(dataset_path):
    done = run_cli(
        "run", "--embedded", "--dataset", str(dataset_path), "--feature-set", "seed", "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # only JSON on stdout (| jq works); progress on stderr
    assert "==> inference: scored 109 test rows" in done.stderr
    assert result["score"] == "35.62%"
    assert result["feature_set"] == "seed"


def test_bad_configuration_is_one_clear_line(dataset_path):
    done = run_cli("run", "--embedded", env={"LMF_TEST_SIZE": "3"})
    assert done.returncode != 0
    assert "invalid configuration: LMF_TEST_SIZE" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_dataset_above_the_limit_is_refused_before_anything_starts(dataset_path, tmp_path):
    """Refused from its size: not read, not uploaded, no emulator started (a 550 MB file
    once cost 9 s and 2.2 GB before ingestion refused it)."""
    limit = dataset_path.stat().st_size - 1
    state = tmp_path / "state"
    done = run_cli(
        "run",
        "--embedded",
        "--dataset",
        str(dataset_path),
        env={"LMF_MAX_DATASET_BYTES": str(limit), "LMF_STATE_DIR": str(state)},
    )
    assert done.returncode == 1
    assert (
        f"dataset {dataset_path} is {dataset_path.stat().st_size} bytes, above the limit of"
        f" {limit} bytes (LMF_MAX_DATASET_BYTES)"
    ) in done.stderr
    assert "Traceback" not in done.stderr
    assert "embedded AWS" not in done.stdout  # the emulator never started
    assert not state.exists()  # no lock, no log, no process: nothing was started


def test_missing_dataset_file_is_a_clear_error(tmp_path):
    done = run_cli("run", "--embedded", "--dataset", str(tmp_path / "none.csv"))
    assert done.returncode == 1
    assert f"error: dataset file {tmp_path / 'none.csv'} does not exist" in done.stderr
    folder = run_cli("run", "--embedded", "--dataset", str(tmp_path))
    assert folder.returncode == 1
    assert f"error: dataset {tmp_path} is a folder: name the CSV file in it" in folder.stderr


def test_emulator_registers_functions_and_buckets(dataset_bytes):
    settings = Settings(_env_file=None, data_bucket="lmf-emb-data", models_bucket="lmf-emb-m")
    emulator = EmbeddedEmulator("127.0.0.1", free_port())
    emulator.start()
    try:
        emulator.provision(settings, dataset_bytes)

        def unread() -> bytes:
            raise AssertionError("the reference dataset was read for a state that holds one")

        emulator.provision(settings, unread)  # idempotent; the dataset is already there
        lam = aws.client("lambda", endpoint_url=emulator.endpoint_url)
        functions = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
        ingestion = functions[settings.ingestion_function]
        assert ingestion["Handler"] == "local_ml_flow.handlers.ingestion_handler"
        assert ingestion["Timeout"] == 300
        assert "AWS_ENDPOINT_URL" not in ingestion["Environment"]["Variables"]
        s3 = aws.client("s3", endpoint_url=emulator.endpoint_url)
        body = s3.get_object(Bucket="lmf-emb-data", Key="housing.csv")["Body"].read()
        assert body == dataset_bytes
        with pytest.raises(EmulatorError, match="already in use"):
            EmbeddedEmulator("127.0.0.1", emulator.port).start()

        # retrain on upload: off by default; on, uploads invoke ingestion, as Terraform has it
        def notified() -> list[Any]:
            found = s3.get_bucket_notification_configuration(Bucket="lmf-emb-data")
            return list(found.get("LambdaFunctionConfigurations", []))

        def s3_may_invoke() -> bool:
            try:
                policy = json.loads(
                    lam.get_policy(FunctionName=ingestion["FunctionName"])["Policy"]
                )
            except lam.exceptions.ResourceNotFoundException:
                return False
            return any(
                st["Sid"] == RETRAIN_PERMISSION
                and st["Principal"] == {"Service": "s3.amazonaws.com"}
                and "arn:aws:s3:::lmf-emb-data" in json.dumps(st["Condition"])
                for st in policy["Statement"]
            )

        assert notified() == []
        assert not s3_may_invoke()
        emulator.provision(settings.model_copy(update={"retrain_on_upload": True}), unread)
        wanted = notifications.configuration(ingestion["FunctionArn"], "housing.csv")
        assert notified() == wanted["LambdaFunctionConfigurations"]
        assert s3_may_invoke()
        emulator.provision(settings, unread)  # off again: neither stays
        assert notified() == []
        assert not s3_may_invoke()
    finally:
        emulator.stop()
    assert not emulator.running


def test_serve_on_a_busy_port_says_so_before_anything_starts(tmp_path, dataset_path):
    """Found before the emulator starts or a model is trained, not after a success line."""
    state = tmp_path / "state"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli(
            "serve",
            "--embedded",
            "--port",
            str(port),
            "--dataset",
            str(dataset_path),
            env={"LMF_STATE_DIR": str(state), "LMF_EMBEDDED_PORT": str(free_port())},
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"error: cannot serve on 127.0.0.1:{port}" in done.stderr
    assert "--port or LMF_API_PORT" in done.stderr
    assert "ingestion" not in done.stdout
    assert not state.exists()  # the embedded emulator never started


def test_run_embedded_saves_the_functions_registered_while_it_ran(tmp_path, dataset_path):
    """`run` registers the functions in the background: stopping waits for that, so the
    state saved at the stop holds both functions."""
    state = tmp_path / "state"
    done = run_cli(
        "run", "--embedded", "--dataset", str(dataset_path), env={"LMF_STATE_DIR": str(state)}
    )
    assert done.returncode == 0, done.stderr
    emulator = EmbeddedEmulator("127.0.0.1", free_port(), state)
    emulator.start()  # on the saved state, not provisioned again
    try:
        lam = aws.client("lambda", endpoint_url=emulator.endpoint_url)
        names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    finally:
        emulator.stop()
    assert names == {"local-ml-flow-ingestion", "local-ml-flow-inference"}


def test_functions_registered_in_the_background(dataset_bytes):
    settings = Settings(_env_file=None, data_bucket="lmf-bg-data", models_bucket="lmf-bg-m")
    emulator = EmbeddedEmulator("127.0.0.1", free_port())
    emulator.start()
    try:
        emulator.provision(settings, dataset_bytes, functions_in_background=True)
        s3 = aws.client("s3", endpoint_url=emulator.endpoint_url)
        body = s3.get_object(Bucket="lmf-bg-data", Key="housing.csv")["Body"].read()
        assert body == dataset_bytes  # there when provision returns
        emulator.wait_provisioned()
        lam = aws.client("lambda", endpoint_url=emulator.endpoint_url)
        for name in (settings.ingestion_function, settings.inference_function):
            config = lam.get_function_configuration(FunctionName=name)
            assert config["State"] == "Active"
    finally:
        emulator.stop()


def test_a_failed_background_registration_is_raised_and_the_stop_still_stops(
    dataset_bytes, monkeypatch
):
    def broken_package() -> bytes:
        raise OSError("the package cannot be read")

    monkeypatch.setattr("local_ml_flow.embedded.lambda_package.source_zip", broken_package)
    settings = Settings(_env_file=None, data_bucket="lmf-bgf-data", models_bucket="lmf-bgf-m")
    emulator = EmbeddedEmulator("127.0.0.1", free_port())
    emulator.start()
    try:
        emulator.provision(settings, dataset_bytes, functions_in_background=True)
        with pytest.raises(EmulatorError, match="could not register the functions: the package"):
            emulator.wait_provisioned()
    finally:
        emulator.stop()
    assert not emulator.running


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def test_a_named_dataset_becomes_current_and_a_refused_one_changes_nothing(
    tmp_path, dataset_path, dataset_bytes
):
    """``--dataset FILE`` is used: validated, made the current housing.csv (the one it
    replaces archived); a bad file is refused in one line naming what stays; without
    ``--dataset`` the stored one is used, with no download (offline)."""
    state = tmp_path / "state"
    first = run_cli(
        "run",
        "--embedded",
        "--dataset",
        str(dataset_path),
        "--json",
        env={"LMF_STATE_DIR": str(state)},
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["dataset_sha256"] == sha256(dataset_bytes)

    other = tmp_path / "other.csv"
    other.write_bytes(b"\n".join(reversed(dataset_bytes.strip().split(b"\n")[1:])))
    other.write_bytes(dataset_bytes.split(b"\n", 1)[0] + b"\n" + other.read_bytes() + b"\n")
    second = run_cli(
        "run", "--embedded", "--dataset", str(other), "--json", env={"LMF_STATE_DIR": str(state)}
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["dataset_sha256"] == sha256(other.read_bytes())
    assert f"==> dataset {other} (545 rows, sha256 " in second.stderr
    assert (
        "the one it replaced is kept at s3://local-ml-flow-data/datasets/housing-" in second.stderr
    )

    bad = tmp_path / "bad.csv"
    bad.write_text("area,price\n1,2\n")
    refused = run_cli("run", "--embedded", "--dataset", str(bad), env={"LMF_STATE_DIR": str(state)})
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, refused.stderr
    assert errors[0].startswith(
        f"error: dataset {bad} was refused and s3://local-ml-flow-data/housing.csv"
        f" (sha256 {sha256(other.read_bytes())[:12]}) stays current: invalid dataset: "
    )
    assert "Traceback" not in refused.stderr

    offline = _without("LMF_DATASET_PATH")
    offline.update(
        LMF_STATE_DIR=str(state),
        LMF_DATASET_URL="http://127.0.0.1:9/housing.csv",  # nothing listens: no download
        LMF_CACHE_DIR=str(tmp_path / "empty-cache"),
        LMF_EMBEDDED_PORT=str(free_port()),
    )
    stored = subprocess.run(
        [sys.executable, "-m", "local_ml_flow.cli", "run", "--embedded", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=offline,
    )
    assert stored.returncode == 0, stored.stderr
    assert json.loads(stored.stdout)["dataset_sha256"] == sha256(other.read_bytes())


def test_a_device_or_fifo_as_dataset_says_what_it_is(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        done = run_cli(
            "run", "--embedded", "--dataset", path, env={"LMF_STATE_DIR": str(tmp_path / "state")}
        )
        assert done.returncode == 1
        assert (
            f"error: dataset {path} is not a regular file (a device, FIFO or socket)" in done.stderr
        ), done.stderr
    assert not (tmp_path / "state").exists()  # refused before anything started


@contextlib.contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[tuple[str, list[str]]]:
    """``local-ml-flow serve --embedded`` on a free port until the block ends: its URL once
    /health answers, and (after the block) its output lines in the list given."""
    port = free_port()
    output: list[str] = []
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local_ml_flow.cli",
            "serve",
            "--embedded",
            "--port",
            str(port),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LMF_EMBEDDED_PORT": str(free_port()), **env},
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}", output
    finally:
        server.terminate()
        output += server.communicate(timeout=30)[0].splitlines()


def test_serve_comes_up_after_a_failed_first_run(tmp_path, dataset_path):
    """A first run that fails (here: refused by a promotion gate no model passes) does not
    keep the server down: it is said, and the API serves anyway."""
    env = {
        "LMF_DATASET_PATH": str(dataset_path),
        "LMF_MIN_R2": "0.99",
        "LMF_STATE_DIR": str(tmp_path / "state"),
    }
    with serving(env) as (_, output):
        pass
    text = "\n".join(output)
    assert "==> the first run failed: " in text, text
    assert "below LMF_MIN_R2 = 0.99" in text
    assert "The API starts anyway" in text


def test_serve_with_a_new_dataset_trains_on_it_before_serving(
    tmp_path, dataset_path, dataset_bytes
):
    state = tmp_path / "state"
    first = run_cli(
        "run", "--embedded", "--dataset", str(dataset_path), env={"LMF_STATE_DIR": str(state)}
    )
    assert first.returncode == 0, first.stderr
    other = tmp_path / "other.csv"
    header, *rows = dataset_bytes.strip().split(b"\n")
    other.write_bytes(b"\n".join([header, *reversed(rows)]) + b"\n")
    with serving({"LMF_STATE_DIR": str(state)}, "--dataset", str(other)) as (url, _):
        served = httpx.post(f"{url}/predict", json={"houses": [EXAMPLE_HOUSE]}).json()
        record = httpx.get(f"{url}/pipeline/runs/{served['run_id']}").json()
    assert record["dataset_sha256"] == sha256(other.read_bytes())


def test_a_bad_reference_dataset_is_refused_before_it_is_stored(tmp_path, dataset_path):
    """LMF_DATASET_PATH naming a file no run can train on, on an empty state: one line, and
    nothing stored, so the next start with a good file works (no lock-out)."""
    bad = tmp_path / "bad.csv"
    bad.write_text("area,price\n1,2\n")
    state = tmp_path / "state"
    refused = run_cli(
        "run", "--embedded", env={"LMF_DATASET_PATH": str(bad), "LMF_STATE_DIR": str(state)}
    )
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, refused.stderr
    assert errors[0].startswith(f"error: the dataset {bad} was refused, and nothing was stored:")
    good = run_cli(
        "run",
        "--embedded",
        "--json",
        env={"LMF_DATASET_PATH": str(dataset_path), "LMF_STATE_DIR": str(state)},
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["score"] == "65.29%"


def test_dataset_with_a_registered_name_is_refused_in_one_line(tmp_path, dataset_path):
    done = run_cli(
        "run",
        "--embedded",
        "--name",
        "homes",
        "--dataset",
        str(dataset_path),
        env={"LMF_STATE_DIR": str(tmp_path / "state")},
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: --dataset is housing's file; a registered dataset takes new versions with"
        " `local-ml-flow dataset add homes FILE`"
    )


def test_run_next_to_a_running_stack_says_how_to_use_it_and_that_works(tmp_path, dataset_path):
    """``run --embedded`` on the state a server uses names it and the command that runs
    against it; that command runs the pipeline through the running stack's emulator."""
    env = {"LMF_STATE_DIR": str(tmp_path / "state"), "LMF_DATASET_PATH": str(dataset_path)}
    with serving(env, "--no-run") as (url, _):
        refused = run_cli("run", "--embedded", env=env)
        assert refused.returncode == 1
        errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, refused.stderr
        found = re.search(r"to run against that stack: AWS_ENDPOINT_URL=(\S+) (\S+) run", errors[0])
        assert found, errors[0]
        assert found.group(2) == "./bin/local-ml-flow"
        against = run_cli("run", "--json", env={**env, "AWS_ENDPOINT_URL": found.group(1)})
        assert against.returncode == 0, against.stderr
        run_id = json.loads(against.stdout)["run_id"]
        assert httpx.get(f"{url}/pipeline/runs/{run_id}").json()["status"] == "succeeded"
