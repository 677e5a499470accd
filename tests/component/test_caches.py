"""The API's in-memory model and score: the pointer's run on the first request after any
change, whoever made it; loaded again only when the pointer moves; checked against it."""

from __future__ import annotations

import asyncio
import json

import pytest

from local_ml_flow import handlers
from local_ml_flow.api.caches import Caches
from local_ml_flow.errors import CorruptStateError, IntegrityError, NoModelError
from local_ml_flow.runlog import LATEST_KEY, RunLog


def train(store, settings, run_id: str, feature_set: str = "all") -> None:
    """A run made outside the API (as `aws lambda invoke` does): ingestion then inference;
    made current whatever its score (these tests are about serving what the pointer says)."""
    event = {"run_id": run_id, "feature_set": feature_set, "promotion": "always"}
    handlers.ingestion(event, None, store=store, settings=settings)
    handlers.inference({"run_id": run_id}, None, store=store, settings=settings)


def test_a_run_made_elsewhere_is_served_on_the_very_next_request(store, settings):
    caches = Caches(RunLog(store))

    async def scenario() -> list[tuple[str, str, int]]:
        seen = []
        with pytest.raises(NoModelError):
            await caches.model()
        for run_id, feature_set in (("one", "all"), ("two", "seed"), ("three", "all")):
            train(store, settings, run_id, feature_set)  # another process, no invalidate
            for _ in range(3):
                served = await caches.model()
                seen.append((served.run_id, await caches.score(), caches.model_loads))
        return seen

    seen = asyncio.run(scenario())
    assert seen == [
        ("one", "65.29%", 1),
        ("one", "65.29%", 1),
        ("one", "65.29%", 1),
        ("two", "35.62%", 2),
        ("two", "35.62%", 2),
        ("two", "35.62%", 2),
        ("three", "65.29%", 3),
        ("three", "65.29%", 3),
        ("three", "65.29%", 3),
    ]


def test_concurrent_requests_share_pointer_reads(store, settings):
    train(store, settings, "a")
    caches = Caches(RunLog(store))

    async def scenario() -> set[str]:
        served = await asyncio.gather(*(caches.model() for _ in range(50)))
        return {s.run_id for s in served}

    assert asyncio.run(scenario()) == {"a"}
    assert 1 <= caches.watch.reads <= 3  # 50 requests, one or two HEADs in flight at a time
    assert caches.model_loads == 1


def test_the_pointer_is_checked_against_what_it_names(store, settings):
    train(store, settings, "a")
    data = store.data_bucket
    pointer = json.loads(store.get_bytes(data, LATEST_KEY))

    async def model() -> object:
        return await Caches(RunLog(store)).model()

    async def score() -> str:
        return await Caches(RunLog(store)).score()

    tampered = {**pointer, "model_sha256": "0" * 64}
    store.put_bytes(data, LATEST_KEY, json.dumps(tampered).encode(), "application/json")
    with pytest.raises(IntegrityError, match="model sha256"):
        asyncio.run(model())
    tampered = {**pointer, "score": "99.99%"}
    store.put_bytes(data, LATEST_KEY, json.dumps(tampered).encode(), "application/json")
    with pytest.raises(CorruptStateError, match=r"99\.99%"):
        asyncio.run(score())
    store.put_bytes(data, LATEST_KEY, json.dumps(pointer).encode(), "application/json")
    assert asyncio.run(score()) == "65.29%"


def test_a_refresh_interval_trusts_the_pointer_for_that_long(store, settings):
    train(store, settings, "a")
    caches = Caches(RunLog(store), refresh_s=3600)

    async def scenario() -> tuple[str, str, str]:
        first = (await caches.model()).run_id
        train(store, settings, "b", "seed")
        stale = (await caches.model()).run_id  # trusted for an hour: still the old one
        caches.invalidate()  # as after a run or a promotion made through this server
        return first, stale, (await caches.model()).run_id

    assert asyncio.run(scenario()) == ("a", "a", "b")
    assert caches.watch.reads == 2
