"""Runs started without waiting (``POST /pipeline/runs?wait=false``): a small thread pool."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

logger = logging.getLogger("local_ml_flow.runs")


class BackgroundRuns:
    """At most ``workers`` runs at once in the background; more wait their turn (queued)."""

    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmf-run")

    def submit(self, run_id: str, work: Callable[[], object]) -> Future[object]:
        future = self._pool.submit(work)
        future.add_done_callback(lambda done: _report(run_id, done))
        return future

    def close(self) -> None:
        """Stop taking runs; the ones under way finish (an unfinished one is reported
        abandoned after the function timeout, as any run whose process died)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _report(run_id: str, done: Future[object]) -> None:
    """The run logged its own outcome; only say that nothing else will be heard of it."""
    if done.cancelled():
        logger.warning("run %s was still queued when the server stopped", run_id)
