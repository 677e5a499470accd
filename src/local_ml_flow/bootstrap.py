"""The one place that decides the mode and wires collaborators (store, invoker, clients).

- embedded: start MiniStack (embedded.py) on its state directory, provision it; functions
  run in-process (LocalInvoker) unless ``LMF_INVOKER=lambda`` (MiniStack's Lambda API).
  When a run follows at once (``local-ml-flow run``), the libraries it needs (scikit-learn,
  skops) are imported in a thread while the emulator starts (a separate process, on another
  core) and the functions are registered in the background.
- localstack: ``AWS_ENDPOINT_URL`` is set (boto3 reads it); functions run in LocalStack.
- aws: ``LMF_MODE=aws``; no endpoint, functions run on AWS Lambda.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from local_ml_flow import aws, datasource, handlers
from local_ml_flow.embedded import EmbeddedEmulator
from local_ml_flow.errors import DatasetTooLargeError, LocalMlFlowError
from local_ml_flow.invoke import (
    FunctionDirectory,
    Handler,
    Invoker,
    LambdaFunctions,
    LambdaInvoker,
    LocalInvoker,
)
from local_ml_flow.runlog import RunLog
from local_ml_flow.settings import InvokerKind, Mode, Settings
from local_ml_flow.storage import ArtifactStore, make_store


def resolve_mode(settings: Settings, *, embedded: bool = False) -> Mode:
    """--embedded wins, then LMF_MODE, then an AWS endpoint means LocalStack, else embedded."""
    if embedded:
        return Mode.EMBEDDED
    if settings.mode is not None:
        return settings.mode
    if os.environ.get("AWS_ENDPOINT_URL"):
        return Mode.LOCALSTACK
    return Mode.EMBEDDED


@dataclass
class Runtime:
    """Everything the CLI and the API need, wired for one mode."""

    settings: Settings
    mode: Mode
    store: ArtifactStore
    invoker: Invoker
    endpoint_url: str | None
    emulator: EmbeddedEmulator | None = None
    runs: RunLog = field(init=False)

    def __post_init__(self) -> None:
        self.runs = RunLog.from_settings(self.store, self.settings)

    def close(self) -> None:
        """Stop the embedded emulator (after its provisioning, whose error is raised)."""
        if self.emulator is not None:
            try:
                self.emulator.wait_provisioned()
            finally:
                self.emulator.stop()

    def readiness(self) -> dict[str, bool]:
        """Check -> passed: S3 answers, both buckets and the dataset exist, both functions
        are Active. Checks that need S3 are not tried when it does not answer."""
        settings, store = self.settings, self.store
        try:
            buckets: set[str] | None = set(store.list_buckets())
        except LocalMlFlowError:
            buckets = None
        checks = {"s3": buckets is not None}
        for bucket in (settings.data_bucket, settings.models_bucket):
            checks[f"bucket:{bucket}"] = buckets is not None and bucket in buckets
        dataset = functools.partial(store.exists, settings.data_bucket, settings.dataset_key)
        checks[f"dataset:{settings.dataset_key}"] = checks["s3"] and _passes(dataset)
        for name in (settings.ingestion_function, settings.inference_function):
            active = functools.partial(self._active, name)
            checks[f"function:{name}"] = checks["s3"] and _passes(active)
        return checks

    def _active(self, function_name: str) -> bool:
        return self.invoker.state(function_name) == "Active"


def _passes(check: Callable[[], bool]) -> bool:
    """A check's answer; False when it raises a domain error."""
    try:
        return check()
    except LocalMlFlowError:
        return False


class _Provisioned:
    """A function directory that first waits for the emulator to finish registering them."""

    def __init__(self, directory: FunctionDirectory, emulator: EmbeddedEmulator) -> None:
        self.directory = directory
        self.emulator = emulator

    def names(self) -> list[str]:
        self.emulator.wait_provisioned()
        return self.directory.names()

    def state(self, function_name: str) -> str | None:
        self.emulator.wait_provisioned()
        return self.directory.state(function_name)


# What a first in-process run imports beyond the handlers' own imports (the model kinds
# import scikit-learn where they use it; skops writes and reads the model). Only a speed-up:
# a name missing here is imported when used.
WARM_UP_MODULES = (
    "sklearn.linear_model",
    "sklearn.model_selection",
    "sklearn.metrics",
    "joblib",
    "skops.io",
)


def _warm_up() -> None:
    for name in WARM_UP_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


