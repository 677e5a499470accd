"""The smoke check of the built images (run by bin/check_images.sh): the API image serves a run.

Started with the container command to use (podman with its flags, or docker) and the two image
names. Runs the API image as a user does (its own command, embedded mode inside it, port 8000
published), checks /ready, a pipeline run, /predict, the dashboard, the user, the HEALTHCHECK
command and what the images hold; then runs the Lambda image's handlers through the image's
entry point (the Runtime Interface Client) against a runtime API answered here, on the API
container's network (its emulator on 127.0.0.1:4566), `{}` events, ingestion then inference.
Prints each step and the figures; exits 1 at the first failure, naming it.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import queue
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPECTED_SCORE = "65.29%"  # feature_set "all" + linear on the reference housing.csv
SEED_FEATURES_R2 = (0.30, 0.40)  # feature_set "seed" + linear: the original's 35%
RUNTIME_API = "/2018-06-01/runtime"

# Run inside each image (as root, to see everything): paths that must not be there. Printed one
# per line; nothing printed is a pass. Third-party packages (under site-packages, and the
# Lambda's --target dependencies beside our package in /var/task) may ship tests and test keys
# of their own: only the names below are looked for there.
_FORBIDDEN_SCAN = r"""
import os, sys
NAMES = {".git", ".venv", ".lmf", ".env", ".pytest_cache", ".mypy_cache", ".ruff_cache",
         ".terraform", "terraform.tfstate", "terraform.tfstate.backup", "admin-token",
         "housing.csv", "id_rsa", "id_ed25519", ".netrc", ".pypirc", ".git-credentials"}
SKIP = {"/proc", "/sys", "/dev", "/run"}
# the system's and the runtime's own files (Debian; AWS's Lambda base: Amazon Linux, /var/runtime)
VENDOR = ("/usr/lib/", "/usr/lib64/", "/usr/share/", "/var/runtime/", "/var/lang/lib/")
task = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
def third_party(path):
    if "/site-packages/" in path or path.startswith(VENDOR):
        return True
    if path.startswith(task + "/") and not path.startswith(task + "/local_ml_flow"):
        return True
    return path.startswith("/usr/local/lib/python3")
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP]
    for name in dirs + files:
        path = os.path.join(root, name)
        if name in NAMES or name.endswith(".tfvars"):
            print("forbidden name:", path)
        elif root.endswith("/.aws") and name == "credentials":
            print("AWS credentials:", path)
        elif "/local-ml-flow/state" in path or (
            path.startswith("/home/app/.cache/local-ml-flow/") and name in files
        ):
            print("state or cache:", path)
        elif not third_party(path) and (
            name in ("tests", "conftest.py") or name.endswith(".csv")
        ):
            print("test data or tests:", path)
        elif name in files and not third_party(path) and not path.startswith("/etc/ssl/"):
            try:
                if os.path.islink(path) or os.path.getsize(path) > 1 << 20:
                    continue
                with open(path, "rb") as f:
                    if b"PRIVATE KEY-----" in f.read():
                        print("private key:", path)
            except OSError:
                pass
"""


class CheckError(Exception):
    """A check that failed: its message says which and why."""


@dataclass
class Engine:
    """The container command (its words, e.g. podman with its runtime flags) and run flags."""

    command: list[str]
    run_flags: list[str]

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        argv = [*self.command, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise CheckError(
                f"`{shlex.join(argv)}` exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc.stdout

    def run(self, *args: str) -> str:
        return self("run", *self.run_flags, *args).strip()


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def call(
    url: str, body: Any = None, method: str | None = None, timeout: float = 600
) -> tuple[int, Any]:
    """(status, JSON or text) of a request; a JSON body is sent as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http only
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw, kind = (
                response.status,
                response.read(),
                response.headers.get_content_type(),
            )
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers.get_content_type()
    text = raw.decode("utf-8", errors="replace")
    return status, json.loads(text) if kind == "application/json" else text


def expect(status: int, payload: Any, want: int, what: str) -> Any:
    if status != want:
        raise CheckError(f"{what}: HTTP {status} (expected {want}): {str(payload)[:1000]}")
    return payload


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------- the API image ---------------


def start_api(engine: Engine, image: str, name: str, port: int, dataset: Path | None) -> float:
    """Start the API image as a user does (its own command); seconds until /ready said 200."""
    mounts = ["-v", f"{dataset}:/data/housing.csv:ro", "-e", "LMF_DATASET_PATH=/data/housing.csv"]
    started = time.monotonic()
    engine.run(
        "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", *(mounts if dataset else []), image
    )
    deadline = started + 300
    last: Any = "no answer"
    while time.monotonic() < deadline:
        try:
            status, last = call(f"http://127.0.0.1:{port}/ready", timeout=5)
            if status == 200:
                return time.monotonic() - started
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        if engine("inspect", "--format", "{{.State.Running}}", name).strip() != "true":
            raise CheckError(f"the API container stopped:\n{engine('logs', name, check=False)}")
        time.sleep(0.5)
    raise CheckError(f"/ready did not answer 200 within 300 s: {last}")


