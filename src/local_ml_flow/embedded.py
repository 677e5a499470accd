"""The embedded AWS: MiniStack in a subprocess on loopback, its state on disk, provisioning.

MiniStack (pinned in pyproject.toml) runs as ``python emulator_main.py`` (MiniStack behind a
guard that refuses browser-originated requests) in a session of its own, bound to
127.0.0.1, side listeners off. State lives in a state directory:

    <state_dir>/s3/         S3 objects, each written on its request (survives kill -9)
    <state_dir>/emulator/   functions, roles, bucket settings (written on a clean stop)
    <state_dir>/tmp/        the emulator's TMPDIR: Lambda worker folders, emptied on start/stop
    <state_dir>/emulator.log
    <state_dir>/admin-token the secret MiniStack's /_ministack/* endpoints need (mode 0600;
                            new at every start, passed to the emulator by its environment)
    <state_dir>/.lock       held while a stack runs on this state (one stack per state)
    <state_dir>/.local-ml-flow-state  the marker: only a directory carrying it is cleaned
                            (statedir.py; a home, ``/`` or another folder is refused)

``stop()`` is graceful: SIGTERM (MiniStack saves its state), a wait, then SIGKILL to the
whole process group (Lambda workers). ``provision()`` is idempotent: it creates what is
missing, updates the functions' code when the package changed, and never overwrites an
object a user wrote (an uploaded ``housing.csv`` stays). It can register the functions in
a background thread (what the in-process invoker does not need to run a pipeline):
``wait_provisioned()`` joins it and raises its error, ``stop()`` waits for it first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from local_ml_flow import emulator_main, lambda_package, statedir
from local_ml_flow.errors import AlreadyExistsError, EndpointUnreachableError, LocalMlFlowError
from local_ml_flow.settings import Settings, command

ROLE_NAME = "local-ml-flow-lambda"
HANDLERS = {
    "ingestion": "local_ml_flow.handlers.ingestion_handler",
    "inference": "local_ml_flow.handlers.inference_handler",
}
_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
logger = logging.getLogger("local_ml_flow.emulator")
SERVICES = "s3,lambda,iam,sts,logs"


class EmulatorError(LocalMlFlowError):
    """The embedded emulator could not start (or its state is in use)."""


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ministack_version() -> str:
    """The installed MiniStack version (of this interpreter)."""
    try:
        return metadata.version("ministack")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def reset_state(state_dir: Path) -> list[Path]:
    """Delete the emulator's state in ``state_dir`` (only what a stack writes there).

    Raises StateDirError for a directory that is not a stack's (``statedir.status``),
    EmulatorError while a stack runs on this state. Returns what was deleted.
    """
    state_dir = Path(state_dir)
    if statedir.status(state_dir) in ("missing", "empty"):
        return []
    statedir.claim(state_dir)  # a previous version's state is adopted: marked as ours
    with _StateLock(state_dir):
        return statedir.clear(state_dir)


def repair_state(state_dir: Path) -> list[str]:
    """Check and repair a stopped state offline, as the emulator does when it starts: finish
    the writes that were committed, roll back those that were not, make each object's record
    agree with its file. Returns what was done, one line each; EmulatorError while a stack
    runs on this state. Nothing stored is deleted but files that were never committed."""
    state_dir = Path(state_dir)
    if not (state_dir / "s3").is_dir():
        raise EmulatorError(f"{state_dir} holds no local-ml-flow state (no s3 folder)")
    with _StateLock(state_dir):
        data = state_dir / "s3"
        return emulator_main.recover(str(data), f"{data}-journal")


class _StateLock:
    """An exclusive, non-blocking lock on ``<state_dir>/.lock`` (released on close or exit)."""

    def __init__(self, state_dir: Path, endpoint_url: str | None = None) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / ".lock"
        self._fh: IO[str] | None = self.path.open("a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            self._fh = None
            running = re.search(r"emulator on (http://\S+?)\)", holder)
            against = (
                f"to run against that stack: AWS_ENDPOINT_URL={running.group(1)}"
                f" {command()} run (or its dashboard); to run apart: "
                if running
                else ""
            )
            raise EmulatorError(
                f"the state directory {state_dir} is in use by {holder}: {against}stop that"
                " local-ml-flow first, or set LMF_STATE_DIR to another directory"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        where = f", its emulator on {endpoint_url}" if endpoint_url else ""
        self._fh.write(f"local-ml-flow (pid {os.getpid()}{where})\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file releases the lock
            self._fh = None

    def __enter__(self) -> _StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM the emulator when its parent dies (even by kill -9).

    The kernel ties this to the thread that started the emulator: start it from a thread
    that lives as long as the stack (the main thread, in the CLI and the API).
    """
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedEmulator:
    """MiniStack on ``host:port`` with its state in ``state_dir``.

    ``state_dir=None``: a private temporary directory, kept while this object lives (a stop
    and start keeps the state; nothing outlives the process). ``python``: the interpreter
    that runs MiniStack, and so the functions (it must have ``ministack`` installed).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4566,
        state_dir: Path | None = None,
        *,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.python = python
        self.extra_env = dict(env or {})
        self.ephemeral = state_dir is None
        if state_dir is None:
            state_dir = Path(tempfile.mkdtemp(prefix="lmf-emulator-"))
            weakref.finalize(self, shutil.rmtree, state_dir, ignore_errors=True)
        self.state_dir = Path(state_dir).resolve()
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: _StateLock | None = None
        self._registering: Future[None] | None = None
        self._watching: threading.Event | None = None  # set: stop watching (supervise)
        self._restarting = threading.Lock()  # held by a restart under way (stop waits)
        self.failure: str | None = None  # why the emulator is down, while it is restarted
        self._admin_token = ""  # new at every spawn: what /_ministack/* needs

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The emulator's process id (also its process group id), while started."""
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.state_dir / "emulator.log"

    def describe(self) -> str:
        """One line for users: what runs where, and where its state lives."""
        if self.ephemeral:
            kept = "a temporary directory, deleted at exit"
        else:
            kept = f"{self.state_dir} (S3 objects as written, functions and bucket settings"
            kept += f" on a clean stop; --fresh or `{command()} reset --yes` to start empty)"
        where = f"MiniStack {ministack_version()} on {self.endpoint_url}"
        return f"embedded AWS: {where}; state in {kept}"

    def environment(self) -> dict[str, str]:
        """The emulator's environment (its Lambda workers inherit it)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AWS_ENDPOINT_URL") and k not in {"AWS_PROFILE", "PYTHONPATH"}
        }
        env.update(
            {
                "GATEWAY_PORT": str(self.port),
                "BIND_HOST": self.host,
                "SERVICES": SERVICES,
                "S3_PERSIST": "1",
                "S3_DATA_DIR": str(self.state_dir / "s3"),
                "PERSIST_STATE": "1",
                "STATE_DIR": str(self.state_dir / "emulator"),
                "TMPDIR": str(self.state_dir / "tmp"),
                "IOT_MTLS_ENABLED": "0",
                "SFTP_ENABLED": "0",
                "LOG_LEVEL": "WARNING",
                "DOCKER_HOST": "unix:///nonexistent/docker.sock",  # never look for Docker
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        if self._admin_token:
            env[emulator_main.ADMIN_TOKEN_ENV] = self._admin_token  # emulator_main pops it
        return env

    def start(self, *, fresh: bool = False, timeout_s: float = 60.0) -> str:
        """Start MiniStack and wait until it answers; returns its endpoint URL.

        ``fresh``: delete the stored state first.
        """
        self.spawn(fresh=fresh)
        self.wait_ready(timeout_s)
        return self.endpoint_url

    def spawn(self, *, fresh: bool = False) -> None:
        """Start MiniStack's process and return at once (``wait_ready`` waits until it
        answers): what the caller does meanwhile overlaps the emulator's own start-up.

        ``fresh``: delete the stored state first. Does nothing while it runs.
        """
        if self.running:
            return
        if self._process is not None:
            self._halt()  # the previous emulator died: reap its workers, free the state
        statedir.claim(self.state_dir)  # refused unless ours (created, adopted or marked)
        if fresh:
            reset_state(self.state_dir)
        # the state first: a stack running on it is named, with how to use it
        self._lock = _StateLock(self.state_dir, self.endpoint_url)
        try:
            if not _port_free(self.host, self.port):
                raise EmulatorError(
                    f"cannot start the embedded emulator: {self.host}:{self.port} is already"
                    " in use (another local-ml-flow or LocalStack?). Stop it or set"
                    " LMF_EMBEDDED_PORT."
                )
            self._admin_token = statedir.new_admin_token(self.state_dir)
            tmp = self.state_dir / "tmp"
            statedir.empty_dir(tmp)  # worker folders a crash left behind
            (self.state_dir / "s3").mkdir(exist_ok=True)
            (self.state_dir / "emulator").mkdir(exist_ok=True)
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [self.python, "-P", emulator_main.__file__],  # -P: not its folder on sys.path
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.environment(),
                    cwd=tmp,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout_s: float = 60.0) -> str:
        """Wait until the spawned emulator answers; returns its endpoint URL. Stops it on
        any failure (it exited, it did not answer in time, an interruption)."""
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self.endpoint_url

    def _wait_ready(self, timeout_s: float) -> None:
        if self._process is None:
            raise EmulatorError("the embedded emulator was not started (or was stopped)")
        deadline = time.monotonic() + timeout_s
        ready = urllib.request.Request(  # noqa: S310 - http, on our own host and port
            f"{self.endpoint_url}/_ministack/ready",
            headers={emulator_main.ADMIN_HEADER: self._admin_token},
        )
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmulatorError(
                    f"the embedded emulator exited at start (code {self._process.returncode});"
                    f" its log, {self.log_path}, ends with:\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(ready, timeout=2) as response:  # noqa: S310
                    if json.loads(response.read()).get("status") == "completed":
                        return
            except (OSError, ValueError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise EmulatorError(
                    f"the embedded emulator did not answer within {timeout_s:.0f} s;"
                    f" its log, {self.log_path}, ends with:\n{self._log_tail()}"
                )
            time.sleep(0.03)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def down(self) -> str | None:
        """Why the emulator does not serve (it died; being restarted, or given up), or None."""
        process = self._process
        if self.failure is None and process is not None and process.poll() is not None:
            return f"the embedded emulator {_ended(process.returncode)}"
        return self.failure

    def supervise(
        self, settings: Settings, *, poll_s: float = 0.5, attempts: int = 5, backoff_s: float = 1.0
    ) -> None:
        """Watch the emulator from a thread of its own: when it dies, say why (``failure``,
        the log), then start it again on the same state and register what is missing, up to
        ``attempts`` times with a doubling backoff. ``stop`` ends the watch.

        Call it from a thread that lives as long as the stack (the main thread): the
        restarted emulator is tied to the watching thread, which lives until ``stop``."""
        if self._watching is not None:
            return
        stopping = self._watching = threading.Event()

        def watch() -> None:
            while not stopping.wait(poll_s):
                process = self._process
                if process is None or process.poll() is None:
                    continue
                self._restart(settings, process.returncode, stopping, attempts, backoff_s)

        threading.Thread(target=watch, name="lmf-emulator-supervisor", daemon=True).start()

    def _restart(
        self,
        settings: Settings,
        code: int,
        stopping: threading.Event,
        attempts: int,
        backoff_s: float,
    ) -> None:
        died = f"the embedded emulator {_ended(code)} at {time.strftime('%H:%M:%S')}"
        logger.error("%s; its log: %s", died, self.log_path)
        for attempt in range(1, attempts + 1):
            self.failure = f"{died}; restarting it (attempt {attempt} of {attempts})"
            if stopping.wait(backoff_s * 2 ** (attempt - 1)):
                return
            with self._restarting:  # a stop waits for it: never cut half-provisioned
                if stopping.is_set():
                    return
                try:
                    self.spawn()
                    self._wait_ready(60.0)
                    self.provision(settings, None)
                except Exception as exc:  # any failure: the next attempt, or give up
                    logger.error("restarting the embedded emulator failed: %s", exc)
                    continue
            self.failure = None
            logger.warning("the embedded emulator runs again on %s (same state)", self.state_dir)
            return
        self.failure = f"{died}; {attempts} restarts failed: see {self.log_path}"
        logger.error("%s", self.failure)
        stopping.wait()  # no more attempts: the stack stays down until stopped

    def stop(self, timeout_s: float = 20.0) -> None:
        """Graceful stop: SIGTERM, wait (state is saved), then kill the process group.

        A registration still running in the background is waited for first (its error is
        for ``wait_provisioned``), so the state saved holds the functions.
        """
        watching, self._watching = self._watching, None
        if watching is not None:
            watching.set()
            with self._restarting:  # a restart under way finishes first
                self._halt(timeout_s)
            return
        self._halt(timeout_s)

    def _halt(self, timeout_s: float = 20.0) -> None:
        """Stop the process and free the state (a supervisor, if any, keeps watching)."""
        registering, self._registering = self._registering, None
        if registering is not None:
            with contextlib.suppress(Exception):
                registering.result(timeout=timeout_s + 60)
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=timeout_s)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # workers, and a stuck emulator
            process.wait()
            shutil.rmtree(self.state_dir / "tmp", ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ------------------------------------------------------------------ provisioning

    def provision(
        self,
        settings: Settings,
        reference: bytes | Callable[[], bytes] | None,
        *,
        functions_in_background: bool = False,
    ) -> None:
        """Create what is missing: buckets, versioning, the dataset (``reference``: its bytes,
        or how to read them, called only when the state holds none; never overwritten),
        functions.

        ``functions_in_background``: return once the buckets and the dataset are there, and
        register the functions in a thread (``wait_provisioned`` joins it).
        """
        # boto3 is imported here, not with this module: starting the process needs none of
        # it, and ``local-ml-flow run`` starts the emulator before the heavy imports.
        from local_ml_flow import aws
        from local_ml_flow.storage import ArtifactStore

        s3 = aws.client("s3", endpoint_url=self.endpoint_url)
        with self.provisioning():
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            for bucket in (settings.data_bucket, settings.models_bucket):
                if bucket not in existing:
                    s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(
                Bucket=settings.data_bucket, VersioningConfiguration={"Status": "Enabled"}
            )
            if reference is not None:
                store = ArtifactStore(  # on the same client: one client less to make
                    s3,
                    data_bucket=settings.data_bucket,
                    models_bucket=settings.models_bucket,
                    dataset_key=settings.dataset_key,
                )
                # a conditional write: a dataset already there (a user's upload) stays
                if store.head(store.data_bucket, store.dataset_key) is None:
                    data = reference if isinstance(reference, bytes) else reference()
                    with contextlib.suppress(AlreadyExistsError):
                        store.put_bytes(
                            store.data_bucket, store.dataset_key, data, "text/csv", once=True
                        )
        # clients made here, in the caller's thread: creating clients is not thread-safe.
        # No invokes here: the Lambda client is bounded like S3 (a hung emulator costs
        # seconds, not the invoke read timeout of minutes).
        iam = aws.client("iam", endpoint_url=self.endpoint_url)
        lam = aws.client("lambda", endpoint_url=self.endpoint_url, function_timeout_s=None)
        if not functions_in_background:
            self._register_functions(settings, iam, lam, s3)
            return
        self.wait_provisioned()  # one registration at a time
        registering: Future[None] = Future()
        self._registering = registering

        def register() -> None:
            try:
                self._register_functions(settings, iam, lam, s3)
            except BaseException as exc:  # for wait_provisioned(), in the caller's thread
                registering.set_exception(exc)
            else:
                registering.set_result(None)

        threading.Thread(target=register, name="lmf-register-functions", daemon=True).start()

    def wait_provisioned(self) -> None:
        """Wait for a background registration of the functions; raise its error, if any."""
        registering = self._registering
        if registering is None:
            return
        try:
            registering.result()
        except LocalMlFlowError:
            raise
        except Exception as exc:
            raise EmulatorError(
                f"the embedded emulator could not register the functions: {exc}"
            ) from exc

    @contextlib.contextmanager
    def provisioning(self) -> Iterator[None]:
        """Around provisioning calls: the emulator not answering them (it exited, or hangs)
        is one EmulatorError saying so, not botocore's connection error."""
        from local_ml_flow.aws import CONNECTION_ERRORS

        unanswered: tuple[type[Exception], ...] = (EndpointUnreachableError, *CONNECTION_ERRORS)
        try:
            yield
        except unanswered as exc:
            raise self._stopped_error(exc) from exc

    def _stopped_error(self, cause: Exception) -> EmulatorError:
        """The emulator stopped while it was being provisioned: how, and where its log is."""
        process = self._process
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)  # refused connections: it is likely exiting
        code = process.returncode if process is not None else None
        how = _ended(code) if code is not None else f"stopped answering ({cause})"
        where = "" if self.ephemeral else f"; its log: {self.log_path}"
        return EmulatorError(f"the embedded emulator {how} while it was being provisioned{where}")

    def _register_functions(self, settings: Settings, iam: Any, lam: Any, s3: Any) -> None:
        with self.provisioning():
            self._register(settings, iam, lam)
            _retrain_on_upload(settings, s3, lam)

    def _register(self, settings: Settings, iam: Any, lam: Any) -> None:
        # A create is retried after a read timeout (a slow emulator) and may then meet what
        # its first attempt made: that is made, not an error (EntityAlreadyExists,
        # ResourceConflictException below).
        try:
            role_arn = iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            try:
                role_arn = iam.create_role(
                    RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(_TRUST_POLICY)
                )["Role"]["Arn"]
            except iam.exceptions.EntityAlreadyExistsException:
                role_arn = iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
        package = lambda_package.source_zip()
        sha = lambda_package.code_sha256(package)
        names = {"ingestion": settings.ingestion_function, "inference": settings.inference_function}
        changed: list[str] = []
        for kind, name in names.items():
            config: dict[str, Any] = {
                "Role": role_arn,
                "Handler": HANDLERS[kind],
                "Timeout": settings.function_timeout_s,
                "MemorySize": 1024,
                "Description": f"local-ml-flow {kind} (embedded: the handlers' source package)",
                "Environment": {
                    "Variables": {
                        "LMF_DATA_BUCKET": settings.data_bucket,
                        "LMF_MODELS_BUCKET": settings.models_bucket,
                        "LMF_DATASET_KEY": settings.dataset_key,
                    }
                },
            }
            try:
                current = lam.get_function_configuration(FunctionName=name)
            except lam.exceptions.ResourceNotFoundException:
                changed.append(name)
                try:
                    lam.create_function(
                        FunctionName=name, Runtime="python3.12", Code={"ZipFile": package}, **config
                    )
                except lam.exceptions.ResourceConflictException:
                    current = lam.get_function_configuration(FunctionName=name)  # checked below
                else:
                    continue
            if current.get("CodeSha256") != sha:
                lam.update_function_code(FunctionName=name, ZipFile=package)
                changed.append(name)
                _wait_active(lam, name)  # one update at a time, as on AWS
            if any(current.get(key) != value for key, value in config.items()):
                lam.update_function_configuration(FunctionName=name, **config)
                changed.append(name)
        for name in changed:
            _wait_active(lam, name)


