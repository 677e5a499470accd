"""The dashboard as the issue measured it, over a server with data that makes pages wide (long
run ids, failed runs, a wide registered dataset, see ``rich.py``) and one with no run at all:
one test per finding (pages wider than their window, ticks that run together, a runs table that
does not follow a run, errors as raw JSON, numbers such as ``1.609e+06``, problems listed twice,
messages that point elsewhere than the dashboard)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiServer, start_server
from tests.browser import rich
from tests.browser.chromium import Watch, watch
from tests.browser.test_dashboard import BAD_CSV

VIEWPORTS = {"1280x800": (1280, 800), "390x844": (390, 844)}
# Tables that must show every column at 1280 px without scrolling in their box.
WHOLE_AT_1280 = ("#runs", "#preview", "#compare-table", "#ds-runs", "#ds-list", "#ds-compare")
# A number written the way Python's or JavaScript's defaults write it, not for people.
RAW_NUMBER = re.compile(r"\d(?:\.\d+)?e[+-]\d")
# Catches every uPlot made, to read the ticks it drew (uPlot is a global `var`: its setter runs).
CATCH_PLOTS = """
(() => {
  let wrapped;
  window.__plots = [];
  Object.defineProperty(window, "uPlot", {
    configurable: true,
    get() { return wrapped; },
    set(real) {
      wrapped = function (opts, data, target) {
        const plot = new real(opts, data, target);
        window.__plots.push(plot);
        return plot;
      };
      Object.assign(wrapped, real);
    },
  });
})();
"""
# Each axis of each chart: its tick labels' positions and widths (CSS px), its own size.
TICKS = """
() => window.__plots.map((u) => u.axes.map((axis) => {
  if (!axis.show || !axis._values) return null;
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = axis.font[0];
  const labels = axis._splits.map((v, k) => [v, axis._values[k]]).filter(([, t]) => t != null);
  return {
    horizontal: axis.side % 2 === 0,
    size: axis._size,
    ticks: labels.map(([v, t]) => ({
      text: String(t), at: u.valToPos(v, axis.scale), width: ctx.measureText(String(t)).width,
    })),
  };
}).filter(Boolean))
"""


@pytest.fixture(scope="module")
def rich_server(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, dataset_path: Path
) -> Iterator[tuple[ApiServer, rich.Rich]]:
    """An embedded server that ran once, then the runs and datasets of ``rich.fill``."""
    args = ["--embedded", "--dataset", str(dataset_path), "--run-first"]
    server = start_server(tmp_path_factory, dataset_path, args=args)
    try:
        yield server, rich.fill(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bare_server(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, dataset_path: Path
) -> Iterator[ApiServer]:
    """A server with no run at all."""
    server = start_server(tmp_path_factory, dataset_path)
    yield server
    server.stop()


def tab(browser: Any, viewport: str) -> Any:
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


def settle(page: Any, server: ApiServer, path: str) -> tuple[Watch, Any]:
    """Open ``path`` and wait until its script is done: the datasets' pages say so, the
    housing pages' charts are drawn."""
    seen = watch(page, server.url)
    response = page.goto(server.url + path, wait_until="networkidle")
    if page.locator("#ds-app").count():
        page.wait_for_selector("#ds-app[data-ready]", state="attached")
    for chart in page.locator(".chart[data-chart]").all():
        chart.locator("canvas").wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    return seen, response


