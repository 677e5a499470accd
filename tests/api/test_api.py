"""Every endpoint and error code through a real uvicorn server on the embedded stack."""

from __future__ import annotations

import io

import httpx
import joblib
import pandas as pd
import pytest

from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from local_ml_flow.runindex import is_index_key
from tests.api.conftest import ApiServer, assert_error
from tests.conftest import emulator_client

HOUSE = EXAMPLE_HOUSE
DATA = "local-ml-flow-data"
MODELS = "local-ml-flow-models"


def s3_of(server: ApiServer):
    """A client on the server's embedded emulator, to look at (or break) what is stored."""
    return emulator_client("s3", server.emulator_url)


def stored(server: ApiServer) -> dict[str, bytes]:
    s3 = s3_of(server)
    out = {}
    for bucket in (DATA, MODELS):
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            if is_index_key(obj["Key"]):
                continue  # the run index: derived data, it follows the runs
            out[f"{bucket}/{obj['Key']}"] = s3.get_object(Bucket=bucket, Key=obj["Key"])[
                "Body"
            ].read()
    return out


@pytest.fixture(scope="module")
def first_run(client: httpx.Client) -> dict:
    """Before any run: no score, no model. Then one default run."""
    assert_error(client.get(f"/result/{DATA}"), 409, "NoModelError")
    assert_error(client.post("/predict", json={"houses": [HOUSE]}), 409, "NoModelError")
    response = client.post("/pipeline/runs")
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_root_lists_every_endpoint(client):
    body = client.get("/").json()
    assert body["mode"] == "embedded"
    assert body["docs"] == "/docs"
    paths = {(link["method"], link["path"]) for link in body["endpoints"]}
    assert {
        ("GET", "/bucket/get-all-buckets"),
        ("GET", "/bucket/get-all-models"),
        ("GET", "/bucket/dataset"),
        ("PUT", "/bucket/dataset"),
        ("GET", "/lambda/get-all-lambdas"),
        ("GET", "/result/{bucket_name}"),
        ("POST", "/pipeline/runs"),
        ("GET", "/pipeline/runs"),
        ("GET", "/pipeline/runs/{run_id}"),
        ("POST", "/predict"),
        ("GET", "/health"),
        ("GET", "/ready"),
    } <= paths