RETRAIN_PERMISSION = "local-ml-flow-retrain-on-upload"  # the ingestion's permission for S3


def _retrain_on_upload(settings: Settings, s3: Any, lam: Any) -> None:
    """The data bucket's notifications as ``LMF_RETRAIN_ON_UPLOAD`` says (what Terraform's
    ``retrain_on_upload`` declares): on, an upload of a dataset version invokes the ingestion
    function, which S3 is permitted to invoke; off, neither. Other notifications stay."""
    from local_ml_flow import notifications  # with the pipeline's imports: not at start-up

    ours_ids = {str(spec["id"]) for spec in notifications.FILTERS}
    bucket, function = settings.data_bucket, settings.ingestion_function
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    current.pop("ResponseMetadata", None)
    others = [
        c for c in current.get("LambdaFunctionConfigurations", []) if c.get("Id") not in ours_ids
    ]
    ours: list[dict[str, Any]] = []
    if settings.retrain_on_upload:
        arn = lam.get_function_configuration(FunctionName=function)["FunctionArn"]
        with contextlib.suppress(lam.exceptions.ResourceConflictException):  # there already
            lam.add_permission(
                FunctionName=function,
                StatementId=RETRAIN_PERMISSION,
                Action="lambda:InvokeFunction",
                Principal="s3.amazonaws.com",
                SourceArn=f"arn:aws:s3:::{bucket}",
            )
        ours = notifications.configuration(arn, settings.dataset_key)[
            "LambdaFunctionConfigurations"
        ]
    else:
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):  # never added
            lam.remove_permission(FunctionName=function, StatementId=RETRAIN_PERMISSION)
    wanted = {**current, "LambdaFunctionConfigurations": others + ours}
    if not wanted["LambdaFunctionConfigurations"]:
        del wanted["LambdaFunctionConfigurations"]
    if _comparable(wanted) != _comparable(current):
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=wanted)