def test_every_page_fits_the_window(browser, rich_server):
    """scrollWidth <= the viewport on every page at both sizes; at 1280 the wide tables show
    every column in their box."""
    server, made = rich_server
    wide: list[str] = []
    cut: list[str] = []
    for viewport, (width, _) in VIEWPORTS.items():
        page = tab(browser, viewport)
        try:
            for path in made.pages():
                seen, response = settle(page, server, path)
                scroll = page.evaluate("document.documentElement.scrollWidth")
                if scroll > width:
                    wide.append(f"{path} is {scroll} px wide at {viewport}")
                refused = not response.ok or page.locator("#ds-not-found").count()
                refusals = ["404", "400", "422"] if refused else []
                errors = [e for e in seen.errors if not any(code in e for code in refusals)]
                assert errors == [], f"{path}: {errors}"
                assert seen.foreign == [], f"{path}: {seen.foreign}"
                if width < 1280:
                    continue
                for table in WHOLE_AT_1280:
                    boxes = page.locator(f"div.scroll:has(> {table})")
                    if boxes.count():
                        inner, shown = boxes.first.evaluate("b => [b.scrollWidth, b.clientWidth]")
                        if inner > shown:
                            cut.append(f"{path}: {table} is {inner} px in a {shown} px box")
        finally:
            page.context.close()
    assert wide == [], "\n".join(wide)
    assert cut == [], "\n".join(cut)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_chart_ticks_do_not_run_together(browser, rich_server, viewport):
    """The x labels of every chart leave room between them; a y axis is as wide as its labels."""
    server, made = rich_server
    h, w = made.housing, made.wide
    paths = [
        f"/ui/runs/{h['long0']}",
        f"/ui/compare?run={h['long0']}&run={h['boosting']}&run={h['seed']}",
        f"/ui/datasets/{rich.WIDE}/runs/{w['long']}",
        f"/ui/datasets/{rich.IRIS}/runs/{made.iris['first']}",
    ]
    page = tab(browser, viewport)
    page.add_init_script(CATCH_PLOTS)
    problems: list[str] = []
    try:
        for path in paths:
            settle(page, server, path)
            charts = page.evaluate(TICKS)
            assert charts, f"{path}: no chart drawn"
            for axes in charts:
                for axis in axes:
                    ticks = sorted(axis["ticks"], key=lambda t: t["at"])
                    assert len(ticks) >= 2, f"{path}: an axis with {ticks}"
                    if axis["horizontal"]:
                        for a, b in pairwise(ticks):
                            room = b["at"] - a["at"] - (a["width"] + b["width"]) / 2
                            if room < 6:
                                problems.append(f"{path}: {a['text']!r} and {b['text']!r}")
                    else:
                        widest = max(t["width"] for t in ticks)
                        if widest + 12 > axis["size"]:
                            problems.append(f"{path}: a {widest:.0f} px label, {axis['size']} px")
    finally:
        page.context.close()
    assert problems == [], "labels that run together:\n" + "\n".join(problems)


def test_charts_follow_the_window_when_it_is_resized(browser, rich_server):
    """A run page opened wide, then narrowed to a phone's width and widened again: every chart
    is redrawn to its box, so the page never scrolls sideways."""
    server, made = rich_server
    page = tab(browser, "1280x800")
    page.add_init_script(CATCH_PLOTS)
    widths = "() => window.__plots.map((u) => u.width)"
    try:
        settle(page, server, f"/ui/runs/{made.housing['long0']}")
        wide = page.evaluate(widths)
        assert wide, "no chart drawn"
        assert min(wide) > 390, wide
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_function(f"() => window.__plots.every((u) => u.width < {min(wide)})")
        assert max(page.evaluate(widths)) <= 390
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.set_viewport_size({"width": 1280, "height": 800})
        page.wait_for_function("() => window.__plots.every((u) => u.width > 390)")
        assert page.evaluate(widths) == wide
    finally:
        page.context.close()


def test_the_runs_table_follows_a_run_started_from_the_form(browser, rich_server):
    """The new run appears in the table, and the current badge moves to it, without a reload."""
    server, made = rich_server
    with httpx.Client(base_url=server.url, timeout=120) as api:
        api.post(f"/pipeline/runs/{made.housing['first']}/promote").raise_for_status()
        before = {r["run_id"] for r in api.get("/pipeline/runs").json()["runs"]}
        page = tab(browser, "1280x800")
        try:
            seen, _ = settle(page, server, "/ui")
            page.evaluate("window.__same_page = true")
            first = row_of(page, made.housing["first"])
            assert first.locator(".badge.current").count() == 1
            # gradient boosting scores above the linear run serving: it becomes current
            page.select_option("#start-run select[name=model]", "gradient_boosting")
            page.click("#start-run button[type=submit]")
            page.wait_for_selector(".run-result", timeout=120_000)
            runs = api.get("/pipeline/runs").json()["runs"]
            new = next(r for r in runs if r["run_id"] not in before)
            assert new["current"], new
            row = row_of(page, new["run_id"])
            row.locator(".badge.current").wait_for(timeout=10_000)
            assert row.locator(".status").inner_text() == "succeeded"
            assert first.locator(".badge.current").count() == 0
            assert page.locator("#runs tbody tr").count() == len(runs)
            assert page.locator("#runs .badge.current").count() == 1
            assert f"{len(runs)} run(s) shown" in page.inner_text("#runs-count")
            assert page.evaluate("window.__same_page") is True, "the page was reloaded"
            assert seen.errors == []
        finally:
            page.context.close()


def row_of(page: Any, run_id: str) -> Any:
    """The runs table's row of a run."""
    return page.locator("#runs tbody tr", has=page.locator(f'a[href="/ui/runs/{run_id}"]'))


