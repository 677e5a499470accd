"""The pipeline's face through a real server: offline docs, working examples, rollback, test
predictions, runs without waiting, the dashboard's HTML, and the server's logs."""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from tests.api.conftest import ApiServer, assert_error, start_server

PAGES = ("/docs", "/redoc", "/ui", "/ui/dataset", "/ui/predict")
# Every URL a page makes the browser load: src=, href= of link tags, url() in inline CSS.
_LOADED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""", re.I)


def wait_for(client: httpx.Client, location: str, timeout_s: float = 60) -> dict:
    """Poll a run until it is neither queued nor running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client.get(location).json()
        if run["status"] not in ("queued", "running"):
            return dict(run)
        time.sleep(0.2)
    raise AssertionError(f"{location} still unfinished after {timeout_s}s")


@pytest.fixture(scope="module")
def runs(client: httpx.Client) -> dict[str, dict]:
    """A succeeded linear run, a succeeded boosting run (current), a failed run."""
    linear = client.post("/pipeline/runs", json={"model": "linear"})
    assert linear.status_code == 201, linear.text
    boosting = client.post("/pipeline/runs", json={"model": "gradient_boosting"})
    assert boosting.status_code == 201, boosting.text
    failing = client.post("/pipeline/runs", json={"test_size": 0.001})  # too few test rows
    assert failing.status_code == 422, failing.text
    failed_id = failing.json()["error"]["details"]["run_id"]
    return {
        "linear": linear.json(),
        "boosting": boosting.json(),
        "failed": client.get(f"/pipeline/runs/{failed_id}").json(),
    }


