"""The API's in-memory model and score: loaded once, reloaded only when the latest run changes."""

from __future__ import annotations

import asyncio
import time

import pytest

from local_ml_flow import handlers
from local_ml_flow.api.caches import Caches
from local_ml_flow.errors import NoModelError
from local_ml_flow.runlog import Pointer, RunLog


def test_model_is_reloaded_only_when_the_latest_run_changes(store, settings):
    caches = Caches(RunLog(store), refresh_s=0.05)

    async def scenario() -> list[tuple[str, int]]:
        seen = []
        with pytest.raises(NoModelError):
            await caches.model.get()
        handlers.ingestion({"run_id": "one"}, None, store=store, settings=settings)
        for _ in range(3):
            served = await caches.model.get()
            seen.append((served.run_id, caches.model_loads))
            await asyncio.sleep(0.1)  # stale: re-checked in the background, same run
        handlers.ingestion({"run_id": "two"}, None, store=store, settings=settings)
        deadline = time.monotonic() + 5
        while (await caches.model.get()).run_id != "two" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # picked up by a background refresh
        seen.append(((await caches.model.get()).run_id, caches.model_loads))
        return seen

    seen = asyncio.run(scenario())
    assert seen[:3] == [("one", 1), ("one", 1), ("one", 1)]
    assert seen[3] == ("two", 2)


def test_invalidate_reads_before_answering(store, settings):
    caches = Caches(RunLog(store), refresh_s=3600)

    async def scenario() -> tuple[str, str]:
        handlers.ingestion({"run_id": "a"}, None, store=store, settings=settings)
        handlers.inference({}, None, store=store, settings=settings)
        first = await caches.score.get()
        handlers.ingestion(
            {"run_id": "b", "feature_set": "seed"}, None, store=store, settings=settings
        )
        handlers.inference({}, None, store=store, settings=settings)
        assert await caches.score.get() == first  # fresh for an hour: still the old one
        caches.invalidate()
        return first, await caches.score.get()

    assert asyncio.run(scenario()) == ("65.29%", "35.62%")


def test_a_pointer_written_here_is_served_without_reading_it_back(store, settings):
    runs = RunLog(store)
    caches = Caches(runs, refresh_s=3600)

    def train(run_id: str, feature_set: str) -> Pointer:
        """As runner.run_pipeline does: ingestion, inference, then the promotion."""
        event = {"run_id": run_id, "feature_set": feature_set, "promote": False}
        handlers.ingestion(event, None, store=store, settings=settings)
        handlers.inference({"run_id": run_id}, None, store=store, settings=settings)
        return runs.promote(run_id)

    async def scenario() -> None:
        older = train("a", "all")
        assert (await caches.model.get()).run_id == "a"
        assert await caches.score.get() == "65.29%"
        assert caches.pointer_reads == 2
        newer = train("b", "seed")
        assert newer.score == "35.62%"
        caches.invalidate(newer)  # as after a run or a promotion made through this API
        assert (await caches.model.get()).run_id == "b"
        assert await caches.score.get() == "35.62%"
        assert caches.pointer_reads == 2  # taken from the written pointer, not read back
        caches.invalidate(older)  # told late, out of order: not taken, S3 is read
        assert (await caches.model.get()).run_id == "b"
        assert await caches.score.get() == "35.62%"
        assert caches.pointer_reads == 4

    asyncio.run(scenario())
