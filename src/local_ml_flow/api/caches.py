"""What the API keeps in memory between requests: the latest model and the latest score.

Both are served from memory and re-read from S3 in the background once older than
``LMF_MODEL_REFRESH_S`` (stale-while-revalidate), so a hot endpoint never waits on S3 and a
promotion made by another process is seen within about that bound. After a run or a
promotion made in this process they are re-read before the next answer, from the pointer
that promotion wrote (not read back from S3): the next request serves the new run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

from local_ml_flow import pipeline
from local_ml_flow.events import HOUSING
from local_ml_flow.ml.model import Regressor
from local_ml_flow.runlog import Manifest, Pointer, RunLog

T = TypeVar("T")
logger = logging.getLogger("local_ml_flow.api")


class Recent(Generic[T]):
    """A value from ``load`` (blocking I/O), kept in memory.

    ``get()`` answers from memory; a value older than ``refresh_s`` is re-read in the
    background while the old one is still served. With no value yet, or after
    ``invalidate()``, it is read before answering. Failures are never cached.

    Each ``invalidate()`` starts a new generation; a value is valid only if its read
    started in the current generation, so a read that was under way when ``invalidate()``
    was called cannot make its (possibly older) value valid again.
    """

    def __init__(
        self,
        load: Callable[[T | None], T],
        refresh_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._read_at = float("-inf")
        self._generation = 0
        self._value_generation = -1
        self._refreshing = False

    def invalidate(self) -> None:
        self._generation += 1

    @property
    def valid(self) -> bool:
        return self._value is not None and self._value_generation == self._generation

    def _read(self) -> T:
        with self._lock:
            if self.valid and self._value is not None and not self._stale():
                return self._value  # another request read it while this one waited
            generation = self._generation
            value = self._load(self._value)
            self._value, self._read_at = value, self._clock()
            self._value_generation = generation
            return value

    def _refresh_in_background(self) -> None:
        try:
            self._read()
        except Exception:
            logger.warning("background refresh failed; serving the previous value", exc_info=True)
        finally:
            self._refreshing = False

    def _stale(self) -> bool:
        return self._clock() - self._read_at >= self.refresh_s

    async def get(self) -> T:
        value = self._value
        if value is None or not self.valid:
            return await run_in_threadpool(self._read)
        if self._stale() and not self._refreshing:
            self._refreshing = True
            asyncio.get_running_loop().run_in_executor(None, self._refresh_in_background)
        return value


@dataclass(frozen=True)
class ServedModel:
    """The model /predict uses: its run, its feature set, an array predictor."""

    run_id: str
    feature_set: str
    predictor: Regressor
    manifest: Manifest | None = None  # a registered dataset's run: its schema and encoding


class Caches:
    """The latest model and score of one run log."""

    def __init__(self, runs: RunLog, refresh_s: float) -> None:
        self.runs = runs
        self.model: Recent[ServedModel] = Recent(self._load_model, refresh_s)
        self.score: Recent[str] = Recent(self._load_score, refresh_s)
        self.model_loads = 0
        self.pointer_reads = 0
        # the newest pointer a promotion in this process wrote, and the caches yet to load it
        self._written: Pointer | None = None
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def invalidate(self, written: Pointer | None = None) -> None:
        """Re-read both before their next answer.

        ``written``: the latest pointer as a promotion in this process just wrote it (or
        found it, superseded); each cache's next load takes it instead of reading the
        pointer back, later refreshes read S3 again. A pointer older than one already told
        (``promoted_at``: compare-and-swapped pointers are written in that order; two runs
        can finish out of order) is not taken: the caches read S3.
        """
        with self._lock:
            newest = self._written
            if written is not None and (newest is None or written.promoted_at > newest.promoted_at):
                self._written, self._pending = written, {"model", "score"}
            else:
                self._pending = set()
            self.model.invalidate()
            self.score.invalidate()

    def _take_written(self, cache: str) -> Pointer | None:
        """The pointer told by ``invalidate`` if ``cache`` has not loaded from it yet."""
        with self._lock:
            if cache not in self._pending:
                return None
            self._pending.discard(cache)
            return self._written

    def _load_model(self, current: ServedModel | None) -> ServedModel:
        """Read the latest pointer; load the model only when the latest run changed."""
        written = self._take_written("model")
        if written is not None:
            run_id = written.run_id
        else:
            self.pointer_reads += 1
            run_id = self.runs.latest_run_id(
                "no trained model yet: POST /pipeline/runs first"
                if self.runs.dataset == HOUSING
                else f"dataset {self.runs.dataset!r} has no trained model yet:"
                f" POST /datasets/{self.runs.dataset}/runs first"
            )
        if current is not None and current.run_id == run_id:
            return current
        loaded = pipeline.load_model(self.runs, run_id)
        self.model_loads += 1
        if self.runs.dataset != HOUSING:  # predicts from the encoded arrays it was fitted on
            return ServedModel(run_id, "", loaded.model, loaded.manifest)
        return ServedModel(run_id, loaded.feature_set, loaded.array_predictor())

    def _load_score(self, current: str | None) -> str:
        """The current run's score, read through the latest pointer (not score.txt, a copy)."""
        written = self._take_written("score")
        if written is not None and written.score is not None:
            return written.score
        self.pointer_reads += 1
        return self.runs.current_score()[1]


class DatasetCaches:
    """The caches of every dataset's run log, made on first use (housing's is ``housing``)."""

    def __init__(self, housing: Caches, refresh_s: float) -> None:
        self.housing = housing
        self.refresh_s = refresh_s
        self._by_name: dict[str, Caches] = {}
        self._lock = threading.Lock()

    def of(self, runs: RunLog) -> Caches:
        """The caches of ``runs`` (a dataset's run log)."""
        if runs.dataset == HOUSING:
            return self.housing
        with self._lock:
            caches = self._by_name.get(runs.dataset)
            if caches is None:
                caches = self._by_name[runs.dataset] = Caches(runs, self.refresh_s)
            return caches
