"""The API's stale-while-revalidate value, with a fake loader and clock (no S3, no sleeps)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from local_ml_flow.api.caches import Recent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Returns 1, 2, 3...; a load can be held open to interleave an invalidation."""

    def __init__(self) -> None:
        self.calls = 0
        self.hold = False
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, current: int | None) -> int:
        self.calls += 1
        value = self.calls  # what the source says when the read starts
        if self.hold:
            self.started.set()
            assert self.release.wait(10)
        return value


def get(recent: Recent[int]) -> int:
    return asyncio.run(recent.get())


def test_served_from_memory_until_stale():
    clock, load = Clock(), Loader()
    recent = Recent(load, refresh_s=10, clock=clock)
    assert get(recent) == 1
    clock.now = 5
    assert get(recent) == 1
    assert load.calls == 1


def test_invalidate_reads_before_answering():
    load = Loader()
    recent = Recent(load, refresh_s=3600, clock=Clock())
    assert get(recent) == 1
    recent.invalidate()
    assert not recent.valid
    assert get(recent) == 2


def test_an_invalidation_during_a_read_is_not_lost():
    """A background refresh that started before invalidate() must not make its value valid."""
    clock, load = Clock(), Loader()
    recent = Recent(load, refresh_s=10, clock=clock)
    assert get(recent) == 1
    clock.now = 20  # stale: the next refresh reads again
    load.hold = True
    refresh = threading.Thread(target=recent._refresh_in_background)
    refresh.start()
    assert load.started.wait(10)
    recent.invalidate()  # e.g. a run finished while the refresh was reading the old pointer
    load.release.set()
    refresh.join(10)
    load.hold = False
    assert not recent.valid
    assert get(recent) == 3  # read again, not the value of the read that began before


def test_failures_are_not_cached():
    attempts: list[int] = []

    def flaky(current: int | None) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("S3 down")
        return 7

    recent = Recent(flaky, refresh_s=3600, clock=Clock())
    with pytest.raises(RuntimeError):
        get(recent)
    assert get(recent) == 7