def loaded_urls(html: str) -> list[str]:
    return [a or b for a, b in _LOADED.findall(html)]


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_only_from_this_server(client, runs, path):
    page = client.get(path, headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    urls = loaded_urls(page.text)
    assert urls, "a page with no assets: the pattern is broken"
    for url in urls:
        assert url.startswith(("/", "#", "data:")), f"{path} loads {url} from elsewhere"
        if url.startswith("/"):
            asset = client.get(urljoin(path, url))
            assert asset.status_code == 200, f"{path} references {url}: {asset.status_code}"


def test_run_detail_and_compare_pages(client, runs):
    linear, boosting, failed = runs["linear"], runs["boosting"], runs["failed"]
    page = client.get(f"/ui/runs/{linear['run_id']}").text
    assert "make current" in page
    assert 'data-chart="scatter"' in page
    assert "coefficient" in page  # a linear model's weights per feature
    assert "importance" in client.get(f"/ui/runs/{boosting['run_id']}").text
    failed_page = client.get(f"/ui/runs/{failed['run_id']}").text
    assert failed["error"]["type"] in failed_page
    assert "make current" not in failed_page
    compare = client.get(
        "/ui/compare", params=[("run", linear["run_id"]), ("run", boosting["run_id"])]
    ).text
    assert re.search(r"<tr class=diff><th>model</th>", compare), "the differing row is marked"
    assert not re.search(r"<tr class=diff><th>test_size</th>", compare)
    one = client.get("/ui/compare", params={"run": linear["run_id"]})
    assert one.status_code == 422
    assert one.headers["content-type"].startswith("text/html")  # a page, with a way back
    assert "InvalidRequestError" in one.text
    assert 'href="/ui"' in one.text
    asked = {"Accept": "application/json"}
    one = client.get("/ui/compare", params={"run": linear["run_id"]}, headers=asked)
    assert_error(one, 422, "InvalidRequestError")


def test_runs_page_lists_and_filters(client, runs):
    page = client.get("/ui").text
    for run in runs.values():
        assert run["run_id"] in page
    failed_only = client.get("/ui", params={"status": "failed"}).text
    assert runs["failed"]["run_id"] in failed_only
    assert runs["linear"]["run_id"] not in failed_only


def test_root_sends_browsers_to_the_dashboard(client):
    browser = client.get("/", headers={"Accept": "text/html,*/*"}, follow_redirects=False)
    assert browser.status_code == 307
    assert browser.headers["location"] == "/ui"
    assert client.get("/").json()["dashboard"] == "/ui"


def test_every_documented_request_example_succeeds(client, runs):
    schema = client.get("/openapi.json").json()
    posted = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for name, example in content.get("application/json", {}).get("examples", {}).items():
                response = client.request(method, path, json=example["value"])
                assert response.status_code < 300, f"{method} {path} {name}: {response.text}"
                posted += 1
    assert posted >= 4  # three run examples, two predict examples


def test_swagger_prefill_is_valid(client):
    """What Swagger pre-fills (the first example) is what a user sends with "Try it out"."""
    operation = client.get("/openapi.json").json()["paths"]["/pipeline/runs"]["post"]
    first = next(iter(operation["requestBody"]["content"]["application/json"]["examples"].values()))
    assert first["value"]["test_size"] < 1
    response = client.post("/pipeline/runs", json=first["value"])
    assert response.status_code == 201, response.text


def test_error_examples_per_status(client):
    schema = client.get("/openapi.json").json()
    types_by_status: dict[str, set[str]] = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path not in ("/health", "/ready", "/"):
                assert {"502", "503"} <= codes, f"{method} {path} documents {sorted(codes)}"
            for code, response in operation["responses"].items():
                if code < "400":
                    continue
                examples = response["content"]["application/json"].get("examples", {})
                assert examples or path == "/ready", f"{method} {path} {code} has no example"
                for example in examples.values():
                    types_by_status.setdefault(code, set()).add(example["value"]["error"]["type"])
    assert types_by_status["404"] == {"NotFoundError"}
    assert "PromotionRefusedError" in types_by_status["409"]
    assert "FunctionFailedError" in types_by_status["502"]
    assert "EndpointUnreachableError" in types_by_status["503"]
    # each status its own types: no type is the example of two statuses
    seen: dict[str, str] = {}
    for code, kinds in types_by_status.items():
        for kind in kinds:
            assert seen.setdefault(kind, code) == code, (
                f"{kind} documented for {code} and {seen[kind]}"
            )


def test_predictions_of_a_run(client, runs):
    linear = runs["linear"]
    body = client.get(f"/pipeline/runs/{linear['run_id']}/predictions").json()
    assert body["run_id"] == linear["run_id"]
    assert len(body["y_true"]) == len(body["y_pred"]) == linear["metrics"]["n_test"]
    assert all(math.isfinite(v) for v in body["y_true"] + body["y_pred"])
    # the stored predictions give the stored metrics back
    n = len(body["y_true"])
    mae = sum(abs(t - p) for t, p in zip(body["y_true"], body["y_pred"], strict=True)) / n
    assert mae == pytest.approx(linear["metrics"]["mae"], rel=1e-9)
    failed = client.get(f"/pipeline/runs/{runs['failed']['run_id']}/predictions")
    assert_error(failed, 409, "NoModelError")
    assert_error(client.get("/pipeline/runs/no-such-run/predictions"), 404, "NotFoundError")


def test_promote_rolls_back_and_predict_follows(client, runs):
    linear, boosting = runs["linear"], runs["boosting"]
    client.post(f"/pipeline/runs/{boosting['run_id']}/promote").raise_for_status()
    assert (
        client.post("/predict", json={"houses": [EXAMPLE_HOUSE]}).json()["run_id"]
        == (boosting["run_id"])
    )
    promoted = client.post(f"/pipeline/runs/{linear['run_id']}/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["current"] is True
    assert (
        client.post("/predict", json={"houses": [EXAMPLE_HOUSE]}).json()["run_id"]
        == (linear["run_id"])
    )
    score = client.get("/result/local-ml-flow-data").json()["content"]
    assert score == linear["metrics"]["score"]
    assert client.get(f"/pipeline/runs/{boosting['run_id']}").json()["current"] is False


def test_promotions_say_what_served_when_who_and_why(client, runs):
    linear, boosting = runs["linear"]["run_id"], runs["boosting"]["run_id"]
    for run_id, by in ((boosting, "dashboard"), (linear, "api")):
        promoted = client.post(f"/pipeline/runs/{run_id}/promote", params={"by": by})
        assert promoted.status_code == 200, promoted.text
    log = client.get("/pipeline/promotions", params={"limit": 500}).json()["promotions"]
    assert [(p["run_id"], p["by"]) for p in log[:2]] == [(linear, "api"), (boosting, "dashboard")]
    assert log[0]["previous_run_id"] == boosting
    assert log[0]["reason"].startswith("made current on request")
    assert [p["at"] for p in log] == sorted((p["at"] for p in log), reverse=True)  # newest first
    assert [p["previous_run_id"] for p in log] == [p["run_id"] for p in log[1:]] + [None]
    # the run that started it all became current through POST /pipeline/runs, by its policy
    first = [p for p in log if p["run_id"] == linear][-1]
    assert (first["by"], first["recorded"]) == ("api", True)
    assert first["reason"].startswith("promotion policy better")
    assert len(client.get("/pipeline/promotions", params={"limit": 1}).json()["promotions"]) == 1
    refused = client.get("/pipeline/promotions", params={"limit": 0})
    assert_error(refused, 422, "RequestValidationError")
    forged = client.post(f"/pipeline/runs/{linear}/promote", params={"by": "lambda"})
    assert_error(forged, 422, "RequestValidationError")  # api, or the dashboard's word


def test_reproduce_a_run_bit_for_bit(client, runs):
    boosting = runs["boosting"]["run_id"]
    before = client.get(f"/pipeline/runs/{boosting}").json()
    response = client.post(f"/pipeline/runs/{boosting}/reproduce")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["identical"] is True, result["differences"]
    assert result["reproduced_model_sha256"] == before["model_sha256"]
    assert (result["predictions_identical"], result["rows_differing"]) == (True, 0)
    assert client.get(f"/pipeline/runs/{boosting}").json() == before  # the run is untouched
    kept = client.get(f"/pipeline/runs/{boosting}/reproductions").json()["reproductions"]
    assert kept[0] == result
    assert boosting in client.get(f"/ui/runs/{boosting}").text
    failed = client.post(f"/pipeline/runs/{runs['failed']['run_id']}/reproduce")
    assert_error(failed, 409, "NoModelError")
    assert_error(client.post("/pipeline/runs/no-such-run/reproduce"), 404, "NotFoundError")
    assert_error(client.get("/pipeline/runs/no-such-run/reproductions"), 404, "NotFoundError")
    cross = client.post(
        f"/pipeline/runs/{boosting}/reproduce", headers={"Origin": "https://evil.example"}
    )
    assert_error(cross, 403, "CrossSiteRequestError")


def test_promote_refuses_what_never_becomes_current(client, runs):
    failed = runs["failed"]
    before = client.get(f"/pipeline/runs/{failed['run_id']}").json()
    refused = client.post(f"/pipeline/runs/{failed['run_id']}/promote")
    assert_error(refused, 409, "PromotionRefusedError")
    assert client.get(f"/pipeline/runs/{failed['run_id']}").json() == before  # record unchanged
    assert_error(client.post("/pipeline/runs/no-such-run/promote"), 404, "NotFoundError")
    cross = client.post(
        f"/pipeline/runs/{runs['linear']['run_id']}/promote",
        headers={"Origin": "https://evil.example"},
    )
    assert_error(cross, 403, "CrossSiteRequestError")


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"wait": "false"}, {}), ({}, {"Prefer": "respond-async"})],
    ids=["wait-false", "prefer-respond-async"],
)
def test_run_without_waiting(client, params, headers):
    response = client.post(
        "/pipeline/runs", params=params, headers=headers, json={"model": "linear"}
    )
    assert response.status_code == 202, response.text
    run = response.json()
    location = response.headers["location"]
    assert location == f"/pipeline/runs/{run['run_id']}"
    assert run["status"] in ("queued", "running")
    finished = wait_for(client, location)
    assert finished["status"] == "succeeded", finished
    # scored (succeeded) comes just before the promotion moves the pointer to it
    deadline = time.monotonic() + 10
    while not finished["current"] and time.monotonic() < deadline:
        time.sleep(0.1)
        finished = client.get(location).json()
    assert finished["current"] is True