def check_api(engine: Engine, name: str, port: int) -> str:
    """The API's checks; returns the id of the run made current (seed features, ~35%)."""
    base = f"http://127.0.0.1:{port}"
    ready = expect(*call(f"{base}/ready"), 200, "GET /ready")
    say(f"/ready: {ready['status']} (mode {ready['mode']})")

    run = expect(
        *call(f"{base}/pipeline/runs", {"feature_set": "seed"}), 201, "POST /pipeline/runs"
    )
    r2 = run["metrics"]["r2"]
    if run["status"] != "succeeded" or not SEED_FEATURES_R2[0] < r2 < SEED_FEATURES_R2[1]:
        raise CheckError(f"the pipeline run through the API: {run}")
    say(f"pipeline run through the API: {run['run_id']} {run['status']}, R² {r2:.4f}")
    promote = f"{base}/pipeline/runs/{run['run_id']}/promote"
    expect(*call(promote, {}, method="POST"), 200, "POST .../promote")
    result = expect(*call(f"{base}/result/local-ml-flow-data"), 200, "GET /result")
    say(f"promoted it: /result says {result['content']}")

    openapi = expect(*call(f"{base}/openapi.json"), 200, "GET /openapi.json")
    examples = openapi["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    body = examples["examples"]["one house"]["value"]  # the first house of housing.csv
    answer = expect(*call(f"{base}/predict", body), 200, "POST /predict")
    if answer["run_id"] != run["run_id"] or not answer["predictions"][0] > 0:
        raise CheckError(f"/predict: {answer}")
    say(f"/predict: {answer['predictions'][0]:,.0f} from run {answer['run_id']}")

    status, page = call(f"{base}/ui")
    if status != 200 or "<html" not in str(page).lower():
        raise CheckError(f"GET /ui: HTTP {status}: {str(page)[:300]}")
    say(f"dashboard /ui: HTTP 200, {len(page)} characters of HTML")

    proc_status = engine("exec", name, "python", "-c", "print(open('/proc/1/status').read())")
    uid = next(
        (line.split()[1] for line in proc_status.splitlines() if line.startswith("Uid:")), ""
    )
    if uid in ("", "0"):
        raise CheckError(f"the API process runs as uid {uid or '?'} (root)")
    say(f"the API process runs as uid {uid}, not root")
    return str(run["run_id"])


def check_healthcheck(engine: Engine, image: str, name: str) -> None:
    """Run the image's own HEALTHCHECK command in the running container; it must pass."""
    raw = engine("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image).strip()
    test = (json.loads(raw) or {}).get("Test") if raw not in ("", "null") else None
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        raise CheckError(f"{image} has no HEALTHCHECK command (Config.Healthcheck: {raw})")
    argv = test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]
    engine("exec", name, *argv, timeout=30)
    say(f"the image's HEALTHCHECK passes: {shlex.join(argv)}")


def check_contents(engine: Engine, image: str) -> None:
    """No test data, .git, .venv, state or secrets anywhere in the image."""
    found = engine(
        "run", *engine.run_flags, "--rm", "--user", "0", "--entrypoint", "python3", image,
        "-c", _FORBIDDEN_SCAN,
    ).strip()  # fmt: skip
    if found:
        raise CheckError(f"{image} holds what it must not:\n{found}")
    say(f"{image}: no test data, .git, .venv, state or secrets")


# ---------------------------------------------------------------- the Lambda image ------------


@dataclass
class RuntimeApi:
    """A minimal Lambda runtime API: hands out queued events, records answers (one function)."""

    events: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    answers: queue.Queue[tuple[str, str, Any]] = field(default_factory=queue.Queue)
    first_poll: float | None = None

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(
                self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{RUNTIME_API}/invocation/next":
                    self._reply(404, b'{"errorMessage": "unknown path"}')
                    return
                if api.first_poll is None:
                    api.first_poll = time.monotonic()
                request_id, event = api.events.get()
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 300_000),
                    "Lambda-Runtime-Invoked-Function-Arn": (
                        "arn:aws:lambda:us-east-1:000000000000:function:check"
                    ),
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:24]}",
                }
                self._reply(200, event, headers)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.removeprefix(RUNTIME_API).strip("/").split("/")
                if parts == ["init", "error"]:
                    api.answers.put(("", "init error", json.loads(body or b"null")))
                elif (
                    len(parts) == 3
                    and parts[0] == "invocation"
                    and parts[2] in ("response", "error")
                ):
                    api.answers.put((parts[1], parts[2], json.loads(body or b"null")))
                else:
                    self._reply(404, b'{"errorMessage": "unknown path"}')
                    return
                self._reply(202, b'{"status": "OK"}')

        return Handler


