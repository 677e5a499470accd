"""The one Playwright set-up (tests, screenshots, benchmarks): the system's Chromium, headless,
no background traffic; a watch on each page's console errors and requests to other hosts."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    """``LMF_CHROMIUM``, else Debian's ``chromium`` (Playwright's own download is not used)."""
    for candidate in (os.environ.get("LMF_CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def why_no_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return (
            "no Chromium: /usr/bin/chromium is missing (apt-get install -y chromium;"
            " ./bin/test.sh does it) and LMF_CHROMIUM is not set"
        )
    return None


def launch(playwright: Playwright) -> Browser:
    path = find_chromium()
    if path is None:
        raise RuntimeError(why_no_browser() or "no Chromium")
    return playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS, headless=True)


@dataclass
class Watch:
    """What a page did: console errors, uncaught exceptions, every URL it requested."""

    base: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def foreign(self) -> list[str]:
        """Requests to any other host than the server's (data: URLs are not requests)."""
        own = urlsplit(self.base).netloc
        return [
            u
            for u in self.requests
            if urlsplit(u).scheme in ("http", "https", "ws", "wss") and urlsplit(u).netloc != own
        ]


def watch(page: Page, base: str) -> Watch:
    seen = Watch(base)

    def console(message: Any) -> None:
        if message.type == "error":
            seen.errors.append(f"console: {message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on(
        "requestfailed",
        lambda request: seen.errors.append(f"request failed: {request.url} {request.failure}"),
    )
    return seen
