"""Uploads, failing runs and concurrent runs: nothing stored is lost or half-written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from local_ml_flow.storage import sha256
from tests.api.conftest import ApiServer, assert_error, start_server
from tests.api.test_api import DATA, HOUSE, MODELS, s3_of, stored


@pytest.fixture(scope="module")
def trained(client: httpx.Client) -> dict:
    response = client.post("/pipeline/runs")
    assert response.status_code == 201, response.text
    return dict(response.json())


def upload(client: httpx.Client, data: bytes, name: str = "housing.csv") -> httpx.Response:
    return client.put("/bucket/dataset", files={"file": (name, data, "text/csv")})


def test_bad_csv_upload_leaves_dataset_model_and_score(client, server, trained, dataset_bytes):
    before = stored(server)
    bad = dataset_bytes.replace(b"furnished\n", b"gold-plated\n", 1).replace(
        b",4,2,3,yes", b",4,2,three,yes", 1
    )
    error = assert_error(upload(client, bad), 422, "DatasetValidationError")
    assert any("'furnishingstatus'" in p and "line 2" in p for p in error["details"])
    assert any("'stories': non-numeric values at line 2" in p for p in error["details"])
    assert_error(upload(client, b""), 422, "DatasetValidationError")
    assert_error(upload(client, b"\xff\xfe\x00garbage"), 422, "DatasetValidationError")
    assert stored(server) == before


def test_upload_without_file_field(client):
    response = client.put("/bucket/dataset", files={"other": ("x.csv", b"a", "text/csv")})
    error = assert_error(response, 422, "RequestValidationError")
    assert error["details"][0]["loc"] == ["body", "file"]


def test_good_upload_versions_the_previous_dataset(client, server, trained, dataset_bytes):
    new = dataset_bytes.replace(b"13300000,7420", b"13300001,7420")
    response = upload(client, new)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 545
    assert body["sha256"] == sha256(new)
    after = stored(server)
    assert after[f"{DATA}/housing.csv"] == new
    assert after[f"{DATA}/{body['previous_version_key']}"] == dataset_bytes
    assert client.get("/bucket/dataset", params={"limit": 1}).json()["values"][0]["price"] == (
        "13300001"
    )
    run = client.post("/pipeline/runs").json()
    assert run["dataset_sha256"] == sha256(new)


def test_failing_function_is_502_recorded_and_harmless(client, server, trained, dataset_bytes):
    """A dataset broken behind the API's back makes ingestion fail inside the function."""
    s3 = s3_of(server)
    good = s3.get_object(Bucket=DATA, Key="housing.csv")["Body"].read()
    s3.put_object(Bucket=DATA, Key="housing.csv", Body=b"price,area\n1,2\n")
    before = stored(server)
    try:
        response = client.post("/pipeline/runs")
        error = assert_error(response, 502, "DatasetValidationError")
        assert error["details"]["function"] == "local-ml-flow-ingestion"
        run_id = error["details"]["run_id"]
        record = client.get(f"/pipeline/runs/{run_id}").json()
        assert record["status"] == "failed"
        assert record["error"]["type"] == "DatasetValidationError"
        assert "missing columns" in record["error"]["message"]
        after = stored(server)
        new_keys = set(after) - set(before)
        assert all(k.startswith(f"{DATA}/runs/{run_id}/") for k in new_keys)
        assert all(after[k] == before[k] for k in before)
        assert client.get(f"/result/{DATA}").status_code == 200
    finally:
        s3.put_object(Bucket=DATA, Key="housing.csv", Body=good)


def test_concurrent_runs_are_isolated_and_latest_is_consistent(client, server, trained):
    def start(i: int) -> httpx.Response:
        body = {"model": "linear" if i % 2 else "gradient_boosting", "random_state": i}
        return client.post("/pipeline/runs", json=body)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(start, range(10)))
    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    runs = [r.json() for r in responses]
    ids = {r["run_id"] for r in runs}
    assert len(ids) == 10
    for run in runs:
        assert run["status"] == "succeeded"
        assert run["parameters"]["random_state"] in range(10)
    after = stored(server)
    pointer = json.loads(after[f"{DATA}/runs/latest.json"])
    assert pointer["run_id"] in ids
    # root keys all belong to the latest run
    latest = pointer["run_id"]
    assert sha256(after[f"{MODELS}/runs/{latest}/model.skops"]) == pointer["model_sha256"]
    assert after[f"{MODELS}/model.joblib"] == after[f"{MODELS}/runs/{latest}/model.joblib"]
    assert after[f"{DATA}/x_test.joblib"] == after[f"{DATA}/runs/{latest}/x_test.joblib"]
    by_id = {r["run_id"]: r for r in runs}
    assert after[f"{DATA}/score.txt"].decode() == by_id[latest]["metrics"]["score"]
    # told out of order by the finishing runs, this process still serves the last one at once
    predicted = client.post("/predict", json={"houses": [HOUSE]})
    assert predicted.json()["run_id"] == latest
    assert client.get(f"/result/{DATA}").json()["content"] == by_id[latest]["metrics"]["score"]


@pytest.fixture(scope="module")
def small_upload_server(
    tmp_path_factory: pytest.TempPathFactory, dataset_path: Path
) -> Iterator[ApiServer]:
    # without --no-run: an embedded server with no model trains once before serving
    api = start_server(
        tmp_path_factory,
        dataset_path,
        args=["--embedded", "--dataset", str(dataset_path)],
        env={"LMF_MAX_UPLOAD_BYTES": "1000"},
    )
    yield api
    api.stop()


def test_default_serve_trains_once_when_there_is_no_model(small_upload_server):
    with httpx.Client(base_url=small_upload_server.url, timeout=30) as http:
        assert http.get(f"/result/{DATA}").json() == {"content": "65.29%"}
        assert len(http.get("/pipeline/runs").json()["runs"]) == 1
    assert "R² 0.6529 (65.29%)" in small_upload_server.log.read_text()


def test_too_large_upload_is_413(small_upload_server, dataset_bytes):
    with httpx.Client(base_url=small_upload_server.url, timeout=30) as http:
        response = upload(http, dataset_bytes * 3)
        assert_error(response, 413, "PayloadTooLargeError")
        slightly = upload(http, dataset_bytes[:1500])  # under the framing slack, over the limit
        assert_error(slightly, 413, "UploadTooLargeError")
        assert http.get("/bucket/dataset").json()["row_count"] == 545
