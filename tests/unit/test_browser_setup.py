"""The browser tests' set-up: which Chromium, and a reason when there is none."""

from __future__ import annotations

import shutil

from tests.browser import chromium


def test_no_chromium_is_explained(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert chromium.find_chromium() is None
    reason = chromium.why_no_browser()
    assert reason is not None
    assert "apt-get install -y chromium" in reason


def test_lmf_chromium_comes_first(monkeypatch, tmp_path):
    own = tmp_path / "my-chromium"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    monkeypatch.setenv("LMF_CHROMIUM", str(own))
    assert chromium.find_chromium() == str(own)


def test_launch_args_keep_chromium_quiet_and_headless():
    for flag in ("--headless", "--no-sandbox", "--disable-background-networking", "--no-first-run"):
        assert flag in chromium.LAUNCH_ARGS


def test_foreign_requests_are_told_apart():
    seen = chromium.Watch("http://127.0.0.1:8000")
    seen.requests += [
        "http://127.0.0.1:8000/ui",
        "data:image/svg+xml,x",
        "https://cdn.example/x.js",
        "http://127.0.0.1:9999/other-port",
    ]
    assert seen.foreign == ["https://cdn.example/x.js", "http://127.0.0.1:9999/other-port"]
