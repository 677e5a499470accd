"""The embedded stack as a user runs it: state that survives restarts, real functions, a guard.

Every test drives ``local-ml-flow serve --embedded`` (a real uvicorn server, MiniStack in
its subprocess) on free ports with a state directory of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from local_ml_flow.embedded import EmbeddedEmulator, EmulatorError
from tests.api.conftest import ApiServer, assert_error
from tests.conftest import emulator_client, free_port

DATA = "local-ml-flow-data"
MODELS = "local-ml-flow-models"
INGESTION = "local-ml-flow-ingestion"
INFERENCE = "local-ml-flow-inference"


def serve(state: Path, dataset_path: Path, *extra: str, env: dict[str, str] | None = None):
    """``local-ml-flow serve --embedded`` on the state directory ``state``, with the dataset
    a new state starts with (LMF_DATASET_PATH: a restart keeps what is stored)."""
    log = state.parent / f"server-{time.monotonic_ns()}.log"
    args = ["--embedded", "--no-run", *extra]
    settings = {"LMF_STATE_DIR": str(state), "LMF_DATASET_PATH": str(dataset_path)}
    return ApiServer(log, args, {**settings, **(env or {})})


def emulator_pid(state: Path, port: int) -> int:
    """MiniStack's pid (its PID file lives in its TMPDIR, inside the state directory)."""
    return int((state / "tmp" / f"ministack-{port}.pid").read_text())


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def upload(tmp_path: Path, dataset_path: Path) -> bytes:
    """A valid dataset different from the reference one (its rows reversed)."""
    header, *rows = dataset_path.read_bytes().strip().split(b"\n")
    return b"\n".join([header, *reversed(rows)]) + b"\n"


def test_runs_models_and_uploads_survive_a_restart(
    state: Path, dataset_path: Path, upload: bytes
) -> None:
    api = serve(state, dataset_path)
    try:
        assert f"state in {state.resolve()}" in api.log.read_text()
        with httpx.Client(base_url=api.url, timeout=120) as http:
            first = http.post("/pipeline/runs", json={})
            assert first.status_code == 201, first.text
            uploaded = http.put(
                "/bucket/dataset", files={"file": ("housing.csv", upload, "text/csv")}
            )
            assert uploaded.status_code == 200, uploaded.text
            second = http.post(
                "/pipeline/runs", json={"model": "gradient_boosting", "promotion": "always"}
            )
            assert second.status_code == 201, second.text
            predicted = http.post("/predict", json={"houses": [EXAMPLE_HOUSE]}).json()
            history = http.get("/pipeline/runs").json()["runs"]
        lam = emulator_client("lambda", api.emulator_url)
        created = {
            n: lam.get_function(FunctionName=n)["Configuration"] for n in (INGESTION, INFERENCE)
        }
    finally:
        api.stop()
    assert predicted["run_id"] == second.json()["run_id"]
    saved = (state / "emulator" / "lambda.json").read_text()  # written by the clean stop
    assert INGESTION in saved
    assert INFERENCE in saved

    api = serve(state, dataset_path)  # the same command again, the same state
    try:
        with httpx.Client(base_url=api.url, timeout=120) as http:
            assert http.get("/ready").status_code == 200
            assert http.get("/pipeline/runs").json()["runs"] == history
            for run, current in ((first.json(), False), (second.json(), True)):
                # the same record, except that the first run was current when it was made
                assert http.get(f"/pipeline/runs/{run['run_id']}").json() == {
                    **run,
                    "current": current,
                }
            again = http.post("/predict", json={"houses": [EXAMPLE_HOUSE]}).json()
            assert again == predicted
            dataset = http.get("/bucket/dataset", params={"limit": 1}).json()
            assert dataset["values"][0]["price"] == upload.split(b"\n")[1].split(b",")[0].decode()
        s3 = emulator_client("s3", api.emulator_url)
        stored = s3.get_object(Bucket=DATA, Key="housing.csv")["Body"].read()
        assert stored == upload  # provisioning never overwrites a user's dataset
        run_id = second.json()["run_id"]
        models = s3.list_objects_v2(Bucket=MODELS, Prefix=f"runs/{run_id}/")["Contents"]
        assert {o["Key"].rsplit("/", 1)[-1] for o in models} >= {"model.joblib"}
        # functions and bucket settings were saved on the clean stop, not re-created
        lam = emulator_client("lambda", api.emulator_url)
        for name, config in created.items():
            now = lam.get_function(FunctionName=name)["Configuration"]
            assert (now["LastModified"], now["CodeSha256"]) == (
                config["LastModified"],
                config["CodeSha256"],
            )
        assert s3.get_bucket_versioning(Bucket=DATA)["Status"] == "Enabled"
    finally:
        api.stop()
    assert not list((state / "tmp").glob("*")), "worker folders left behind"


