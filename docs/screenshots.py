"""Regenerate the README's screenshots of the dashboard in the system's headless Chromium.

    .venv/bin/python docs/screenshots.py --dataset ../shared/data/housing.csv

Starts `local-ml-flow serve --embedded --run-first` on free ports, makes a few real runs (one
of them failing) through the API, registers scikit-learn's iris and trains on it, then saves
docs/screenshots/{runs,run,compare,dataset}.png (1280 px wide), iris-run.png (a registered
dataset's run) and runs-phone.png (the runs page at 390 px) with the browser tests' set-up
(tests/browser/chromium.py). A page with a console error, a request to another host or a
horizontal scroll (wider than its window) stops the script.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.api.conftest import ApiServer  # noqa: E402
from tests.browser import rich  # noqa: E402
from tests.browser.chromium import launch, watch, why_no_browser  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def shoot(
    browser: Any,
    url: str,
    path: Path,
    *,
    wait: str,
    full_page: bool = False,
    viewport: tuple[int, int] = (1280, 820),
) -> None:
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    seen = watch(page, url)
    page.goto(url, wait_until="networkidle")
    page.wait_for_selector(wait)
    page.wait_for_timeout(300)
    if seen.errors or seen.foreign:
        raise SystemExit(f"{url}: errors {seen.errors}, other hosts {seen.foreign}")
    scroll = page.evaluate("document.documentElement.scrollWidth")
    if scroll > width:
        raise SystemExit(f"{url} is {scroll} px wide in a {width} px window")
    page.screenshot(path=str(path), full_page=full_page)
    context.close()
    print(f"{path.relative_to(ROOT)}  ({path.stat().st_size:,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/housing.csv")
    args = parser.parse_args()
    reason = why_no_browser()
    if reason:
        raise SystemExit(f"cannot take screenshots: {reason}")
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lmf-shots-"))
    serve_args = ["--embedded", "--dataset", str(args.dataset), "--run-first"]
    server = ApiServer(work / "server.log", serve_args, {"LMF_LOG_LEVEL": "WARNING"})
    try:
        with httpx.Client(base_url=server.url, timeout=120) as api:
            first = api.get("/pipeline/runs").json()["runs"][0]["run_id"]
            boosting = api.post("/pipeline/runs", json={"model": "gradient_boosting"}).json()
            api.post("/pipeline/runs", json={"feature_set": "seed", "random_state": 7})
            api.post("/pipeline/runs", json={"test_size": 0.001})  # a failed run
            api.post(f"/pipeline/runs/{boosting['run_id']}/promote").raise_for_status()
            iris = api.put(
                "/datasets/iris",
                files={"file": ("iris.csv", rich.iris_csv(), "text/csv")},
                data={"target": "species"},
            )
            iris.raise_for_status()
            iris_run = api.post("/datasets/iris/runs", json={}).json()["run_id"]
        with sync_playwright() as playwright:
            browser = launch(playwright)
            base = server.url
            shoot(browser, f"{base}/ui", OUT / "runs.png", wait="#runs tbody tr")
            shoot(
                browser,
                f"{base}/ui/runs/{first}",
                OUT / "run.png",
                wait='.chart[data-chart="residuals"][data-drawn]',
                full_page=True,
            )
            shoot(
                browser,
                f"{base}/ui/compare?run={first}&run={boosting['run_id']}",
                OUT / "compare.png",
                wait='.chart[data-chart="scatter"][data-drawn]',
                full_page=True,
            )
            shoot(browser, f"{base}/ui/dataset", OUT / "dataset.png", wait="#preview tbody tr")
            shoot(
                browser,
                f"{base}/ui/datasets/iris/runs/{iris_run}",
                OUT / "iris-run.png",
                wait="#ds-roc[data-drawn]",
                full_page=True,
            )
            shoot(
                browser,
                f"{base}/ui",
                OUT / "runs-phone.png",
                wait="#runs tbody tr",
                viewport=(390, 844),
            )
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
