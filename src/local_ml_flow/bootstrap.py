"""The one place that decides the mode and wires collaborators (store, invoker, clients).

- embedded: start MiniStack (embedded.py) on its state directory, provision it; functions
  run in-process (LocalInvoker) unless ``LMF_INVOKER=lambda`` (MiniStack's Lambda API).
  launch.py spawns it before the heavy imports, which happen while it starts. When a run
  follows at once in this process (``local-ml-flow run``), the functions are registered in
  the background while the libraries the run needs (scikit-learn, skops) are imported.
- localstack: ``AWS_ENDPOINT_URL`` is set (boto3 reads it); functions run in LocalStack.
- aws: ``LMF_MODE=aws``; no endpoint, functions run on AWS Lambda.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from local_ml_flow import aws, datasets, handlers, launch
from local_ml_flow.embedded import EmbeddedEmulator
from local_ml_flow.errors import LocalMlFlowError
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
    notes: list[str] = field(default_factory=list)  # what the start did, for the user
    dataset_changed: bool = False  # a --dataset file became the current dataset

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
        failure = self.emulator.down if self.emulator is not None else None
        if failure is not None:  # it died and is being restarted (or could not be)
            return {f"emulator running ({failure})": False}
        try:
            buckets: set[str] | None = set(store.list_buckets())
        except LocalMlFlowError:
            buckets = None
            dying = self._emulator_down()  # it may have died while it was asked
            if dying is not None:
                return {f"emulator running ({dying})": False}
        checks = {"s3": buckets is not None}
        for bucket in (settings.data_bucket, settings.models_bucket):
            checks[f"bucket:{bucket}"] = buckets is not None and bucket in buckets
        dataset = functools.partial(store.exists, settings.data_bucket, settings.dataset_key)
        checks[f"dataset:{settings.dataset_key}"] = checks["s3"] and _passes(dataset)
        for name in (settings.ingestion_function, settings.inference_function):
            active = functools.partial(self._active, name)
            checks[f"function:{name}"] = checks["s3"] and _passes(active)
        return checks

    def _emulator_down(self, wait_s: float = 1.0) -> str | None:
        """Why the embedded emulator is down, looking again for up to ``wait_s`` (a process
        killed a moment ago is reaped a moment later); None if it runs."""
        if self.emulator is None:
            return None
        deadline = time.monotonic() + wait_s
        while (down := self.emulator.down) is None and time.monotonic() < deadline:
            if self.emulator.running:
                time.sleep(0.05)
                continue
            break
        return down

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
    "joblib",
    "skops.io",
)


def _warm_up() -> None:
    """Import WARM_UP_MODULES now, in this thread (the main one: see launch.py)."""
    for name in WARM_UP_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


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
    start: launch.Start | None = None,
) -> Runtime:
    """Start (embedded) or connect to the AWS side and wire the collaborators.

    ``fresh``: embedded mode starts on an empty state directory. ``run_follows``: a pipeline
    run follows at once; embedded mode with the in-process invoker then registers the
    functions in the background while it imports what the run needs, and returns before
    they are registered (the run does not need them; asking which exist waits for them, and
    so does ``close``). Without it nothing more is imported (a server is ready sooner).
    ``start``: a start already under way (``launch.starting``, whose arguments then count,
    not these); without it, this starts one.
    """
    if start is not None:
        return _build(start, run_follows)
    with launch.starting(
        settings, embedded=embedded, dataset_path=dataset_path, fresh=fresh
    ) as started:
        if run_follows and started.in_process:
            # the caller (the API server) has imported all else: the emulator starts meanwhile
            _warm_up()
        return _build(started, run_follows)


def _build(start: launch.Start, run_follows: bool) -> Runtime:
    settings, emulator = start.settings, start.emulator
    run_here_now = start.in_process and run_follows
    endpoint_url: str | None = None
    if emulator is not None:
        endpoint_url = emulator.wait_ready()
        emulator.provision(settings, start.reference, functions_in_background=run_here_now)
    if run_here_now:
        _warm_up()  # the emulator registers the functions meanwhile (if not imported yet)
    store = make_store(settings, endpoint_url=endpoint_url)
    # which functions exist is asked with bounded timeouts, unlike invokes
    directory: FunctionDirectory = LambdaFunctions(
        aws.client("lambda", endpoint_url=endpoint_url, function_timeout_s=None)
    )
    if emulator is not None:
        directory = _Provisioned(directory, emulator)
    invoker: Invoker
    if start.invoker is InvokerKind.LOCAL:
        # functions run here; the Lambda API says which exist (the emulator registers them)
        invoker = LocalInvoker(local_functions(settings, store), directory)
    else:
        lambda_client = aws.client(
            "lambda", endpoint_url=endpoint_url, function_timeout_s=settings.function_timeout_s
        )
        invoker = LambdaInvoker(lambda_client, directory)
    runtime = Runtime(settings, start.mode, store, invoker, endpoint_url, emulator)
    if start.dataset is not None:  # a file the user named: the current dataset from now on
        use = functools.partial(
            datasets.use,
            store,
            start.dataset,
            source=str(start.dataset_path),
            max_bytes=settings.max_dataset_bytes,
            max_rows=settings.max_dataset_rows,
        )
        with emulator.provisioning() if emulator is not None else contextlib.nullcontext():
            note, runtime.dataset_changed = use()
            runtime.notes.append(note)
    with contextlib.suppress(LocalMlFlowError):  # S3 down: the next promotion repairs them
        runtime.runs.repair()  # root copies name the current run again after a failed write
    return runtime
