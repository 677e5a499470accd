"""Starting the embedded stack early (launch.py): what is refused comes before the emulator's
process, and no failure after it (an import error, Ctrl-C, the emulator dying or hanging while
it is provisioned) leaves the emulator running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from local_ml_flow import aws, lambda_package, launch
from local_ml_flow.embedded import EmbeddedEmulator, EmulatorError
from local_ml_flow.errors import DatasetTooLargeError
from local_ml_flow.settings import Settings
from tests.conftest import emulator_client, free_port


def settings_for(state: Path, max_dataset_bytes: int = 10**9) -> Settings:
    return Settings(
        _env_file=None,
        embedded_port=free_port(),
        state_dir=state,
        max_dataset_bytes=max_dataset_bytes,
    )


def emulator_pids(state: Path) -> list[int]:
    """The processes serving the emulator on this state directory (found by the
    environment MiniStack was started with)."""
    marker = f"S3_DATA_DIR={state.resolve() / 's3'}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def assert_stopped(state: Path) -> None:
    """Stopped by local-ml-flow itself: the process is gone, its scratch folder removed
    (``stop()`` does it; a process left to die with its parent keeps it) and the state free."""
    assert emulator_pids(state) == []
    assert not (state / "tmp").exists()
    again = EmbeddedEmulator("127.0.0.1", free_port(), state)
    again.start()  # the state lock is free
    try:
        assert emulator_pids(state) == [again.pid]  # (the first check can see an emulator)
    finally:
        again.stop()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    for pid in emulator_pids(state):  # whatever a failing test left running
        os.killpg(pid, signal.SIGKILL)


@pytest.mark.parametrize("error", [ImportError("no module named sklearn"), KeyboardInterrupt()])
def test_a_failure_after_the_spawn_stops_the_emulator(
    state: Path, dataset_path: Path, error: BaseException
) -> None:
    spawned: list[int] = []

    def start_then_fail() -> None:
        with launch.starting(settings_for(state), embedded=True, dataset_path=dataset_path):
            spawned.extend(emulator_pids(state))  # spawned, maybe not ready yet
            raise error  # as an import or Ctrl-C would, while the emulator starts

    with pytest.raises(type(error)):
        start_then_fail()
    assert len(spawned) == 1
    assert_stopped(state)


def test_a_dataset_above_the_limit_is_refused_before_the_emulator_starts(
    state: Path, dataset_path: Path
) -> None:
    settings = settings_for(state, max_dataset_bytes=dataset_path.stat().st_size - 1)
    with (
        pytest.raises(DatasetTooLargeError, match="LMF_MAX_DATASET_BYTES"),
        launch.starting(settings, embedded=True, dataset_path=dataset_path),
    ):
        pytest.fail("the block must not run")  # pragma: no cover
    assert not state.exists()  # no lock, no log, no process: nothing was started


def cli(*args: str, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "local_ml_flow.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LMF_EMBEDDED_PORT": str(free_port()), "LMF_STATE_DIR": str(state)},
    )


def test_ctrl_c_while_the_run_starts_stops_the_emulator(state: Path, dataset_path: Path) -> None:
    """Ctrl-C once the emulator is spawned, while the CLI imports the pipeline's libraries
    (about a second and a half): the CLI ends (no hang), the emulator stopped by it first.

    Mostly exit 130. Python can also turn an interrupt that lands inside an import into
    another error, or lose it in a weakref callback (the run then finishes): whatever the
    exit, the emulator must be stopped.
    """
    process = cli("run", "--embedded", "--dataset", str(dataset_path), state=state)
    try:
        deadline = time.monotonic() + 60
        while not emulator_pids(state):
            assert process.poll() is None, "the CLI ended before it started the emulator"
            assert time.monotonic() < deadline, "no emulator within 60 s"
            time.sleep(0.01)
        time.sleep(0.1)  # the spawn has returned in the CLI: it now imports
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode is not None, output
    assert_stopped(state)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("run", "--help"), 0, "usage: local-ml-flow run"),
        (("serve", "--help"), 0, "usage: local-ml-flow serve"),
        (("run", "--embedded", "--model", "no-such-model"), 2, "invalid choice: 'no-such-model'"),
        (("run", "--embedded", "--test-size", "2"), 1, "error: test_size"),
    ],
)
def test_help_and_bad_arguments_start_nothing(
    state: Path, dataset_path: Path, args: tuple[str, ...], code: int, says: str
) -> None:
    process = cli(*args, "--dataset", str(dataset_path), state=state)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == code, output
    assert says in output
    assert "Traceback" not in output
    assert not state.exists()  # no lock, no log, no process


def test_garbage_made_while_starting_again_is_collected() -> None:
    """A start freezes what the process holds (``gc.freeze``: the collector never looks at it
    again) once only. Starting again in the same process (a test suite, an app's lifespan run
    twice) would otherwise freeze the reference cycles each start drops (botocore makes
    thousands: about 0.5 MB kept for good per start)."""
    code = (
        "import gc, json, weakref\n"
        "from local_ml_flow import launch\n"
        "from local_ml_flow.settings import Settings\n"
        "class Node: pass\n"
        "def start_dropping_a_cycle():\n"
        "    with launch.starting(Settings(_env_file=None, mode='localstack')):\n"
        "        node = Node()\n"
        "        node.itself = node\n"
        "        dropped = weakref.ref(node)\n"
        "        del node\n"
        "    return dropped\n"
        "dropped = [start_dropping_a_cycle() for _ in range(3)]\n"
        "gc.collect()\n"
        "print(json.dumps([ref() is None for ref in dropped]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    )
    assert done.returncode == 0, done.stderr
    # the first start's garbage may stay (frozen once: bounded); a later start's is freed
    assert json.loads(done.stdout)[1:] == [True, True], done.stdout


# -- the emulator dies or hangs after its readiness check, while it is provisioned ----------

# `python -c FAULT SIGNAL STAGE ARGS...`: the CLI with ARGS, whose emulator's process group is
# sent SIGNAL once its readiness check answered (STAGE "ready": before the buckets) or when
# provisioning reaches the functions (STAGE "functions": buckets, dataset and role done).
FAULT = """
import os, signal, sys
from local_ml_flow import cli, embedded
signum, stage = getattr(signal, sys.argv[1]), sys.argv[2]
started = []
wait_ready = embedded.EmbeddedEmulator.wait_ready
def wait_ready_then_fault(self, timeout_s=60.0):
    url = wait_ready(self, timeout_s)
    started.append(self.pid)
    if stage == "ready":
        os.killpg(self.pid, signum)
    return url
