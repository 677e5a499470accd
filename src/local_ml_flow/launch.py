"""Starting a stack in the order that costs least; ``starting()`` is the one place that begins it.

1. What can be refused is refused first (the caller has checked the arguments and the
   settings): the mode, and a dataset file named on the command line, read only if it is a
   regular file within ``LMF_MAX_DATASET_BYTES``. The reference dataset is looked for (or
   downloaded) later, and only when the state holds no dataset yet.
2. The emulator's process is spawned: MiniStack takes about half a second to answer.
3. The ``with`` block imports the rest (``bootstrap``: pandas, boto3, the handlers) while it
   starts, in another process on another core, then wires the stack (``bootstrap.build``).

This module and what it imports stay light (no numpy, pandas, boto3 or scikit-learn), so
``local-ml-flow run --embedded`` spawns the emulator about 0.2 s after the process starts;
``tests/unit/test_launch.py`` checks it. Whatever fails after the spawn (an import, the
emulator, Ctrl-C) stops the emulator before the error goes on: it never outlives a failed start.

The imports stay in the main thread, one after the other: a Ctrl-C that lands in one import
while another thread imports can leave Python's import lock held, and both threads hang.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from local_ml_flow import datasource
from local_ml_flow.embedded import EmbeddedEmulator
from local_ml_flow.errors import DatasetFetchError, DatasetTooLargeError
from local_ml_flow.settings import InvokerKind, Mode, Settings


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
class Start:
    """A stack being started: its mode and invoker; the bytes of a dataset file the user
    named (``dataset_path``: it becomes the current housing.csv), else in embedded mode
    where the reference dataset comes from when the state has none (``reference``: read
    only then); the emulator, spawned (``wait_ready`` waits until it answers)."""

    settings: Settings
    mode: Mode
    invoker: InvokerKind
    dataset: bytes | None = None
    emulator: EmbeddedEmulator | None = None
    dataset_path: Path | None = None
    reference: Callable[[], bytes] | None = None

    @property
    def in_process(self) -> bool:
        """Functions run in this process (embedded mode, the local invoker)."""
        return self.mode is Mode.EMBEDDED and self.invoker is InvokerKind.LOCAL

    def stop(self) -> None:
        """Stop the emulator, if one was spawned (idempotent)."""
        if self.emulator is not None:
            self.emulator.stop()


@contextlib.contextmanager
def starting(
    settings: Settings,
    *,
    embedded: bool = False,
    dataset_path: Path | None = None,
    fresh: bool = False,
    housing: bool = True,
) -> Iterator[Start]:
    """Refuse what can be refused, spawn the emulator (embedded mode), then run the block,
    which imports and wires the rest (``bootstrap.build(..., start=...)``).

    Any exception or interruption, here or in the block, stops the emulator before it goes
    on. The cyclic garbage collector is off meanwhile (``_no_gc``). ``housing`` False: the
    housing dataset is neither looked for nor provisioned (a command about another dataset).
    """
    with _no_gc():
        start = _prepare(settings, embedded, dataset_path, housing=housing)
        try:  # from the spawn on: an interruption anywhere stops what was spawned
            if start.emulator is not None:
                start.emulator.spawn(fresh=fresh)
            yield start
        except BaseException:
            start.stop()
            raise


def _prepare(
    settings: Settings, embedded: bool, dataset_path: Path | None, *, housing: bool = True
) -> Start:
    """The mode, the dataset file the user named (refused if it is not a regular file or
    above the limit) and, in embedded mode, the emulator to spawn (not spawned yet)."""
    mode = resolve_mode(settings, embedded=embedded)
    kind = settings.invoker or (InvokerKind.LOCAL if mode is Mode.EMBEDDED else InvokerKind.LAMBDA)
    named = None
    if housing and dataset_path is not None:
        named = read_dataset(datasource.regular_file(dataset_path), settings.max_dataset_bytes)
    if mode is not Mode.EMBEDDED:
        return Start(settings, mode, kind, named, dataset_path=dataset_path)
    emulator = EmbeddedEmulator(settings.embedded_host, settings.embedded_port, settings.state_dir)
    reference = partial(_reference, settings) if housing and named is None else None
    return Start(settings, mode, kind, named, emulator, dataset_path, reference)


def _reference(settings: Settings) -> bytes:
    """The reference dataset's bytes (LMF_DATASET_PATH, the cache, or the verified
    download), for a state that holds no dataset yet."""
    path = datasource.resolve(
        settings.dataset_path,
        url=settings.dataset_url,
        expected_sha256=settings.dataset_sha256,
        cache_dir=settings.cache_dir,
    )
    data = read_dataset(path, settings.max_dataset_bytes)
    from local_ml_flow import datasets  # pandas: imported by now (bootstrap.build runs this)
    from local_ml_flow.errors import DatasetValidationError

    try:
        datasets.check(
            data, max_bytes=settings.max_dataset_bytes, max_rows=settings.max_dataset_rows
        )
    except DatasetValidationError as exc:
        exc.message = (
            f"the dataset {path} was refused, and nothing was stored: {exc.message}. Fix it, or"
            " name another file with --dataset (or LMF_DATASET_PATH)"
        )
        raise
    return data


def read_dataset(path: Path, max_bytes: int) -> bytes:
    """The dataset file's bytes; one above the limit is refused from its size before it is
    read or uploaded (no run could train on it)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DatasetTooLargeError(
                [
                    f"dataset {path} is {size} bytes, above the limit of {max_bytes} bytes"
                    " (LMF_MAX_DATASET_BYTES): use a smaller dataset or raise the limit"
                ]
            )
        return path.read_bytes()
    except OSError as exc:
        raise DatasetFetchError(f"cannot read dataset {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector off in the block: the imports allocate much and free
    little, and its passes over the growing heap cost about 10 % of their time.

    Then, if it was on and the block succeeded, what the block made is frozen before it is
    turned back on: libraries mostly, which live as long as the process and hold no garbage
    (a full collection there finds none), but which its next pass would scan all at once
    (about 0.1 s), and so would the collection at exit (about 0.1 s of its time).
    Only if nothing is frozen yet: the garbage a block drops is frozen too (kept for good),
    once per process, not at every start of a process that starts the stack again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if enabled and gc.get_freeze_count() == 0:
            gc.freeze()
    finally:
        if enabled:
            gc.enable()