def _comparable(configuration: dict[str, Any]) -> Any:
    """A notification configuration's Lambda part, as S3 and its emulators echo it back."""
    return sorted(
        (
            str(c.get("Id")),
            str(c.get("LambdaFunctionArn")),
            sorted(c.get("Events", [])),
            sorted(
                (str(r.get("Name", "")).lower(), str(r.get("Value")))
                for r in c.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            ),
        )
        for c in configuration.get("LambdaFunctionConfigurations", [])
    )


def _ended(code: int) -> str:
    """How a process ended, from its return code: killed by a signal, or exited."""
    return f"was killed ({_signal_name(-code)})" if code < 0 else f"exited (code {code})"


def _signal_name(number: int) -> str:
    """SIGKILL for 9; the number for a signal without a name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _wait_active(lam: Any, name: str, timeout_s: float = 60.0) -> None:
    """Wait until a created or updated function is Active (MiniStack: ~0.5 s Pending)."""
    deadline = time.monotonic() + timeout_s
    while True:
        config = lam.get_function_configuration(FunctionName=name)
        if config.get("State") == "Active" and config.get("LastUpdateStatus") != "InProgress":
            return
        if config.get("State") == "Failed" or time.monotonic() > deadline:
            raise EmulatorError(
                f"function {name} is {config.get('State')} ({config.get('StateReason', '')})"
            )
        time.sleep(0.1)