source_zip = embedded.lambda_package.source_zip
def fault_then_source_zip():
    if stage == "functions":
        os.killpg(started[-1], signum)
    return source_zip()
embedded.EmbeddedEmulator.wait_ready = wait_ready_then_fault
embedded.lambda_package.source_zip = fault_then_source_zip
sys.exit(cli.main(sys.argv[3:]))
"""


def reversed_rows(dataset: bytes) -> bytes:
    """A valid dataset different from the reference one (its rows reversed): a user's upload."""
    header, *rows = dataset.strip().split(b"\n")
    return b"\n".join([header, *reversed(rows)]) + b"\n"


@pytest.fixture(scope="module")
def provisioned_state(tmp_path_factory: pytest.TempPathFactory, dataset_bytes: bytes) -> Path:
    """A state directory a stack provisioned and stopped: a user's dataset, both functions."""
    state = tmp_path_factory.mktemp("provisioned") / "state"
    emulator = EmbeddedEmulator("127.0.0.1", free_port(), state)
    emulator.start()
    try:
        emulator.provision(Settings(_env_file=None), reversed_rows(dataset_bytes))
    finally:
        emulator.stop()
    return state


def stored(state: Path) -> tuple[bytes, set[str]]:
    """The dataset and the function names kept in a state directory (an emulator started on
    it, then stopped)."""
    emulator = EmbeddedEmulator("127.0.0.1", free_port(), state)
    emulator.start()
    try:
        s3 = emulator_client("s3", emulator.endpoint_url)
        dataset = s3.get_object(Bucket="local-ml-flow-data", Key="housing.csv")["Body"].read()
        lam = emulator_client("lambda", emulator.endpoint_url)
        names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    finally:
        emulator.stop()
    return dataset, names


@pytest.mark.parametrize(
    ("command", "stage"),
    [
        (("run",), "ready"),  # provisioning fails on its first S3 call
        (("run",), "functions"),  # ...in the background registration of the functions
        (("serve", "--no-run"), "functions"),  # ...registering them before serving
    ],
)
def test_an_emulator_killed_while_provisioned_is_one_error_line(
    state: Path,
    provisioned_state: Path,
    dataset_path: Path,
    dataset_bytes: bytes,
    command: tuple[str, ...],
    stage: str,
) -> None:
    """No botocore traceback: one line saying what happened and where the log is, exit 1,
    the emulator cleaned up, and the state's data as it was."""
    shutil.copytree(provisioned_state, state)
    args = [*command, "--embedded", "--dataset", str(dataset_path)]
    if command[0] == "serve":
        args += ["--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-c", FAULT, "SIGKILL", stage, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LMF_EMBEDDED_PORT": str(free_port()), "LMF_STATE_DIR": str(state)},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "error: the embedded emulator was killed (SIGKILL) while it was being provisioned;"
        f" its log: {state.resolve() / 'emulator.log'}"
    ]
    assert_stopped(state)
    assert stored(state) == (
        reversed_rows(dataset_bytes),
        {"local-ml-flow-ingestion", "local-ml-flow-inference"},
    )