@contextlib.contextmanager
def _warming_up(enabled: bool) -> Iterator[None]:
    """Import WARM_UP_MODULES in a thread while the block runs (the emulator starts: another
    process, another core); joined at the end, before anything can run a function, so a
    function never imports them while the thread does."""
    if not enabled:
        yield
        return
    thread = threading.Thread(target=_warm_up, name="lmf-warm-up", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def local_functions(settings: Settings, store: ArtifactStore) -> dict[str, Handler]:
    """The handler functions by function name, bound to a store (for LocalInvoker)."""
    return {
        settings.ingestion_function: functools.partial(
            handlers.ingestion, store=store, settings=settings
        ),
        settings.inference_function: functools.partial(
            handlers.inference, store=store, settings=settings
        ),
    }


def build(
    settings: Settings,
    *,
    embedded: bool = False,
    dataset_path: Path | None = None,
    fresh: bool = False,
    run_follows: bool = False,
) -> Runtime:
    """Start (embedded) or connect to the AWS side and wire the collaborators.

    ``fresh``: embedded mode starts on an empty state directory. ``run_follows``: a pipeline
    run follows at once; embedded mode with the in-process invoker then imports what the run
    needs while the emulator starts, and returns before the emulator has registered the
    functions (the run does not need them; asking which exist waits for them, and so does
    ``close``). Without it nothing more is imported than before (a server is ready sooner).
    """
    with _no_gc():
        return _build(settings, embedded, dataset_path, fresh, run_follows)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector off while starting: the imports allocate much and free
    little, and its passes over the growing heap cost about 10 % of their time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_dataset(path: Path, max_bytes: int) -> bytes:
    """The dataset file's bytes; one above the limit is refused from its size before it is
    read or uploaded (no run could train on it)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetTooLargeError(
            [
                f"dataset {path} is {size} bytes, above the limit of {max_bytes} bytes"
                " (LMF_MAX_DATASET_BYTES): use a smaller dataset or raise the limit"
            ]
        )
    return path.read_bytes()


def _build(
    settings: Settings,
    embedded: bool,
    dataset_path: Path | None,
    fresh: bool,
    run_follows: bool,
) -> Runtime:
    mode = resolve_mode(settings, embedded=embedded)
    kind = settings.invoker or (InvokerKind.LOCAL if mode is Mode.EMBEDDED else InvokerKind.LAMBDA)
    in_process = mode is Mode.EMBEDDED and kind is InvokerKind.LOCAL
    run_here_now = in_process and run_follows
    emulator: EmbeddedEmulator | None = None
    endpoint_url: str | None = None
    dataset: bytes | None = None
    if mode is Mode.EMBEDDED:
        dataset = _read_dataset(
            datasource.resolve(
                dataset_path or settings.dataset_path,
                url=settings.dataset_url,
                expected_sha256=settings.dataset_sha256,
                cache_dir=settings.cache_dir,
            ),
            settings.max_dataset_bytes,
        )
    with _warming_up(run_here_now):
        if mode is Mode.EMBEDDED:
            emulator = EmbeddedEmulator(
                settings.embedded_host, settings.embedded_port, settings.state_dir
            )
            endpoint_url = emulator.start(fresh=fresh)
            try:
                emulator.provision(settings, dataset, functions_in_background=run_here_now)
            except Exception:
                emulator.stop()
                raise
        store = make_store(settings, endpoint_url=endpoint_url)
        # which functions exist is asked with bounded timeouts, unlike invokes
        directory: FunctionDirectory = LambdaFunctions(
            aws.client("lambda", endpoint_url=endpoint_url, function_timeout_s=None)
        )
        if emulator is not None:
            directory = _Provisioned(directory, emulator)
        invoker: Invoker
        if kind is InvokerKind.LOCAL:
            # functions run here; the Lambda API says which exist (the emulator registers them)
            invoker = LocalInvoker(local_functions(settings, store), directory)
        else:
            lambda_client = aws.client(
                "lambda", endpoint_url=endpoint_url, function_timeout_s=settings.function_timeout_s
            )
            invoker = LambdaInvoker(lambda_client, directory)
    runtime = Runtime(settings, mode, store, invoker, endpoint_url, emulator)
    with contextlib.suppress(LocalMlFlowError):  # S3 down: the next promotion repairs them
        runtime.runs.repair()  # root copies name the current run again after a failed write
    return runtime