@pytest.mark.parametrize(
    ("path", "status", "back"),
    [
        ("/ui/runs/no-such-run", 404, "/ui"),
        ("/ui/runs/a..b", 422, "/ui"),
        ("/ui/compare?run=no-such-run", 422, "/ui"),
        ("/ui/dataset?offset=-1", 422, "/ui"),
        ("/ui/no-such-page", 404, "/ui"),
        (f"/ui/datasets/{rich.WIDE}/no-such-page", 404, f"/ui/datasets/{rich.WIDE}"),
    ],
)
def test_every_error_is_a_page_with_a_way_back(browser, rich_server, path, status, back):
    server, _ = rich_server
    page = tab(browser, "390x844")
    try:
        seen = watch(page, server.url)
        response = page.goto(server.url + path, wait_until="networkidle")
        assert response.status == status
        assert response.headers["content-type"].startswith("text/html")
        assert page.locator("main .error-box").is_visible()
        assert page.locator("header nav a").count() >= 4  # the dashboard's navigation
        link = page.locator(f'main a[href="{back}"]')
        assert link.count() == 1, page.content()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert seen.foreign == []
        link.click()
        page.wait_for_load_state("networkidle")
        assert page.url == server.url + back
    finally:
        page.context.close()
    # a client that asks for JSON still gets the API's error shape
    answer = httpx.get(server.url + path, headers={"Accept": "application/json"})
    assert answer.status_code == status
    assert set(answer.json()) == {"error"}


def test_numbers_read_as_numbers(browser, rich_server):
    """Coefficients, metrics, rules and hints: thousands separated, no ``1.609e+06``."""
    server, made = rich_server
    page = tab(browser, "1280x800")
    try:
        for path in (
            f"/ui/runs/{made.housing['first']}",  # a linear run: its coefficients
            f"/ui/runs/{made.housing['long0']}",
            "/ui",
            "/ui/dataset",
            "/ui/predict",
            f"/ui/compare?run={made.housing['first']}&run={made.housing['boosting']}",
            f"/ui/datasets/{rich.WIDE}",
            f"/ui/datasets/{rich.WIDE}/predict",
        ):
            settle(page, server, path)
            text = page.inner_text("main")
            assert not RAW_NUMBER.search(text), f"{path}: {RAW_NUMBER.findall(text)}"
            if path == "/ui/predict":
                assert "a whole number from 0 to 1,000,000,000" in text
        settle(page, server, f"/ui/runs/{made.housing['first']}")
        coefficients = page.locator("#weights tbody td.num").all_inner_texts()
        assert len(coefficients) >= 10
        assert all(re.fullmatch(r"-?[\d,]+(\.\d+)?", c) for c in coefficients), coefficients
        assert any(len(c) >= 7 and "," in c for c in coefficients), coefficients
    finally:
        page.context.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_refused_upload_lists_each_problem_once(browser, rich_server, tmp_path, viewport):
    """On the housing dataset page and on the datasets page; the page still fits."""
    server, _ = rich_server
    housing = tmp_path / "bad.csv"
    housing.write_text(BAD_CSV)
    registered = tmp_path / "two-problems.csv"
    registered.write_text("a,a,,b\n1,2,3,x\n")
    width = VIEWPORTS[viewport][0]
    page = tab(browser, viewport)
    try:
        settle(page, server, "/ui/dataset")
        page.set_input_files("#upload input[type=file]", str(housing))
        page.click("#upload button[type=submit]")
        box = page.locator("#upload-result .error-box")
        box.wait_for()
        assert_each_once(box.inner_text(), page.locator("#upload-result .problems li"), 3)
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        settle(page, server, "/ui/datasets")
        page.fill("#ds-upload input[name=name]", "refused-twice")
        page.set_input_files("#ds-upload input[type=file]", str(registered))
        page.fill("#ds-upload input[name=target]", "b")
        page.click("#ds-upload button[type=submit]")
        box = page.locator("#ds-upload-result .error-box")
        box.wait_for()
        assert_each_once(box.inner_text(), page.locator("#ds-upload-result .problems li"), 2)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        page.context.close()


def assert_each_once(text: str, items: Any, expected: int) -> None:
    problems = items.all_inner_texts()
    assert len(problems) == expected, problems
    for problem in problems:
        assert text.count(problem) == 1, f"{problem!r} is shown more than once in:\n{text}"


def test_an_empty_runs_page_points_at_the_form_above(browser, bare_server):
    page = tab(browser, "390x844")
    try:
        settle(page, bare_server, "/ui")
        empty = page.inner_text("#runs tbody")
        assert "above" in empty
        assert "below" not in empty
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        page.context.close()


def test_the_predict_page_without_a_model_points_at_the_runs_page(browser, bare_server):
    """Not at the API (``POST /pipeline/runs``): before and after predict is pressed."""
    page = tab(browser, "390x844")
    try:
        seen, _ = settle(page, bare_server, "/ui/predict")
        page.click("#predict button[type=submit]")
        page.wait_for_selector("#predict-result p, #predict-result .error-box")
        assert "POST /pipeline/runs" not in page.inner_text("main")
        assert page.locator('#predict-note a[href="/ui"]').count() == 1
        assert page.locator('#predict-result a[href="/ui"]').count() == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert [e for e in seen.errors if "409" not in e] == []
    finally:
        page.context.close()