def test_run_without_waiting_that_fails(client):
    response = client.post("/pipeline/runs?wait=false", json={"test_size": 0.001})
    assert response.status_code == 202, response.text
    finished = wait_for(client, response.headers["location"])
    assert finished["status"] == "failed"
    assert finished["error"]["stage"] == "ingestion"


def test_server_log(server: ApiServer, client, runs):
    client.get("/health")
    log = server.log.read_text()
    assert re.search(r"local_ml_flow\.access: GET /health 200 \d+B [\d.]+ms 127\.0\.0\.1", log)
    linear = runs["linear"]["run_id"]
    assert f"run {linear} started" in log
    assert re.search(rf"run {linear} succeeded in [\d.]+ s: R² 0\.\d{{4}}", log)
    failed = runs["failed"]["run_id"]
    # the function's refusal is one line, printed once, by the runner with the run: an
    # expected error is no crash (its traceback is logged at debug level only), and never
    # in the answer
    lines = log.splitlines()
    (failure,) = [line for line in lines if failed in line and "InvalidRequestError" in line]
    assert re.search(
        rf"run {failed} failed after [\d.]+ s: \S+ingestion failed: InvalidRequestError: \S",
        failure,
    )
    assert not [line for line in lines if "local_ml_flow.functions" in line]
    assert "Traceback" not in log


