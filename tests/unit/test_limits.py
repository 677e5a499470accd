"""Request guard decisions and the shared /ready call, without a server."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from local_ml_flow.api import limits


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("localhost:8000", "localhost"),
        ("LOCALHOST", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("evil.example:80", "evil.example"),
        ("", ""),
    ],
)
def test_host_name(value, name):
    assert limits.host_name(value) == name


def _refusal(method: str, path: str, *allowed: str, **headers: str):
    raw = {k.replace("_", "-").encode(): v.encode() for k, v in headers.items()}
    raw.setdefault(b"host", b"127.0.0.1:8000")
    return limits._refusal(method, path, raw, list(allowed))


def test_refusals():
    assert _refusal("GET", "/health") is None
    assert _refusal("GET", "/health", host="evil.example")[0] == 400
    assert _refusal("GET", "/health", "evil.example", host="evil.example") is None
    assert _refusal("GET", "/health", "*", host="anything") is None
    # reads are not checked for origin; writes are
    assert _refusal("GET", "/health", origin="http://evil.example") is None
    assert _refusal("POST", "/pipeline/runs", origin="http://evil.example")[0] == 403
    assert _refusal("POST", "/pipeline/runs", origin="http://127.0.0.1:8000") is None
    assert _refusal("POST", "/pipeline/runs", sec_fetch_site="same-origin") is None
    # content types
    assert _refusal("POST", "/pipeline/runs") is None  # no body, no type: the original flow
    assert _refusal("POST", "/pipeline/runs", content_length="2")[0] == 415
    assert _refusal("POST", "/pipeline/runs", transfer_encoding="chunked")[0] == 415
    assert _refusal("POST", "/predict")[0] == 415
    ok = {"content_type": "application/json; charset=utf-8"}
    assert _refusal("POST", "/predict", **ok) is None
    assert _refusal("PUT", "/bucket/dataset", **ok)[0] == 415
    assert _refusal("PUT", "/bucket/dataset", content_type="multipart/form-data; b=x") is None


def test_body_limits():
    sizes = {"predict_bytes": 10, "upload_bytes": 100}
    assert limits.body_limit("POST", "/predict", **sizes) == 10
    assert limits.body_limit("PUT", "/bucket/dataset", **sizes) == 100 + limits.UPLOAD_FRAMING_BYTES
    assert limits.body_limit("POST", "/pipeline/runs", **sizes) == limits.SMALL_BODY_BYTES


def test_shared_call_runs_once_for_concurrent_callers_and_respects_the_deadline():
    release = threading.Event()
    running = []

    def slow() -> str:
        running.append(threading.get_ident())
        release.wait(5)
        return "done"

    shared = limits.SharedCall(slow, ttl_s=0, deadline_s=0.2, on_timeout=lambda: "late")

    async def many() -> list[str]:
        return list(await asyncio.gather(*(shared.get() for _ in range(50))))

    assert asyncio.run(many()) == ["late"] * 50
    assert len(running) == 1  # one thread for 50 callers
    release.set()
    deadline = time.monotonic() + 5
    while shared._running is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert asyncio.run(shared.get()) == "done"
    assert shared.calls == 2  # a finished answer is not reused with ttl 0


def test_shared_call_passes_errors_on_and_recovers():
    calls = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return len(calls)

    shared = limits.SharedCall(flaky, ttl_s=60, deadline_s=5, on_timeout=lambda: -1)
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(shared.get())
    assert asyncio.run(shared.get()) == 2
    assert asyncio.run(shared.get()) == 2  # reused within its ttl