@pytest.mark.parametrize("in_background", [False, True])
def test_an_emulator_that_hangs_while_provisioned_is_an_error_in_bounded_time(
    state: Path, dataset_bytes: bytes, monkeypatch: pytest.MonkeyPatch, in_background: bool
) -> None:
    """Frozen (it accepts connections, never answers) once provisioning reaches the functions:
    the Lambda calls are bounded like S3's, not by the invoke read timeout (~6 minutes).
    The bound is shortened here (2 attempts of 2 s instead of 5 s) to keep the test short."""
    monkeypatch.setattr(aws, "S3_READ_TIMEOUT_S", 2)
    emulator = EmbeddedEmulator("127.0.0.1", free_port(), state)
    emulator.start()
    source_zip = lambda_package.source_zip

    def freeze_then_source_zip() -> bytes:
        assert emulator.pid is not None
        os.killpg(emulator.pid, signal.SIGSTOP)
        return source_zip()

    monkeypatch.setattr("local_ml_flow.embedded.lambda_package.source_zip", freeze_then_source_zip)
    outcome: Future[None] = Future()

    def provision() -> None:  # in a thread: a test that fails must not wait 6 minutes
        try:
            emulator.provision(
                settings_for(state), dataset_bytes, functions_in_background=in_background
            )
            emulator.wait_provisioned()
        except BaseException as exc:
            outcome.set_exception(exc)
        else:
            outcome.set_result(None)

    threading.Thread(target=provision, daemon=True).start()
    try:
        with pytest.raises(EmulatorError) as raised:
            outcome.result(timeout=60)
    finally:
        assert emulator.pid is not None
        os.killpg(emulator.pid, signal.SIGCONT)  # frozen by this test: let it stop gracefully
        emulator.stop()
    assert str(raised.value).startswith(
        "the embedded emulator stopped answering (Read timeout on endpoint URL:"
    )
    assert str(raised.value).endswith(
        f"while it was being provisioned; its log: {state.resolve() / 'emulator.log'}"
    )


@pytest.mark.parametrize(
    ("service", "operation"), [("lambda", "CreateFunction"), ("iam", "CreateRole")]
)
def test_a_create_retried_after_a_read_timeout_finds_what_its_first_attempt_made(
    state: Path, dataset_bytes: bytes, monkeypatch: pytest.MonkeyPatch, service: str, operation: str
) -> None:
    """A slow emulator (frozen past the read timeout while a create is in flight, as on a
    loaded machine) is provisioned, not refused: the retried create meets what the first
    attempt made (ResourceConflictException, EntityAlreadyExists) and takes it as made."""
    monkeypatch.setattr(aws, "S3_READ_TIMEOUT_S", 2)  # the retry comes after 2 s, not 5 s
    emulator = EmbeddedEmulator("127.0.0.1", free_port(), state)
    emulator.start()
    look = emulator_client(service, emulator.endpoint_url)
    exists = {
        "CreateFunction": lambda: look.get_function_configuration(
            FunctionName="local-ml-flow-ingestion"
        ),
        "CreateRole": lambda: look.get_role(RoleName="local-ml-flow-lambda"),
    }[operation]
    attempts: list[bool] = []  # per attempt: whether the first one had landed when it was sent

    def freeze_then_thaw(**_: object) -> None:
        assert emulator.pid is not None
        if len(attempts) == 2:  # the other function's create
            return
        if not attempts:  # the first attempt: frozen until botocore gives up waiting
            os.killpg(emulator.pid, signal.SIGSTOP)
            attempts.append(False)
            return
        os.killpg(emulator.pid, signal.SIGCONT)  # the retry: the first attempt lands first
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                exists()
            except look.exceptions.ClientError:
                time.sleep(0.05)
            else:
                attempts.append(True)
                return
        attempts.append(False)

    client = aws.client

    def client_with_a_freeze(name: str, **kwargs: object) -> object:
        made = client(name, **kwargs)  # type: ignore[call-overload]
        if name == service:
            made.meta.events.register(f"before-send.{service}.{operation}", freeze_then_thaw)
        return made

    monkeypatch.setattr(aws, "client", client_with_a_freeze)
    try:
        emulator.provision(settings_for(state), dataset_bytes)
        lam = emulator_client("lambda", emulator.endpoint_url)
        functions = {
            f["FunctionName"]: (f["State"], f["CodeSha256"])
            for f in (
                lam.get_function_configuration(FunctionName=name)
                for name in ("local-ml-flow-ingestion", "local-ml-flow-inference")
            )
        }
    finally:
        if emulator.pid is not None:
            os.killpg(emulator.pid, signal.SIGCONT)
        emulator.stop()
    assert attempts == [False, True]  # frozen, retried, and the first attempt had landed
    sha = lambda_package.code_sha256(lambda_package.source_zip())
    assert functions == {
        "local-ml-flow-ingestion": ("Active", sha),
        "local-ml-flow-inference": ("Active", sha),
    }