def test_a_path_cannot_forge_a_log_line(server: ApiServer, client):
    forged = "2026-01-01 00:00:00,000 INFO    local_ml_flow.runs: run FORGED succeeded"
    client.get(f"/health%0A{forged.replace(' ', '%20')}")
    client.get("/health%0D%0Anext")
    lines = server.log.read_text().splitlines()
    assert not any(line.startswith("2026-01-01 00:00:00,000") for line in lines)
    assert not any(line.startswith("next") for line in lines)
    assert any("GET /health%0A2026-01-01" in line for line in lines)


@pytest.fixture(scope="module")
def json_server(tmp_path_factory, dataset_path: Path) -> Iterator[ApiServer]:
    args = ["--embedded", "--dataset", str(dataset_path), "--no-run", "--log-json"]
    api = start_server(tmp_path_factory, dataset_path, args=args, env={"LMF_LOG_LEVEL": "debug"})
    yield api
    api.stop()


def test_json_log_lines(json_server: ApiServer):
    httpx.get(f"{json_server.url}/ui/predict", timeout=30).raise_for_status()
    access: list[dict] = []
    deadline = time.monotonic() + 10  # the line is written once the answer has gone out
    while time.monotonic() < deadline:
        lines = [
            json.loads(line) for line in json_server.log.read_text().splitlines() if line[:1] == "{"
        ]
        access = [line for line in lines if line["logger"] == "local_ml_flow.access"]
        if any(a["path"] == "/ui/predict" for a in access):
            break
        time.sleep(0.1)
    assert any(a["path"] == "/ui/predict" and a["status"] == 200 for a in access), access
    assert {"time", "level", "message"} <= set(access[0])


