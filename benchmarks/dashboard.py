"""Dashboard figures: bytes per page (assets included) and time to render the runs page with
500 runs, in the system's headless Chromium (the browser tests' set-up).

    .venv/bin/python benchmarks/dashboard.py --dataset ../shared/data/housing.csv

Starts `local-ml-flow serve --embedded --run-first`, makes two more real runs, measures each
page's weight; then plants copies of a real run's documents (request, manifest, metrics) under
new run ids until there are 500 runs, lists them once (cold: every record read), then times the
runs page: the server's answer (median of 5 GETs; finished runs' records are kept in memory)
and the browser's load (navigation start to the load event, median of 5). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.api.conftest import ApiServer  # noqa: E402
from tests.browser.chromium import launch, watch, why_no_browser  # noqa: E402

from local_ml_flow import aws  # noqa: E402
from local_ml_flow.runlog import RunLog  # noqa: E402
from local_ml_flow.settings import Settings  # noqa: E402
from local_ml_flow.storage import make_store  # noqa: E402

DATA = "local-ml-flow-data"
DOCUMENTS = ("request.json", "manifest.json", "metrics.json")


def page_weight(browser: Any, url: str) -> tuple[int, int, list[str]]:
    """(bytes, requests, foreign requests) to load ``url`` until the network is idle."""
    context = browser.new_context()
    page = context.new_page()
    sizes: list[int] = []

    def on_response(response: Any) -> None:
        try:
            sizes.append(len(response.body()))
        except Exception:  # a redirect has no body
            sizes.append(0)

    page.on("response", on_response)
    seen = watch(page, url)
    page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(300)
    context.close()
    return sum(sizes), len(sizes), seen.foreign


def load_ms(browser: Any, url: str) -> tuple[float, float]:
    """(DOMContentLoaded, load event) in ms from navigation start."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(url, wait_until="load")
    timing = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return [n.domContentLoadedEventEnd, n.loadEventEnd]; }"
    )
    context.close()
    return float(timing[0]), float(timing[1])


def plant_runs(server: ApiServer, template: str, total: int) -> int:
    """Copies of run ``template``'s documents under new ids until there are ``total`` runs."""
    s3 = aws.client("s3", endpoint_url=server.emulator_url)
    docs = {
        name: s3.get_object(Bucket=DATA, Key=f"runs/{template}/{name}")["Body"].read().decode()
        for name in DOCUMENTS
    }
    existing = {
        o["Key"].split("/")[1]
        for o in s3.list_objects_v2(Bucket=DATA, Prefix="runs/").get("Contents", [])
        if o["Key"].count("/") == 2
    }
    planted = 0
    runs = RunLog(make_store(Settings(_env_file=None), endpoint_url=server.emulator_url))
    for i in range(total - len(existing)):
        run_id = f"20200101T000000{i:06d}Z-bench{i % 10}"
        runs.index.mark(run_id)  # as the run log does: the run index reads it
        for name, text in docs.items():
            s3.put_object(
                Bucket=DATA,
                Key=f"runs/{run_id}/{name}",
                Body=text.replace(template, run_id).encode(),
                ContentType="application/json",
            )
        planted += 1
    return planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/housing.csv")
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    reason = why_no_browser()
    if reason:
        raise SystemExit(f"cannot measure in a browser: {reason}")
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="lmf-bench-ui-"))
    serve_args = ["--embedded", "--dataset", str(args.dataset), "--run-first"]
    server = ApiServer(work / "server.log", serve_args, {"LMF_LOG_LEVEL": "WARNING"})
    try:
        with httpx.Client(base_url=server.url, timeout=120) as api:
            first = api.get("/pipeline/runs").json()["runs"][0]["run_id"]
            second = api.post("/pipeline/runs", json={"model": "gradient_boosting"}).json()
            api.post("/pipeline/runs", json={"test_size": 0.001})  # one failed run
            pages = {
                "/ui (3 runs)": "/ui",
                "/ui/runs/<id>": f"/ui/runs/{first}",
                "/ui/compare (2 runs)": f"/ui/compare?run={first}&run={second['run_id']}",
                "/ui/dataset": "/ui/dataset",
                "/ui/predict": "/ui/predict",
                "/docs": "/docs",
                "/redoc": "/redoc",
            }
            with sync_playwright() as playwright:
                browser = launch(playwright)
                print(f"{'page':<24}{'bytes':>12}{'requests':>10}  other hosts")
                for name, path in pages.items():
                    size, count, foreign = page_weight(browser, server.url + path)
                    print(f"{name:<24}{size:>12,}{count:>10}  {len(foreign)}")

                planted = plant_runs(server, first, args.runs)
                started = time.perf_counter()
                listed = api.get("/pipeline/runs", params={"limit": 500}).json()["runs"]
                cold_ms = (time.perf_counter() - started) * 1000
                print(
                    f"\nplanted {planted} run records; GET /pipeline/runs?limit=500 lists"
                    f" {len(listed)} in {cold_ms:.0f} ms (cold: every record read)"
                )
                url = f"/ui?limit={args.runs}"
                server_ms = []
                html = b""
                for _ in range(5):
                    started = time.perf_counter()
                    html = api.get(url).content
                    server_ms.append((time.perf_counter() - started) * 1000)
                browser_ms = [load_ms(browser, server.url + url) for _ in range(5)]
                size, count, _ = page_weight(browser, server.url + url)
                browser.close()
            print(
                f"runs page with {len(listed)} runs: HTML {len(html):,} bytes,"
                f" page weight {size:,} bytes in {count} requests"
            )
            print(
                f"  server answer (GET {url}): median {statistics.median(server_ms):.0f} ms,"
                f" min {min(server_ms):.0f} ms (5 GETs)"
            )
            dcl = statistics.median(t[0] for t in browser_ms)
            load = statistics.median(t[1] for t in browser_ms)
            print(
                f"  browser: DOMContentLoaded median {dcl:.0f} ms, load event median"
                f" {load:.0f} ms (5 loads, navigation start to event)"
            )
            print(json.dumps({"server_ms": server_ms, "browser_ms": browser_ms}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