def invoke_in_image(
    engine: Engine, image: str, api_name: str, gateway: str, function: str, handler: str
) -> tuple[dict[str, Any], float, float]:
    """Start the Lambda image with `handler` as its command, send it `{}` through the runtime
    API; (its answer, seconds to its first poll (init), seconds to the answer)."""
    runtime = RuntimeApi()
    server = http.server.ThreadingHTTPServer((gateway, 0), runtime.handler())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    request_id = str(uuid.uuid4())
    runtime.events.put((request_id, b"{}"))
    name = f"{api_name}-{function}"
    env = {
        "AWS_LAMBDA_RUNTIME_API": f"{gateway}:{server.server_address[1]}",
        # what LocalStack injects into a function; AWS never gives one (no endpoint on AWS)
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": f"local-ml-flow-{function}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/local-ml-flow-{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "check",
    }
    flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    started = time.monotonic()
    try:
        engine.run(
            "-d", "--name", name, "--network", f"container:{api_name}", *flags, image, handler
        )
        try:
            got_id, kind, answer = runtime.answers.get(timeout=600)
        except queue.Empty:
            raise CheckError(
                f"{function}: no answer within 600 s:\n{engine('logs', name, check=False)}"
            ) from None
        took = time.monotonic() - started
        if kind != "response" or got_id != request_id:
            logs = engine("logs", name, check=False)
            raise CheckError(f"{function} ({handler}): {kind}: {answer}\n{logs[-3000:]}")
        init = (runtime.first_poll or started) - started
        return answer, init, took
    finally:
        engine("kill", name, check=False)  # the runtime client would wait for the next event
        engine("rm", "-f", name, check=False)
        server.shutdown()
        server.server_close()


def read_score(engine: Engine, api_name: str) -> str:
    """score.txt of the data bucket, read inside the API container (its emulator)."""
    code = (
        "import boto3; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:4566',"
        " region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test');"
        " answer = s3.get_object(Bucket='local-ml-flow-data', Key='score.txt');"
        " print(answer['Body'].read().decode())"
    )
    return engine("exec", api_name, "python", "-c", code).strip()


def check_lambda(engine: Engine, image: str, api_name: str) -> dict[str, float]:
    gateway = engine("inspect", "--format", "{{.NetworkSettings.Gateway}}", api_name).strip()
    if not gateway:
        raise CheckError(
            f"no network gateway for {api_name}: the runtime API has nowhere to listen"
        )
    figures: dict[str, float] = {}
    results: dict[str, dict[str, Any]] = {}
    for function in ("ingestion", "inference"):
        handler = f"local_ml_flow.handlers.{function}_handler"
        answer, init, took = invoke_in_image(engine, image, api_name, gateway, function, handler)
        results[function] = answer
        figures[f"{function} init"], figures[f"{function} first invoke"] = init, took
        say(f"Lambda {function} ({handler}) with {{}}: {json.dumps(answer)[:300]}")
        say(f"  cold start: {init:.1f} s to the runtime client's first poll, {took:.1f} s in all")
    ingested, scored = results["ingestion"], results["inference"]
    if scored.get("run_id") != ingested.get("run_id") or scored.get("score") != EXPECTED_SCORE:
        raise CheckError(
            f"inference scored {scored} (expected {EXPECTED_SCORE} for {ingested.get('run_id')})"
        )
    score = read_score(engine, api_name)
    if score != EXPECTED_SCORE:
        raise CheckError(
            f"score.txt holds {score!r} after the Lambda run (expected {EXPECTED_SCORE})"
        )
    say(f"score.txt after the Lambda image's ingestion then inference: {score}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--engine", required=True, help="the container command, e.g. 'podman --runtime runc'"
    )
    parser.add_argument("--run-flags", default="", help="flags for every `run`, e.g. ulimits")
    parser.add_argument("--api-image", required=True)
    parser.add_argument("--lambda-image", required=True)
    parser.add_argument(
        "--dataset", type=Path, help="housing.csv to mount (else the image fetches it)"
    )
    args = parser.parse_args(argv)
    engine = Engine(shlex.split(args.engine), shlex.split(args.run_flags))
    name = f"lmf-check-{os.getpid()}"
    port = free_port()
    figures: dict[str, float] = {}
    try:
        check_contents(engine, args.api_image)
        check_contents(engine, args.lambda_image)
        say(f"starting {args.api_image} as {name} on 127.0.0.1:{port}")
        figures["API cold start (run to /ready 200)"] = start_api(
            engine, args.api_image, name, port, args.dataset
        )
        say(f"API ready in {figures['API cold start (run to /ready 200)']:.1f} s")
        check_api(engine, name, port)
        check_healthcheck(engine, args.api_image, name)
        for key, value in check_lambda(engine, args.lambda_image, name).items():
            figures[f"Lambda {key}"] = value
    except (CheckError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        engine("kill", name, check=False)
        engine("rm", "-f", name, check=False)
    for key, value in figures.items():
        print(f"figure: {key}: {value:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
