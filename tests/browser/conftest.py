"""A real server and the system's Chromium for the browser tests; a loud skip without them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiServer, start_server
from tests.browser.chromium import launch, why_no_browser


def _skip_loudly(reason: str) -> None:
    banner = "!" * 78
    stream = sys.__stderr__ or sys.stderr  # past pytest's capture: seen even with -q
    stream.write(f"\n{banner}\nBROWSER TESTS SKIPPED: {reason}\n{banner}\n")
    pytest.skip(f"BROWSER TESTS SKIPPED: {reason}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = why_no_browser()
    if reason is not None:
        _skip_loudly(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def ui_server(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, dataset_path: Path
) -> Iterator[ApiServer]:
    """An embedded server that ran the pipeline once before serving."""
    args = ["--embedded", "--dataset", str(dataset_path), "--run-first"]
    api = start_server(tmp_path_factory, dataset_path, args=args)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def api(ui_server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui_server.url, timeout=60) as client:
        yield client


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()
