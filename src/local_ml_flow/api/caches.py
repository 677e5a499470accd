"""What the API keeps in memory between requests: each dataset's current model and score.

Before an answer the pointer's ETag is read (a HEAD): the requests that arrive while one read
is in flight share the next one, so each request is answered from a read that started after
it arrived, and a burst of requests costs about one read per round trip. The answer is the
pointer's run on the first request after any change, whoever made it (this server, the CLI,
a Lambda invoke, another process). The model (and the score) are read again only when the
pointer's ETag changed, and the model only when it names another run. ``LMF_MODEL_REFRESH_S``
> 0 trades that for speed: the ETag is then trusted for that long between reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from starlette.concurrency import run_in_threadpool

from local_ml_flow import pipeline
from local_ml_flow.errors import CorruptStateError, IntegrityError, NoModelError
from local_ml_flow.events import HOUSING
from local_ml_flow.ml.model import Regressor
from local_ml_flow.runlog import Manifest, RunLog


class PointerWatch:
    """The pointer's current ETag (None: no pointer), from a read that started after the
    caller asked. At most one read is in flight and one waits to start: every caller that
    arrives meanwhile shares the waiting one."""

    def __init__(self, read: Callable[[], str | None]) -> None:
        self._read = read
        self._running: asyncio.Future[str | None] | None = None
        self._next: asyncio.Future[str | None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.reads = 0

    async def etag(self) -> str | None:
        loop = asyncio.get_running_loop()
        if self._running is None:
            future: asyncio.Future[str | None] = loop.create_future()
            self._launch(future)
        else:  # a read started before this call: join the next one
            if self._next is None:
                self._next = loop.create_future()
            future = self._next
        return await asyncio.shield(future)

    def _launch(self, future: asyncio.Future[str | None]) -> None:
        self._running = future

        async def run() -> None:
            try:
                self.reads += 1
                value = await run_in_threadpool(self._read)
            except Exception as exc:  # every waiter gets the error
                future.set_exception(exc)
            else:
                future.set_result(value)
            finally:
                if not future.done():  # cancelled at shutdown
                    future.cancel()
                self._running = None
                waiting, self._next = self._next, None
                if waiting is not None:
                    self._launch(waiting)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@dataclass(frozen=True)
class ServedModel:
    """The model a predict endpoint uses: its run, its feature set (housing's), a predictor,
    and the pointer ETag it was read under."""

    run_id: str
    feature_set: str
    predictor: Regressor
    manifest: Manifest | None = None  # a registered dataset's run: its schema and encoding
    etag: str | None = None


@dataclass(frozen=True)
class _Score:
    run_id: str
    score: str
    etag: str | None


class Caches:
    """The current model and score of one run log (one dataset)."""

    def __init__(self, runs: RunLog, refresh_s: float = 0.0) -> None:
        self.runs = runs
        self.refresh_s = refresh_s
        self.watch = PointerWatch(self._pointer_etag)
        self.model_loads = 0
        self._model: ServedModel | None = None
        self._score: _Score | None = None
        self._etag: str | None = None
        self._checked_at = float("-inf")
        self._loading = asyncio.Lock()

    def invalidate(self) -> None:
        """Forget what is kept: the next answer reads the pointer and what it names (a run or
        a promotion made through this server; the ETag check would see it anyway)."""
        self._model, self._score, self._checked_at = None, None, float("-inf")

    def _pointer_etag(self) -> str | None:
        head = self.runs.store.head(self.runs.store.data_bucket, self.runs.latest_key)
        return head.etag if head is not None else None

    async def _current_etag(self) -> str | None:
        """The pointer's ETag now (or, with ``refresh_s`` > 0, as read within that long)."""
        if self.refresh_s > 0 and time.monotonic() - self._checked_at < self.refresh_s:
            return self._etag
        etag = await self.watch.etag()
        self._etag, self._checked_at = etag, time.monotonic()
        return etag

    def _missing(self) -> NoModelError:
        if self.runs.dataset == HOUSING:
            return NoModelError("no trained model yet: POST /pipeline/runs first")
        return NoModelError(
            f"dataset {self.runs.dataset!r} has no trained model yet:"
            f" POST /datasets/{self.runs.dataset}/runs first"
        )

    async def model(self) -> ServedModel:
        """The model of the pointer's run, checked against what the pointer recorded."""
        etag = await self._current_etag()
        if etag is None:
            raise self._missing()
        kept = self._model
        if kept is not None and kept.etag == etag:
            return kept
        async with self._loading:
            kept = self._model
            if kept is not None and kept.etag == etag:
                return kept
            loaded = await run_in_threadpool(self._load_model, kept)
            self._model = loaded
            return loaded

    def _load_model(self, kept: ServedModel | None) -> ServedModel:
        """Read the pointer; load its run's model unless it is the one kept."""
        pointer, etag = self.runs.pointer()
        if pointer is None:
            raise self._missing()
        if kept is not None and kept.run_id == pointer.run_id:
            return replace(kept, etag=etag)
        loaded = pipeline.load_model(self.runs, pointer.run_id)
        if loaded.manifest.model_sha256 != pointer.model_sha256:
            raise IntegrityError(
                f"the pointer names run {pointer.run_id!r} with model sha256"
                f" {pointer.model_sha256}, but its manifest records"
                f" {loaded.manifest.model_sha256}: refusing to serve it"
            )
        self.model_loads += 1
        if self.runs.dataset != HOUSING:  # predicts from the encoded arrays it was fitted on
            return ServedModel(pointer.run_id, "", loaded.model, loaded.manifest, etag)
        return ServedModel(pointer.run_id, loaded.feature_set, loaded.array_predictor(), None, etag)

    async def score(self) -> str:
        """The pointer's run's score, checked against the run's own metrics."""
        etag = await self._current_etag()
        if etag is None:
            raise NoModelError("no score yet: POST /pipeline/runs first")
        kept = self._score
        if kept is not None and kept.etag == etag:
            return kept.score
        loaded = await run_in_threadpool(self._load_score)
        self._score = loaded
        return loaded.score

    def _load_score(self) -> _Score:
        pointer, etag = self.runs.pointer()
        if pointer is None:
            raise NoModelError("no score yet: POST /pipeline/runs first")
        scored = self.runs.metrics(pointer.run_id)
        if scored is None:
            raise NoModelError(f"the current run {pointer.run_id!r} is not scored yet")
        if pointer.score is not None and pointer.score != scored.score:
            raise CorruptStateError(
                f"the pointer gives run {pointer.run_id!r} the score {pointer.score}, its"
                f" metrics {scored.score}: refusing to serve either"
            )
        return _Score(pointer.run_id, scored.score, etag)


class DatasetCaches:
    """The caches of every dataset's run log, made on first use (housing's is ``housing``)."""

    def __init__(self, housing: Caches, refresh_s: float) -> None:
        self.housing = housing
        self.refresh_s = refresh_s
        self._by_name: dict[str, Caches] = {}

    def has(self, name: str) -> bool:
        """Whether caches of the dataset ``name`` were made (it was served before)."""
        return name == HOUSING or name in self._by_name

    def of(self, runs: RunLog) -> Caches:
        """The caches of ``runs`` (a dataset's run log)."""
        if runs.dataset == HOUSING:
            return self.housing
        caches = self._by_name.get(runs.dataset)
        if caches is None:
            caches = self._by_name[runs.dataset] = Caches(runs, self.refresh_s)
        return caches