@pytest.mark.full  # tests/durability crashes the emulator at each write by default
def test_kill_9_of_the_emulator_loses_no_acknowledged_object(
    state: Path, dataset_path: Path
) -> None:
    api = serve(state, dataset_path)
    acknowledged: dict[str, str] = {}
    try:
        with httpx.Client(base_url=api.url, timeout=120) as http:
            run = http.post("/pipeline/runs", json={})
            assert run.status_code == 201, run.text
        s3 = emulator_client("s3", api.emulator_url)
        stop = threading.Event()

        def burst() -> None:
            i = 0
            while not stop.is_set():
                body = os.urandom(2048 + i)
                try:
                    s3.put_object(Bucket=DATA, Key=f"burst/{i}", Body=body)
                except Exception:  # the emulator died under us: unacknowledged
                    return
                acknowledged[f"burst/{i}"] = hashlib.sha256(body).hexdigest()
                i += 1

        writer = threading.Thread(target=burst)
        writer.start()
        time.sleep(1.0)
        os.killpg(emulator_pid(state, api.embedded_port), signal.SIGKILL)
        stop.set()
        writer.join(timeout=60)
        with httpx.Client(base_url=api.url, timeout=30) as http:
            ready = http.get("/ready")  # down, and said why (unless restarted already)
            assert ready.status_code == 503 or ready.json()["status"] == "ready", ready.text
    finally:
        api.stop()
    assert len(acknowledged) > 10

    api = serve(state, dataset_path)
    try:
        s3 = emulator_client("s3", api.emulator_url)
        for key, digest in acknowledged.items():
            body = s3.get_object(Bucket=DATA, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == digest, key
        with httpx.Client(base_url=api.url, timeout=120) as http:
            assert http.get("/ready").status_code == 200  # provisioning repaired the rest
            assert http.get(f"/pipeline/runs/{run.json()['run_id']}").status_code == 200
            predicted = http.post("/predict", json={"houses": [EXAMPLE_HOUSE]})
            assert predicted.json()["run_id"] == run.json()["run_id"]
            assert http.post("/pipeline/runs", json={}).status_code == 201
    finally:
        api.stop()


def aws_lambda_invoke(endpoint: str, function: str, out: Path) -> dict[str, Any]:
    """``aws lambda invoke --function-name F out.json`` (boto3 without a payload if no CLI)."""
    aws = shutil.which("aws")
    if aws is not None:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
        proc = subprocess.run(
            [aws, "lambda", "invoke", "--function-name", function, "--cli-read-timeout", "600",
             str(out)],
            capture_output=True, text=True, env=env, timeout=600, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        response: dict[str, Any] = json.loads(proc.stdout)
    else:
        print("aws CLI not found: invoking through boto3 with no payload, as the CLI does")
        raw = emulator_client("lambda", endpoint).invoke(FunctionName=function)
        out.write_bytes(raw["Payload"].read())
        response = {k: v for k, v in raw.items() if k in {"StatusCode", "FunctionError"}}
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response, out.read_text()
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_aws_lambda_invoke_runs_the_original_flow(
    state: Path, dataset_path: Path, tmp_path: Path
) -> None:
    api = serve(state, dataset_path)
    try:
        trained = aws_lambda_invoke(api.emulator_url, INGESTION, tmp_path / "ingestion.json")
        scored = aws_lambda_invoke(api.emulator_url, INFERENCE, tmp_path / "inference.json")
        assert scored["run_id"] == trained["run_id"]
        assert scored["score"] == "65.29%"
        s3 = emulator_client("s3", api.emulator_url)
        data = {o["Key"] for o in s3.list_objects_v2(Bucket=DATA)["Contents"]}
        assert {"housing.csv", "x_test.joblib", "y_test.joblib", "score.txt"} <= data
        assert s3.get_object(Bucket=DATA, Key="score.txt")["Body"].read() == b"65.29%"
        assert s3.head_object(Bucket=MODELS, Key="model.joblib")["ContentLength"] > 0
        with httpx.Client(base_url=api.url, timeout=60) as http:  # the API sees that run
            assert http.get("/result/local-ml-flow-data").json() == {"content": "65.29%"}
            houses = {"houses": [EXAMPLE_HOUSE]}
            assert http.post("/predict", json=houses).json()["run_id"] == trained["run_id"]
            # another run made outside the API: the very next answers are the new run's
            lam = emulator_client("lambda", api.emulator_url)
            seed = b'{"feature_set": "seed", "promotion": "always"}'  # worse, served anyway
            again = lam.invoke(FunctionName=INGESTION, Payload=seed)
            newer = json.loads(again["Payload"].read())
            lam.invoke(FunctionName=INFERENCE, Payload=b"{}")
            assert http.post("/predict", json=houses).json()["run_id"] == newer["run_id"]
            assert http.get("/result/local-ml-flow-data").json() == {"content": "35.62%"}
        # a refused event: MiniStack reports every handler error as Runtime.HandlerError
        lam = emulator_client("lambda", api.emulator_url)
        refused = lam.invoke(FunctionName=INGESTION, Payload=b'{"test_size": 7}')
        error = json.loads(refused["Payload"].read())
        assert refused["FunctionError"] == "Unhandled"
        assert error["errorType"] == "Runtime.HandlerError"
        assert "test_size" in error["errorMessage"]
    finally:
        api.stop()


def test_the_api_through_the_lambda_api_in_embedded_mode(state: Path, dataset_path: Path) -> None:
    api = serve(state, dataset_path, env={"LMF_INVOKER": "lambda"})
    try:
        with httpx.Client(base_url=api.url, timeout=300) as http:
            run = http.post("/pipeline/runs", json={})
            assert run.status_code == 201, run.text
            assert run.json()["metrics"]["score"] == "65.29%"
            # in-process this is 422 InvalidRequestError (tests/api); MiniStack's Lambda API
            # reports every handler error as Runtime.HandlerError: 502, the message kept
            refused = http.post("/pipeline/runs", json={"test_size": 0.001})
            error = assert_error(refused, 502, "Runtime.HandlerError")
            assert "too few for test_size 0.001" in error["message"]
    finally:
        api.stop()


def test_the_emulator_refuses_browser_requests(state: Path, dataset_path: Path) -> None:
    api = serve(state, dataset_path)
    try:
        base = api.emulator_url
        s3 = emulator_client("s3", base)
        assert DATA in {b["Name"] for b in s3.list_buckets()["Buckets"]}  # SDKs get through
        page = {"Origin": "https://example.com"}
        for method, path, headers in [
            ("GET", f"/{DATA}/housing.csv", page),
            ("OPTIONS", f"/{DATA}/housing.csv", {**page, "Access-Control-Request-Method": "PUT"}),
            ("PUT", f"/{DATA}/housing.csv", page),
            ("POST", "/_ministack/reset", page),
            ("GET", f"/{DATA}/housing.csv", {"Sec-Fetch-Site": "cross-site"}),
            ("GET", f"/{DATA}/housing.csv", {"Host": "rebound.example.com"}),
        ]:
            response = httpx.request(method, base + path, headers=headers, content=b"x")
            assert response.status_code == 403, (method, path, headers, response.text)
            assert "access-control-allow-origin" not in response.headers
        assert s3.head_object(Bucket=DATA, Key="housing.csv")["ContentLength"] > 0
    finally:
        api.stop()


def test_the_emulators_admin_endpoints_need_the_stacks_token(
    state: Path, dataset_path: Path
) -> None:
    """``POST /_ministack/reset`` from any local process once wiped the state on disk."""
    api = serve(state, dataset_path)
    try:
        base = api.emulator_url
        with httpx.Client(base_url=api.url, timeout=120) as http:
            run = http.post("/pipeline/runs", json={})
            assert run.status_code == 201, run.text
        for method, path, headers in [
            ("POST", "/_ministack/reset", {}),
            ("POST", "/_ministack/reset?init=1", {"x-lmf-admin-token": "guess"}),
            ("GET", "/_ministack/health", {}),
            ("GET", "/_ministack/ready", {}),
            ("POST", "/_ministack/config", {}),
            ("DELETE", "/_ministack/reset", {}),
            ("POST", "//_ministack/reset", {}),
        ]:
            response = httpx.request(method, base + path, headers=headers, content=b"{}")
            assert response.status_code == 403, (method, path, response.text)
            assert "x-lmf-admin-token" in response.json()["message"]
        token_file = state / "admin-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        close = httpx.post(f"{base}/_ministack/reset", headers={"x-lmf-admin-token": token[:-1]})
        assert close.status_code == 403
        # the stack's own secret gets through (its readiness check sends it); the data plane
        # needs none, and everything is still there
        health = httpx.get(f"{base}/_ministack/health", headers={"x-lmf-admin-token": token})
        assert health.status_code == 200, health.text
        s3 = emulator_client("s3", base)
        assert s3.head_object(Bucket=DATA, Key="housing.csv")["ContentLength"] > 0
        with httpx.Client(base_url=api.url, timeout=60) as http:
            assert http.get("/ready").status_code == 200
            assert [r["run_id"] for r in http.get("/pipeline/runs").json()["runs"]] == [
                run.json()["run_id"]
            ]
    finally:
        api.stop()

    api = serve(state, dataset_path)  # a new secret at every start: the old one is refused
    try:
        assert (state / "admin-token").read_text().strip() != token
        stale = httpx.get(
            f"{api.emulator_url}/_ministack/health", headers={"x-lmf-admin-token": token}
        )
        assert stale.status_code == 403
    finally:
        api.stop()


def reset(state: Path) -> subprocess.CompletedProcess[str]:
    """``local-ml-flow reset --yes --state-dir STATE``."""
    cmd = [sys.executable, "-m", "local_ml_flow.cli", "reset", "--yes", "--state-dir", str(state)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_fresh_reset_and_one_stack_per_state(state: Path, dataset_path: Path) -> None:
    api = serve(state, dataset_path)
    try:
        with httpx.Client(base_url=api.url, timeout=120) as http:
            assert http.post("/pipeline/runs", json={}).status_code == 201
        with pytest.raises(EmulatorError, match="in use"):
            EmbeddedEmulator("127.0.0.1", free_port(), state).start()
        busy = reset(state)
        assert busy.returncode == 1
        assert "in use" in busy.stderr
    finally:
        api.stop()

    api = serve(state, dataset_path, "--fresh")
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            assert http.get("/pipeline/runs").json()["runs"] == []
            assert http.get("/ready").status_code == 200
    finally:
        api.stop()

    done = reset(state)
    assert done.returncode == 0, done.stderr
    assert not (state / "s3").exists()
    assert not (state / "emulator").exists()


def test_start_all_keeps_the_state_across_restarts(tmp_path: Path, dataset_path: Path) -> None:
    """``./bin/start_all.sh --embedded`` twice on one state: trains once, serves the same run."""
    from tests.api.test_start_all import start, stop, wait_for

    first_log = tmp_path / "first.log"  # start() puts the state in tmp_path / "state"
    process, port = start(["--embedded", "--dataset", str(dataset_path)], first_log)
    try:
        result = wait_for(f"http://127.0.0.1:{port}/result/local-ml-flow-data", process, first_log)
        assert result.json() == {"content": "65.29%"}
        before = httpx.post(
            f"http://127.0.0.1:{port}/predict", json={"houses": [EXAMPLE_HOUSE]}, timeout=60
        ).json()
    finally:
        assert stop(process) == 0
    assert f"state in {tmp_path / 'state'}" in first_log.read_text()

    second_log = tmp_path / "second.log"
    process, port = start(["--embedded", "--dataset", str(dataset_path)], second_log)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process, second_log)
        after = httpx.post(
            f"http://127.0.0.1:{port}/predict", json={"houses": [EXAMPLE_HOUSE]}, timeout=60
        ).json()
        runs = httpx.get(f"http://127.0.0.1:{port}/pipeline/runs", timeout=60).json()["runs"]
    finally:
        assert stop(process) == 0
    assert after == before
    assert [r["run_id"] for r in runs] == [before["run_id"]]
    assert "R² 0.6529" not in second_log.read_text()  # a model was there: no retraining


BLOCK_MOTO = """
import sys
class NoMoto:
    def find_spec(self, name, path=None, target=None):
        if name == "moto" or name.startswith("moto."):
            raise ImportError("moto is a test dependency only")
sys.meta_path.insert(0, NoMoto())
from local_ml_flow.cli import main
code = main(sys.argv[1:])
assert not [m for m in sys.modules if m == "moto" or m.startswith("moto.")]
sys.exit(code)
"""


def test_embedded_mode_runs_without_moto(tmp_path: Path, dataset_path: Path) -> None:
    env = {**os.environ, "LMF_EMBEDDED_PORT": str(free_port()), "LMF_STATE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_MOTO, "run", "--embedded", "--dataset", str(dataset_path)],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "R2:     0.6529 (65.29%)" in done.stdout


def test_sigterm_stops_the_emulator_before_the_server_exits(
    state: Path, dataset_path: Path
) -> None:
    """``docker stop``, systemd, a terminal closing: SIGTERM is a clean stop, as Ctrl-C is."""
    api = serve(state, dataset_path)
    try:
        emulator = emulator_pid(state, api.embedded_port)
    finally:
        api.process.send_signal(signal.SIGTERM)
        code = api.process.wait(timeout=60)
        api.stop()
    assert code == 0, api.log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(emulator, 0)  # gone before the server exited, not orphaned
    assert (state / "emulator" / "lambda.json").is_file()  # saved by the graceful stop
    assert not (state / "tmp").exists()  # worker folders removed
    assert reset(state).returncode == 0  # the state is free again


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on (IPv4 and IPv6)."""
    inodes = {
        os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1]
        for fd in os.listdir(f"/proc/{pid}/fd")
        if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
    }
    found: set[tuple[str, int]] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                if len(address) == 8:
                    address = ".".join(str(b) for b in reversed(bytes.fromhex(address)))
                found.add((address, int(port, 16)))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_the_emulator_listens_on_loopback_only(state: Path, dataset_path: Path) -> None:
    api = serve(state, dataset_path)
    try:
        pid = emulator_pid(state, api.embedded_port)
        time.sleep(1)  # side listeners (MQTT 8883, SFTP) would start right after the port
        assert listening_sockets(pid) == {("127.0.0.1", api.embedded_port)}
    finally:
        api.stop()


def test_a_registered_dataset_trains_through_the_lambda_api_and_survives_a_restart(
    state: Path, dataset_path: Path
) -> None:
    """``{"dataset": "wine"}`` through MiniStack's Lambda API (the functions as workers), the
    API on the Lambda invoker; after a restart the dataset, its run and its model serve."""
    from tests import datasets

    wine = datasets.csv(datasets.wine())
    api = serve(state, dataset_path, env={"LMF_INVOKER": "lambda"})
    try:
        with httpx.Client(base_url=api.url, timeout=300) as http:
            registered = http.put(
                "/datasets/wine",
                files={"file": ("wine.csv", wine, "text/csv")},
                data={"target": "cultivar"},
            )
            assert registered.status_code == 200, registered.text
            assert registered.json()["schema"]["labels"] == [0, 1, 2]
        lam = emulator_client("lambda", api.emulator_url)
        trained = json.loads(
            lam.invoke(FunctionName=INGESTION, Payload=b'{"dataset": "wine"}')["Payload"].read()
        )
        assert trained["dataset"] == "wine", trained
        assert trained["model"] == "logistic"
        scored = json.loads(
            lam.invoke(FunctionName=INFERENCE, Payload=b'{"dataset": "wine"}')["Payload"].read()
        )
        assert scored["run_id"] == trained["run_id"], scored
        assert scored["accuracy"] > 0.9
        # {} still runs the original flow on housing, untouched by the wine run
        housing = json.loads(lam.invoke(FunctionName=INGESTION, Payload=b"{}")["Payload"].read())
        assert "dataset" not in housing
        assert housing["n_train"] == 436
    finally:
        api.stop()
    api = serve(state, dataset_path)
    try:
        with httpx.Client(base_url=api.url, timeout=300) as http:
            detail = http.get("/datasets/wine").json()
            assert detail["current_run"]["run_id"] == trained["run_id"]
            first = datasets.wine().drop(columns=["cultivar"]).iloc[0].to_dict()
            predicted = http.post("/datasets/wine/predict", json={"rows": [first]})
            assert predicted.status_code == 200, predicted.text
            assert predicted.json()["predictions"] == [0]  # labels come back as numbers
            assert predicted.json()["run_id"] == trained["run_id"]
    finally:
        api.stop()


def wait_for_run(http: httpx.Client, known: set[str], timeout_s: float = 300) -> dict[str, Any]:
    """The first run not in ``known`` once it finished (and, succeeded, was promoted or
    kept: the API lists its metrics a moment before the pointer moves)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run in http.get("/pipeline/runs").json()["runs"]:
            if run["run_id"] in known or run["status"] not in ("succeeded", "failed"):
                continue
            if run["status"] == "failed" or run["current"] or run["not_promoted"]:
                return dict(run)
        time.sleep(0.5)
    raise AssertionError(f"no new run finished within {timeout_s} s")


@pytest.mark.full  # MiniStack's Lambda workers train cold: ~10-30 s on a loaded machine
def test_retrain_on_upload_through_ministacks_notifications(
    state: Path, dataset_path: Path, upload: bytes
) -> None:
    """LMF_RETRAIN_ON_UPLOAD=true: MiniStack's own S3 notifications invoke the ingestion
    function (its Lambda worker) for each new dataset version; off, nothing happens."""
    api = serve(state, dataset_path, env={"LMF_RETRAIN_ON_UPLOAD": "true"})
    try:
        with httpx.Client(base_url=api.url, timeout=120) as http:
            first = http.post("/pipeline/runs", json={})
            assert first.status_code == 201, first.text
            known = {first.json()["run_id"]}
            put = http.put("/bucket/dataset", files={"file": ("housing.csv", upload, "text/csv")})
            assert put.status_code == 200, put.text
            retrained = wait_for_run(http, known)
            assert "-s3-" in retrained["run_id"]
            assert retrained["status"] == "succeeded", retrained
            assert retrained["current"] is True  # new data: promoted by the policy
            assert retrained["dataset_sha256"] == put.json()["sha256"]
            known.add(retrained["run_id"])
            # a bad file written by any S3 client: a failed run saying why, the model stays
            s3 = emulator_client("s3", api.emulator_url)
            s3.put_object(Bucket=DATA, Key="housing.csv", Body=b"a,b\n1,2\n")
            failed = wait_for_run(http, known)
            assert failed["status"] == "failed"
            assert "missing columns: price" in failed["error"]["message"]
            houses = {"houses": [EXAMPLE_HOUSE]}
            assert http.post("/predict", json=houses).json()["run_id"] == retrained["run_id"]
            history = http.get("/pipeline/runs").json()["runs"]
    finally:
        api.stop()

    api = serve(state, dataset_path)  # the setting off: the notification is removed
    try:
        s3 = emulator_client("s3", api.emulator_url)
        assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(
            Bucket=DATA
        )
        with httpx.Client(base_url=api.url, timeout=120) as http:
            put = http.put("/bucket/dataset", files={"file": ("housing.csv", upload, "text/csv")})
            assert put.status_code == 200, put.text
            time.sleep(5)  # no configuration: MiniStack fires nothing; a run would show by now
            assert http.get("/pipeline/runs").json()["runs"] == history
    finally:
        api.stop()