def test_debug_log_has_a_refused_runs_function_traceback(json_server: ApiServer):
    refused = httpx.post(f"{json_server.url}/pipeline/runs", json={"test_size": 0.001}, timeout=60)
    assert refused.status_code == 422, refused.text
    lines = [
        json.loads(line) for line in json_server.log.read_text().splitlines() if line[:1] == "{"
    ]
    failed = [line for line in lines if "failed: InvalidRequestError" in line["message"]]
    assert failed, lines
    assert failed[0]["level"] == "WARNING", failed
    assert "Traceback" not in failed[0]["message"]
    traces = [line for line in lines if "Traceback (in the function):" in line["message"]]
    assert traces, lines
    assert {line["level"] for line in traces} == {"DEBUG"}, traces


def test_dataset_page_names_the_current_file(client, dataset_bytes):
    import hashlib

    page = client.get("/ui/dataset").text
    digest = hashlib.sha256(dataset_bytes).hexdigest()
    assert digest in page
    assert re.search(r'<td id="row-count">545</td>', page)
    # each column summarised from the file: the reference dataset's area runs 1,650-16,200
    assert "min 1,650" in page
    assert "max 16,200" in page
    assert re.search(r"semi-furnished \d+", page)


def test_predictions_of_a_run_sampled_for_a_chart(client, runs):
    run_id = runs["linear"]["run_id"]
    whole = client.get(f"/pipeline/runs/{run_id}/predictions").json()
    n = len(whole["y_true"])
    assert whole["n_test"] == n
    sample = client.get(f"/pipeline/runs/{run_id}/predictions", params={"max_points": 10}).json()
    assert sample["n_test"] == n
    assert len(sample["y_true"]) == len(sample["y_pred"]) == 10
    pairs = list(zip(whole["y_true"], whole["y_pred"], strict=True))
    picked = list(zip(sample["y_true"], sample["y_pred"], strict=True))
    assert picked[0] == pairs[0]
    assert picked[-1] == pairs[-1]  # the first and the last row, evenly spaced between
    rows = [pairs.index(p) for p in picked]
    assert rows == sorted(rows)
    gaps = {b - a for a, b in itertools.pairwise(rows)}
    assert max(gaps) - min(gaps) <= 1
    more = client.get(f"/pipeline/runs/{run_id}/predictions", params={"max_points": n + 5})
    assert more.json()["y_true"] == whole["y_true"]
    for bad in ("1", "0", "-3", "ten", "2000000"):
        response = client.get(f"/pipeline/runs/{run_id}/predictions", params={"max_points": bad})
        assert_error(response, 422, "RequestValidationError")


def test_head_and_options_answer(client):
    head = client.head("/health")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0  # GET's length, body dropped
    assert client.head("/ui").status_code == 200
    assert client.head("/nowhere").status_code == 404
    options = client.options("/pipeline/runs")
    assert options.status_code == 204
    assert set(options.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert set(client.options("/health").headers["allow"].split(", ")) == {
        "GET",
        "HEAD",
        "OPTIONS",
    }
    preflight = client.options(
        "/pipeline/runs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers  # no CORS: still refused
    assert client.options("/nowhere").status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "content_type", "error_type"),
    [
        ("/pipeline/runs", b'{"model": "\xff"}', "application/json", "InvalidBodyError"),
        ("/pipeline/runs", b"{" * 40, "application/json", "RequestValidationError"),
        ("/pipeline/runs", b"[" * 30_000 + b"]" * 30_000, "application/json", None),
        ("/predict", b'{"houses": [', "application/json", "RequestValidationError"),
        ("/bucket/dataset", b"--x\r\nnot a part", "multipart/form-data; boundary=x", None),
    ],
)
def test_a_body_that_cannot_be_read_is_a_documented_422(
    client, path, body, content_type, error_type
):
    method = "PUT" if path == "/bucket/dataset" else "POST"
    response = client.request(method, path, content=body, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    found = response.json()["error"]["type"]
    assert found == error_type or (
        error_type is None and found in ("InvalidBodyError", "RequestValidationError")
    ), response.text