def test_docs_and_schema(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "House" in schema["components"]["schemas"]
    assert "ErrorResponse" in schema["components"]["schemas"]


def test_buckets_and_lambdas(client):
    assert client.get("/bucket/get-all-buckets").json() == {"buckets": [DATA, MODELS]}
    lambdas = client.get("/lambda/get-all-lambdas").json()["lambdas"]
    assert {"local-ml-flow-ingestion", "local-ml-flow-inference"} <= set(lambdas)


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["missing"] == []


def test_dataset_pages(client):
    body = client.get("/bucket/dataset").json()
    assert body["row_count"] == 545
    assert (body["dataset_name"], body["bucket"], body["key"]) == (
        "housing.csv",
        DATA,
        "housing.csv",
    )
    assert len(body["values"]) == 20
    page = client.get("/bucket/dataset", params={"limit": 2, "offset": 1}).json()
    assert [row["price"] for row in page["values"]] == ["12250000", "12250000"]
    assert page["values"][0]["area"] == "8960"
    error = assert_error(
        client.get("/bucket/dataset", params={"limit": -1}), 422, "RequestValidationError"
    )
    assert error["details"][0]["loc"] == ["query", "limit"]


def test_run_record_and_listing(client, first_run):
    assert first_run["status"] == "succeeded"
    assert first_run["parameters"] == {
        "model": "linear",
        "feature_set": "all",
        "test_size": 0.2,
        "random_state": 42,
    }
    metrics = first_run["metrics"]
    assert metrics["r2"] == pytest.approx(0.6529, abs=1e-4)
    assert (metrics["n_train"], metrics["n_test"]) == (436, 109)
    assert first_run["error"] is None
    assert first_run["created_at"] <= first_run["finished_at"]
    one = client.get(f"/pipeline/runs/{first_run['run_id']}").json()
    assert one == first_run
    listed = client.get("/pipeline/runs").json()["runs"]
    assert first_run["run_id"] in [r["run_id"] for r in listed]
    assert_error(client.get("/pipeline/runs/no-such-run"), 404, "NotFoundError")


def test_run_parameters(client, first_run):
    response = client.post("/pipeline/runs", json={"feature_set": "seed"})
    assert response.status_code == 201
    assert response.json()["metrics"]["r2"] == pytest.approx(0.3562, abs=5e-4)
    runs = client.get("/pipeline/runs").json()["runs"]
    assert runs[0]["run_id"] == response.json()["run_id"]  # newest first
    for body, field in [
        ({"model": "forest"}, "model"),
        ({"test_size": 1.5}, "test_size"),
        ({"random_state": -3}, "random_state"),
        ({"colour": "red"}, "colour"),
    ]:
        error = assert_error(
            client.post("/pipeline/runs", json=body), 422, "RequestValidationError"
        )
        assert error["details"][0]["loc"][-1] == field
    tiny = assert_error(
        client.post("/pipeline/runs", json={"test_size": 0.001}), 422, "InvalidRequestError"
    )
    assert "too few for test_size 0.001" in tiny["message"]
    assert client.get(f"/pipeline/runs/{tiny['details']['run_id']}").json()["status"] == "failed"
    assert_error(
        client.post(
            "/pipeline/runs", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "RequestValidationError",
    )


def test_result_reads_only_the_data_bucket(client, first_run):
    runs = client.get("/pipeline/runs").json()["runs"]
    current = next(r for r in runs if r["current"])
    assert client.get(f"/result/{DATA}").json() == {"content": current["metrics"]["score"]}
    assert_error(client.get(f"/result/{MODELS}"), 404, "NotFoundError")
    assert_error(client.get("/result/some-other-bucket"), 404, "NotFoundError")


def test_models_listing(client, first_run):
    models = client.get("/bucket/get-all-models").json()["models"]
    keys = {m["model"] for m in models}
    assert "model.joblib" in keys
    assert f"runs/{first_run['run_id']}/model.joblib" in keys
    assert all(m["bucket"] == MODELS for m in models)


def test_predict(client, server, first_run):
    client.post("/pipeline/runs", json={"feature_set": "all"}).raise_for_status()
    runs = client.get("/pipeline/runs").json()["runs"]
    latest = next(r for r in runs if r["status"] == "succeeded")
    response = client.post("/predict", json={"houses": [HOUSE, {**HOUSE, "area": 3000}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["run_id"] == latest["run_id"]
    # the prediction is the stored model's, computed independently here
    model = joblib.load(io.BytesIO(stored(server)[f"{MODELS}/model.joblib"]))
    row = [7420, 4, 2, 3, 2, 1, 0, 0, 0, 1, 1, 0, 0]  # numbers, yes/no as 1/0, furnished
    expected = model.predict(pd.DataFrame([row], columns=model.feature_names_in_))
    assert body["predictions"][0] == pytest.approx(float(expected[0]))
    assert body["predictions"][0] > body["predictions"][1]
    mixed_case = client.post("/predict", json={"houses": [{**HOUSE, "mainroad": " YES "}]})
    assert mixed_case.json()["predictions"][0] == pytest.approx(body["predictions"][0])


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"houses": []}, ["body", "houses"]),
        ({"houses": [HOUSE] * 1001}, ["body", "houses"]),
        ({"houses": [{**HOUSE, "mainroad": "maybe"}]}, ["body", "houses", 0, "mainroad"]),
        ({"houses": [{**HOUSE, "area": -5}]}, ["body", "houses", 0, "area"]),
        (
            {"houses": [{k: v for k, v in HOUSE.items() if k != "parking"}]},
            ["body", "houses", 0, "parking"],
        ),
        (
            {"houses": [{**HOUSE, "furnishingstatus": "posh"}]},
            ["body", "houses", 0, "furnishingstatus"],
        ),
        ({}, ["body", "houses"]),
    ],
)
def test_predict_rejects_bad_houses(client, first_run, body, loc):
    error = assert_error(client.post("/predict", json=body), 422, "RequestValidationError")
    assert error["details"][0]["loc"] == loc


def test_a_422_says_what_is_wrong_in_its_message(client, first_run):
    """The message names each field with what is wrong (not only where); a house sent
    without the ``houses`` list is told to wrap it, not given 13 'extra input' errors."""
    missing = {"houses": [{k: v for k, v in HOUSE.items() if k != "parking"}]}
    error = assert_error(client.post("/predict", json=missing), 422, "RequestValidationError")
    assert error["message"] == "invalid request: body.houses.0.parking: field required"
    bare = assert_error(client.post("/predict", json=HOUSE), 422, "RequestValidationError")
    assert bare["message"].startswith("invalid request: area, bedrooms, bathrooms")
    assert bare["message"].endswith(
        'are a row\'s fields: send them inside a list, {"houses": [{...}]}'
    )


def test_unknown_route_and_method(client):
    assert_error(client.get("/nope"), 404, "NotFoundError")
    assert_error(client.delete("/health"), 405, "MethodNotAllowedError")
