"""The registered datasets' pages in a real headless Chromium over a real server: register a CSV
through the form, read its schema, start a run and watch it finish without a reload, its charts,
predict from the schema-built form; every page fits 1280 and 390 px; uploaded values never run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.api.conftest import ApiServer, start_server
from tests.browser.chromium import Watch, watch

IRIS = "iris"
XSS = "xss-check"
PAYLOAD = "<img src=x onerror=window.__xss=1>"
TERMINAL = ("succeeded", "failed", "corrupt")


@pytest.fixture(scope="module")
def ds_server(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, dataset_path: Path
) -> Iterator[ApiServer]:
    """An embedded server of this module's own (no run at start: only registered datasets)."""
    api = start_server(tmp_path_factory, dataset_path)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def api(ds_server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ds_server.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's bundled iris (no download), the target as its species' names."""
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame
    frame["species"] = frame.pop("target").map(dict(enumerate(bunch.target_names)))
    path = tmp_path_factory.mktemp("data") / "iris.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def xss_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classification CSV whose categorical level and one target label are HTML that runs
    script when inserted unescaped; also an integer and a yes/no column."""
    lines = ["size,ratio,flag,colour,label"]
    for i in range(120):
        size = i % 40
        colour = (PAYLOAD, "red", "blue")[i % 3]
        label = PAYLOAD if size < 20 else "plain"
        lines.append(f"{size},{(i * 7 % 13) / 10},{'yes' if i % 2 else 'no'},{colour},{label}")
    path = tmp_path_factory.mktemp("data") / "xss.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def visit(page: Any, server: ApiServer, path: str) -> Watch:
    """Open a page and wait until its script has rendered it from the API."""
    seen = watch(page, server.url)
    page.goto(server.url + path, wait_until="networkidle")
    page.wait_for_selector("#ds-app[data-ready]", state="attached")
    return seen


def assert_clean(seen: Watch, *allowed: str) -> None:
    """No console errors (but the refusals a test asked for, which Chromium logs) and no
    request to another host."""
    assert seen.requests, "the watch saw no request at all"
    errors = [e for e in seen.errors if not any(a in e for a in allowed)]
    assert errors == [], errors
    assert seen.foreign == [], f"requests to other hosts: {seen.foreign}"


def register(api: httpx.Client, name: str, csv: Path, target: str) -> dict[str, Any]:
    """Register ``csv`` through the API unless ``name`` is already there."""
    found = api.get(f"/datasets/{name}")
    if found.status_code == 200:
        return dict(found.json())
    with csv.open("rb") as f:
        answer = api.put(
            f"/datasets/{name}",
            files={"file": (csv.name, f, "text/csv")},
            data={"target": target},
        )
    assert answer.status_code == 200, answer.text
    return dict(api.get(f"/datasets/{name}").json())


def finished(api: httpx.Client, name: str, run_id: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = dict(api.get(f"/datasets/{name}/runs/{run_id}").json())
        if run["status"] in TERMINAL:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish in {timeout_s}s")


def a_succeeded_run(api: httpx.Client, name: str) -> dict[str, Any]:
    """A succeeded run of ``name``: one already there, or a new one (started through the API)."""
    runs = api.get(f"/datasets/{name}/runs").json()["runs"]
    done = [r for r in runs if r["status"] == "succeeded"]
    if done:
        return dict(done[0])
    started = api.post(f"/datasets/{name}/runs", params={"wait": "false"}, json={})
    assert started.status_code == 202, started.text
    run = finished(api, name, started.json()["run_id"])
    assert run["status"] == "succeeded", run
    return run


@pytest.fixture
def iris(api: httpx.Client, iris_csv: Path) -> dict[str, Any]:
    return register(api, IRIS, iris_csv, "species")


def test_register_a_dataset_through_the_form(page, ds_server, api, iris_csv):
    assert api.get(f"/datasets/{IRIS}").status_code == 404
    seen = visit(page, ds_server, "/ui/datasets")
    form = "#ds-upload"
    page.fill(f"{form} input[name=name]", IRIS)
    page.set_input_files(f"{form} input[type=file]", str(iris_csv))
    page.fill(f"{form} input[name=target]", "species")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#ds-upload-ok")
    result = page.inner_text("#ds-upload-result")
    assert "150 rows" in result
    assert "classification" in result
    assert "setosa" in result  # the labels, in the schema summary
    stored = api.get(f"/datasets/{IRIS}").json()
    assert (stored["rows"], stored["task"], stored["target"]) == (150, "classification", "species")
    # the table below was refreshed without a reload: the new dataset links to its page
    row = page.locator(f'#ds-list tbody tr[data-dataset="{IRIS}"]')
    assert row.count() == 1
    assert row.locator("td a").first.get_attribute("href") == f"/ui/datasets/{IRIS}"
    assert stored["sha256"][:12] in row.inner_text()
    assert_clean(seen)


def test_a_refused_upload_lists_its_problems(page, ds_server, api, iris_csv):
    seen = visit(page, ds_server, "/ui/datasets")
    page.fill("#ds-upload input[name=name]", "refused")
    page.set_input_files("#ds-upload input[type=file]", str(iris_csv))
    page.fill("#ds-upload input[name=target]", "no_such_column")
    page.click("#ds-upload button[type=submit]")
    page.wait_for_selector("#ds-upload-result .error-box")
    text = page.inner_text("#ds-upload-result .error-box")
    assert "no_such_column" in text
    problems = page.locator("#ds-upload-result .problems li").all_inner_texts()
    assert len(problems) == len(set(problems)), f"a problem listed twice: {problems}"
    assert api.get("/datasets/refused").status_code == 404
    assert_clean(seen, "422")


def test_the_dataset_page_shows_the_schema(page, ds_server, api, iris):
    seen = visit(page, ds_server, f"/ui/datasets/{IRIS}")
    columns = iris["schema"]["columns"]
    rows = page.locator("#ds-schema tbody tr[data-column]")
    assert rows.count() == len(columns) == 5
    species = page.locator('#ds-schema tr[data-column="species"]')
    assert "target" in species.inner_text()
    assert "versicolor" in species.inner_text()
    petal = page.locator('#ds-schema tr[data-column="petal length (cm)"]')
    assert "1 \u2013 6.9" in petal.inner_text()  # the observed range
    # the run form: every feature column, all checked; the model kinds, the default chosen
    boxes = page.locator("#ds-start-run input[name=feature]")
    assert boxes.count() == sum(c["feature"] for c in columns) == 4
    assert all(boxes.nth(i).is_checked() for i in range(boxes.count()))
    options = page.locator("#ds-start-run select[name=model] option").all_inner_texts()
    assert options == iris["model_kinds"]
    assert page.input_value("#ds-start-run select[name=model]") == iris["default_model"]
    assert page.locator("#ds-versions tbody tr").count() == len(iris["versions"]) >= 1
    assert_clean(seen)


def test_a_run_started_from_the_form_succeeds_without_a_reload(page, ds_server, api, iris):
    before = {r["run_id"] for r in api.get(f"/datasets/{IRIS}/runs").json()["runs"]}
    seen = visit(page, ds_server, f"/ui/datasets/{IRIS}")
    page.evaluate("window.__same_page = true")
    page.uncheck('#ds-start-run input[name=feature][value="sepal width (cm)"]')
    page.click("#ds-start-run button[type=submit]")
    page.wait_for_selector("#ds-run-progress .run-state")
    page.wait_for_selector("#ds-run-progress .run-result", timeout=240_000)
    new = [r for r in api.get(f"/datasets/{IRIS}/runs").json()["runs"] if r["run_id"] not in before]
    assert len(new) == 1
    run = new[0]
    assert run["status"] == "succeeded", run
    assert "sepal width (cm)" not in run["parameters"]["features"]
    assert len(run["parameters"]["features"]) == 3
    row = page.locator(f'#ds-runs tbody tr[data-run="{run["run_id"]}"]')
    row.wait_for()
    assert row.get_attribute("data-status") == "succeeded"
    assert "current" in row.inner_text() or not run["current"]
    assert page.evaluate("window.__same_page") is True, "the page was reloaded"
    assert_clean(seen)


def test_the_run_page_draws_the_confusion_matrix_and_the_roc_curve(page, ds_server, api, iris):
    run = a_succeeded_run(api, IRIS)
    url = f"/datasets/{IRIS}/runs/{run['run_id']}/predictions"
    predictions = api.get(url, params={"max_points": 5000}).json()
    seen = visit(page, ds_server, f"/ui/datasets/{IRIS}/runs/{run['run_id']}")
    heads = page.locator("#ds-confusion thead th").all_inner_texts()
    assert heads[1 : 1 + len(predictions["labels"])] == predictions["labels"]
    cells = [
        [int(t.replace(",", "")) for t in row.locator("td").all_inner_texts()[:-1]]
        for row in page.locator("#ds-confusion tbody tr").all()
    ]
    assert cells == predictions["confusion"]
    assert sum(map(sum, cells)) == run["metrics"]["n_test"]
    page.wait_for_selector("#ds-roc[data-drawn] canvas")
    assert chart_pixels(page, "#ds-roc") > 500, "the ROC chart is empty"
    assert "accuracy" in page.inner_text("#ds-metrics")
    assert_clean(seen)


def chart_pixels(page: Any, selector: str) -> int:
    """Non-transparent pixels drawn on a chart's canvas."""
    return int(
        page.eval_on_selector(
            f"{selector} canvas",
            """canvas => {
                const data = canvas.getContext('2d').getImageData(0, 0, canvas.width,
                    canvas.height).data;
                let n = 0;
                for (let i = 3; i < data.length; i += 4) if (data[i]) n++;
                return n;
            }""",
        )
    )


def test_predict_from_the_form_answers_a_label_and_its_probabilities(page, ds_server, api, iris):
    run = a_succeeded_run(api, IRIS)
    current = api.get(f"/datasets/{IRIS}").json()["current_run"]
    assert current is not None, f"a succeeded run {run['run_id']} but nothing current"
    seen = visit(page, ds_server, f"/ui/datasets/{IRIS}/predict")
    fields = page.locator("#ds-predict [data-field]")
    assert fields.count() == len(current["features"])
    page.click("#ds-predict button[type=submit]")
    page.wait_for_selector("#ds-predict-result .prediction")
    label = page.inner_text("#ds-prediction")
    assert label in ("setosa", "versicolor", "virginica")
    assert current["run_id"] in page.inner_text("#ds-predict-result")
    rows = page.locator("#ds-probabilities tbody tr")
    assert rows.count() == 3
    probabilities = {
        r.locator("td").nth(0).inner_text(): float(r.locator("td").nth(1).inner_text())
        for r in rows.all()
    }
    assert set(probabilities) == {"setosa", "versicolor", "virginica"}
    assert sum(probabilities.values()) == pytest.approx(1, abs=0.01)
    assert max(probabilities, key=probabilities.__getitem__) == label
    assert_clean(seen)


def test_a_regression_run_page_draws_predicted_against_actual(page, ds_server, api, tmp_path):
    from sklearn.datasets import load_diabetes

    csv = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(csv, index=False)
    register(api, "diabetes", csv, "target")
    run = a_succeeded_run(api, "diabetes")
    seen = visit(page, ds_server, f"/ui/datasets/diabetes/runs/{run['run_id']}")
    assert page.get_attribute("#ds-scatter", "data-drawn") == str(run["metrics"]["n_test"])
    assert chart_pixels(page, "#ds-scatter") > 500, "the scatter chart is empty"
    assert "R²" in page.inner_text("#ds-metrics")
    assert_clean(seen)


def test_uploaded_html_is_shown_as_text_and_never_runs(page, ds_server, api, xss_csv):
    seen = visit(page, ds_server, "/ui/datasets")
    page.fill("#ds-upload input[name=name]", XSS)
    page.set_input_files("#ds-upload input[type=file]", str(xss_csv))
    page.fill("#ds-upload input[name=target]", "label")
    page.click("#ds-upload button[type=submit]")
    page.wait_for_selector("#ds-upload-ok")
    assert PAYLOAD in page.inner_text("#ds-upload-result")  # the label, as text
    run = a_succeeded_run(api, XSS)
    paths = [
        "/ui/datasets",
        f"/ui/datasets/{XSS}",
        f"/ui/datasets/{XSS}/runs/{run['run_id']}",
        f"/ui/datasets/{XSS}/predict",
    ]
    for path in paths:
        visit(page, ds_server, path)
        if path.endswith("/predict"):
            page.click("#ds-predict button[type=submit]")
            page.wait_for_selector("#ds-predict-result .prediction")
        html = page.content()
        assert PAYLOAD not in html, f"{path}: the payload is in the page unescaped"
        if path != "/ui/datasets":
            assert PAYLOAD in page.inner_text("main"), f"{path}: the payload is not shown as text"
        assert page.evaluate("window.__xss") is None, f"{path}: the payload ran"
        assert page.locator("main img").count() == 0, f"{path}: an <img> was made"
    assert_clean(seen)


def test_two_runs_compared_side_by_side(browser, ds_server, api, iris):
    states: dict[str, int] = {}
    for random_state in (1, 2):
        started = api.post(
            f"/datasets/{IRIS}/runs", params={"wait": "false"}, json={"random_state": random_state}
        )
        assert started.status_code == 202, started.text
        states[started.json()["run_id"]] = random_state
    ids = list(states)
    for run_id in ids:
        assert finished(api, IRIS, run_id)["status"] == "succeeded"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        tab.set_default_timeout(30_000)
        seen = visit(tab, ds_server, f"/ui/datasets/{IRIS}")
        button = tab.locator("#ds-compare-selected")
        assert button.is_disabled()
        tab.check(f'#ds-runs tr[data-run="{ids[0]}"] input[name=compare]')
        assert button.is_disabled()
        tab.check(f'#ds-runs tr[data-run="{ids[1]}"] input[name=compare]')
        assert button.is_enabled()
        button.click()
        tab.wait_for_url(lambda url: "/compare?" in url)
        url = urlsplit(tab.url)
        assert url.path == f"/ui/datasets/{IRIS}/compare"
        order = parse_qs(url.query)["run"]  # the runs table's order: newest first
        assert sorted(order) == sorted(ids)
        tab.wait_for_selector("#ds-app[data-ready]", state="attached")
        tab.wait_for_load_state("networkidle")
        assert tab.get_attribute("#ds-app", "data-ready") == "1"
        heads = tab.locator("#ds-compare thead th").all_inner_texts()
        assert heads[1:] == order
        differing = tab.locator('#ds-compare tr[data-param="random_state"]')
        assert differing.get_attribute("class") == "diff"
        assert differing.locator("td").all_inner_texts() == [str(states[i]) for i in order]
        same = tab.locator('#ds-compare tr[data-param="test_size"]')
        assert same.get_attribute("class") is None
        assert tab.locator('#ds-compare tr[data-metric="accuracy"]').count() == 1
        scroll = tab.evaluate("document.documentElement.scrollWidth")
        assert scroll <= 1280, f"the compare page is {scroll} px wide at 1280 px"
        assert_clean(seen)
    finally:
        context.close()
    refused = httpx.get(f"{ds_server.url}/ui/datasets/{IRIS}/compare", params={"run": ids[0]})
    assert refused.status_code == 400
    assert f'href="/ui/datasets/{IRIS}"' in refused.text
    moved = httpx.get(
        f"{ds_server.url}/ui/datasets/housing/compare?run=a&run=b", follow_redirects=False
    )
    assert (moved.status_code, moved.headers["location"]) == (307, "/ui/compare?run=a&run=b")


@pytest.fixture(scope="module")
def every_page(api: httpx.Client, iris_csv: Path) -> list[str]:
    register(api, IRIS, iris_csv, "species")
    run = a_succeeded_run(api, IRIS)
    return [
        "/ui/datasets",
        f"/ui/datasets/{IRIS}",
        f"/ui/datasets/{IRIS}/runs/{run['run_id']}",
        f"/ui/datasets/{IRIS}/predict",
        "/ui/datasets/no-such-dataset",
    ]


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_fits_the_width(browser, ds_server, every_page, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        tab = context.new_page()
        tab.set_default_timeout(30_000)
        for path in every_page:
            visit(tab, ds_server, path)
            tab.wait_for_load_state("networkidle")
            scroll = tab.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{path} is {scroll} px wide at {width} px"
            errors = tab.locator("#ds-app .error-box").count()
            assert errors == int(path.endswith("no-such-dataset")), f"{path}: an error shown"
    finally:
        context.close()


def test_unknown_datasets_and_runs_say_so(page, ds_server, api, iris):
    bad = httpx.get(f"{ds_server.url}/ui/datasets/Not%20A%20Name")
    assert bad.status_code == 404
    assert bad.headers["content-type"].startswith("text/html")
    assert 'href="/ui/datasets"' in bad.text
    for path, said in [
        ("/ui/datasets/no-such-dataset", "no-such-dataset"),
        (f"/ui/datasets/{IRIS}/runs/no-such-run", "no-such-run"),
        ("/ui/datasets/no-such-dataset/predict", "no-such-dataset"),
    ]:
        seen = visit(page, ds_server, path)
        assert page.get_attribute("#ds-app", "data-ready") == "not-found"
        assert said in page.inner_text("#ds-not-found")
        assert page.locator('#ds-app a[href="/ui/datasets"]').count() == 1
        assert_clean(seen, "404")


def test_the_builtin_dataset_keeps_its_own_pages(page, ds_server, api):
    listed = {d["name"]: d for d in api.get("/datasets").json()["datasets"]}
    assert listed["housing"]["builtin"] is True
    moved = httpx.get(f"{ds_server.url}/ui/datasets/housing", follow_redirects=False)
    assert (moved.status_code, moved.headers["location"]) == (307, "/ui")
    seen = visit(page, ds_server, "/ui/datasets")
    row = page.locator('#ds-list tbody tr[data-dataset="housing"]')
    hrefs = row.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert "/ui/dataset" in hrefs
    assert "/ui/predict" in hrefs
    assert not [h for h in hrefs if h.startswith("/ui/datasets")]
    assert_clean(seen)
