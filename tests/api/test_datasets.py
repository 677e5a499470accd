"""Bring your own data, through a real uvicorn server on the embedded stack: register CSVs,
version them, train classification and regression runs, read them, predict."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import httpx
import pytest

from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from local_ml_flow.events import RunParameters
from local_ml_flow.runlog import ERROR, METRICS, REQUEST, Failure, Metrics, Request, RunLog
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore, make_store, utc_now
from tests import datasets
from tests.api.conftest import ApiServer, assert_error
from tests.api.test_api import stored

IRIS = datasets.csv(datasets.iris())
HOMES = datasets.csv(datasets.mixed())


def put(client: httpx.Client, name: str, data: bytes, **form: str) -> httpx.Response:
    query = {"schema": form.pop("schema")} if "schema" in form else {}
    return client.put(
        f"/datasets/{name}",
        files={"file": ("data.csv", data, "text/csv")},
        data=form,
        params=query,
    )


@pytest.fixture(scope="module")
def iris(client: httpx.Client) -> dict:
    response = put(client, "iris", IRIS, target="species")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def iris_run(client: httpx.Client, iris: dict) -> dict:
    response = client.post("/datasets/iris/runs", json={})
    assert response.status_code == 201, response.text
    return response.json()


def test_registering_answers_the_inferred_schema(iris):
    assert {k: iris[k] for k in ("name", "rows", "task", "target", "created")} == {
        "name": "iris",
        "rows": 150,
        "task": "classification",
        "target": "species",
        "created": True,
    }
    assert len(iris["sha256"]) == 64
    columns = {c["name"]: c for c in iris["schema"]["columns"]}
    assert columns["petal_length"]["kind"] == "number"
    assert columns["petal_length"]["minimum"] == 1.0
    assert columns["species"]["feature"] is False
    assert iris["schema"]["labels"] == ["setosa", "versicolor", "virginica"]


def test_a_classification_run_and_its_record(client, iris_run):
    run = iris_run
    assert (run["status"], run["current"], run["dataset"]) == ("succeeded", True, "iris")
    assert run["parameters"]["model"] == "logistic"
    metrics = run["metrics"]
    assert set(metrics) >= {"accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"}
    assert metrics["accuracy"] > 0.85
    assert metrics["n_test"] == 30
    assert metrics["r2"] is None
    listed = client.get("/datasets/iris/runs").json()["runs"]
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    one = client.get(f"/datasets/iris/runs/{run['run_id']}").json()
    assert one["run_id"] == run["run_id"]
    # the housing runs are another log
    assert all(r["dataset"] == "housing" for r in client.get("/pipeline/runs").json()["runs"])


def test_a_dataset_run_reproduced_and_its_promotions(client, iris_run):
    run_id = iris_run["run_id"]
    response = client.post(f"/datasets/iris/runs/{run_id}/reproduce")
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["identical"], result["dataset"]) == (True, "iris"), result["differences"]
    assert result["reproduced_model_sha256"] == iris_run["model_sha256"]
    listed = client.get(f"/datasets/iris/runs/{run_id}/reproductions").json()["reproductions"]
    assert listed[0] == result
    log = client.get("/datasets/iris/promotions").json()["promotions"]
    mine = [p for p in log if p["run_id"] == run_id]
    assert [(p["dataset"], p["by"]) for p in mine] == [("iris", "api")]
    assert_error(client.get("/datasets/nope/promotions"), 404, "NotFoundError")
    assert_error(client.post("/datasets/nope/runs/x/reproduce"), 404, "NotFoundError")


def test_the_predictions_of_a_classification_run(client, iris_run):
    body = client.get(f"/datasets/iris/runs/{iris_run['run_id']}/predictions").json()
    assert body["task"] == "classification"
    assert set(body["y_true"]) <= {"setosa", "versicolor", "virginica"}
    assert sum(map(sum, body["confusion"])) == body["n_test"] == 30
    assert len(body["roc"]) == 3
    assert all(0.5 < c["auc"] <= 1 for c in body["roc"])
    sampled = client.get(
        f"/datasets/iris/runs/{iris_run['run_id']}/predictions", params={"max_points": 5}
    ).json()
    assert len(sampled["y_true"]) == 5
    assert sampled["n_test"] == 30


def test_predict_answers_labels_as_written_and_probabilities(client, iris_run):
    flower = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    big = {"sepal_length": 7.7, "sepal_width": 3.0, "petal_length": 6.1, "petal_width": 2.3}
    response = client.post("/datasets/iris/predict", json={"rows": [flower, big]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["run_id"] == iris_run["run_id"]
    assert body["predictions"] == ["setosa", "virginica"]
    assert set(body["probabilities"][0]) == {"setosa", "versicolor", "virginica"}
    assert math.isclose(sum(body["probabilities"][0].values()), 1.0, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (
            {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4},
            "'petal_width' is missing",
        ),
        (
            {"sepal_length": "5", "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
            "'sepal_length' must be a number",
        ),
        (
            {
                "sepal_length": 5,
                "sepal_width": 3.5,
                "petal_length": 1.4,
                "petal_width": 0.2,
                "color": "red",
            },
            "unknown field 'color'",
        ),
        (
            {
                "sepal_length": 5,
                "sepal_width": 3.5,
                "petal_length": 1.4,
                "petal_width": 0.2,
                "species": "setosa",
            },
            "'species' is the target",
        ),
    ],
)
def test_bad_rows_are_a_422_naming_the_field(client, iris_run, row, needle):
    error = assert_error(
        client.post("/datasets/iris/predict", json={"rows": [row]}), 422, "DatasetValidationError"
    )
    assert any(needle in d for d in error["details"]), error


def test_a_regression_dataset_with_missing_values_categories_and_text(client):
    response = put(client, "homes", HOMES, target="price")
    assert response.status_code == 200, response.text
    note = next(c for c in response.json()["schema"]["columns"] if c["name"] == "note")
    assert note["feature"] is False
    assert "free text" in note["reason"]
    run = client.post("/datasets/homes/runs", json={"model": "ridge", "random_state": 7})
    assert run.status_code == 201, run.text
    assert run.json()["metrics"]["r2"] > 0.8
    assert run.json()["parameters"] == {
        "model": "ridge",
        "test_size": 0.2,
        "random_state": 7,
        "features": None,
    }
    home = {"size": 120.5, "rooms": None, "garden": "yes", "city": "Paris"}
    predicted = client.post("/datasets/homes/predict", json={"rows": [home]})
    assert predicted.status_code == 200, predicted.text
    assert isinstance(predicted.json()["predictions"][0], float)
    assert "probabilities" not in predicted.json() or predicted.json()["probabilities"] is None
    unseen = client.post("/datasets/homes/predict", json={"rows": [{**home, "city": "Berlin"}]})
    error = assert_error(unseen, 422, "DatasetValidationError")
    assert "must be one of Lyon, Nantes, Paris" in error["details"][0]


def test_a_run_on_chosen_features(client, iris):
    response = client.post(
        "/datasets/iris/runs", json={"features": ["petal_length", "petal_width"]}
    )
    assert response.status_code == 201, response.text
    assert response.json()["features"] == ["petal_length", "petal_width"]
    detail = client.get("/datasets/iris").json()
    assert detail["current_run"]["features"] == ["petal_length", "petal_width"]
    flower = {"petal_length": 1.4, "petal_width": 0.2}
    assert client.post("/datasets/iris/predict", json={"rows": [flower]}).status_code == 200


def test_a_run_in_the_background(client, iris):
    response = client.post("/datasets/iris/runs", params={"wait": "false"}, json={})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert response.headers["location"] == f"/datasets/iris/runs/{run_id}"
    for _ in range(600):
        record = client.get(f"/datasets/iris/runs/{run_id}").json()
        if record["status"] in ("succeeded", "failed"):
            break
        import time

        time.sleep(0.1)
    assert record["status"] == "succeeded", record


def test_listing_and_reading_datasets(client, iris_run):
    listed = {d["name"]: d for d in client.get("/datasets").json()["datasets"]}
    assert next(iter(listed)) == "housing"
    assert listed["housing"]["builtin"] is True
    assert listed["iris"]["task"] == "classification"
    assert listed["iris"]["current_run"]["metric"]["name"] == "accuracy"
    detail = client.get("/datasets/iris").json()
    assert detail["model_kinds"] == ["logistic", "gradient_boosting"]
    assert detail["default_model"] == "logistic"
    assert detail["versions"][0]["current"] is True
    housing = client.get("/datasets/housing").json()
    assert housing["task"] == "regression"
    assert housing["target"] == "price"
    assert {c["name"] for c in housing["schema"]["columns"]} >= {"area", "furnishingstatus"}


def test_new_versions_are_validated_and_a_refusal_changes_nothing(client, server: ApiServer):
    frame = datasets.mixed(seed=3)
    assert put(client, "versions", datasets.csv(frame), target="price").status_code == 200
    before = stored(server)
    bad = frame.astype(object)
    bad.loc[2, "city"] = "Oslo"
    response = put(client, "versions", datasets.csv(bad))
    error = assert_error(response, 422, "DatasetValidationError")
    assert any("unseen levels at line 4 (found 'Oslo'" in d for d in error["details"]), error
    assert stored(server) == before
    replaced = put(client, "versions", datasets.csv(bad), schema="replace")
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["created"] is False
    versions = client.get("/datasets/versions").json()["versions"]
    assert len(versions) == 2
    assert versions[0]["current"]
    assert not versions[1]["current"]
    assert versions[0]["schema_sha256"] != versions[1]["schema_sha256"]


@pytest.mark.parametrize(
    ("name", "status"),
    [("Iris", 422), ("a" * 65, 422), ("a.b", 422), ("housing", 422)],
)
def test_bad_names_are_refused(client, name, status):
    response = put(client, name, IRIS, target="species")
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text


def test_a_name_or_run_id_with_a_trailing_newline_is_refused(client):
    response = client.get("/datasets/iris%0A")
    assert response.status_code == 422, response.text
    response = client.get("/pipeline/runs/abc%0A")
    assert response.status_code == 422, response.text
    response = client.get("/datasets/housing/runs/abc%0A")
    assert response.status_code == 422, response.text


def test_degenerate_uploads_are_refused_before_any_run(client):
    constant = datasets.mixed().assign(price=7.5)
    error = assert_error(
        put(client, "flat", datasets.csv(constant), target="price"), 422, "DatasetValidationError"
    )
    assert any("single value" in d for d in error["details"]), error
    assert_error(client.get("/datasets/flat"), 404, "NotFoundError")
    tiny = datasets.mixed().head(4)
    error = assert_error(
        put(client, "tiny", datasets.csv(tiny), target="price"), 422, "DatasetValidationError"
    )
    assert any("at least 10" in d for d in error["details"]), error


def test_unknown_datasets_and_wrong_parameters(client, iris):
    assert_error(client.get("/datasets/ghost"), 404, "NotFoundError")
    assert_error(client.get("/datasets/ghost/runs"), 404, "NotFoundError")
    assert_error(client.post("/datasets/ghost/runs", json={}), 404, "NotFoundError")
    flower = {"petal_length": 1.4}
    assert_error(
        client.post("/datasets/ghost/predict", json={"rows": [flower]}), 404, "NotFoundError"
    )
    error = assert_error(
        client.post("/datasets/iris/runs", json={"model": "linear"}), 422, "InvalidRequestError"
    )
    assert "not a classification model" in error["message"]
    error = assert_error(
        client.post("/datasets/iris/runs", json={"features": ["species"]}),
        422,
        "InvalidRequestError",
    )
    assert "cannot be a feature" in error["message"]
    assert_error(
        client.put("/datasets/iris", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "UnsupportedMediaTypeError",
    )
    new = put(client, "nolabel", IRIS)
    assert "target is required" in assert_error(new, 422, "InvalidRequestError")["message"]


def test_no_model_yet_is_a_409(client):
    assert put(client, "untrained", HOMES, target="price").status_code == 200
    error = assert_error(
        client.post("/datasets/untrained/predict", json={"rows": [{"size": 1}]}),
        409,
        "NoModelError",
    )
    assert "POST /datasets/untrained/runs" in error["message"]


def test_housing_is_a_dataset_with_its_original_endpoints(client):
    run = client.post("/datasets/housing/runs", json={"feature_set": "seed"})
    assert run.status_code == 201, run.text
    assert run.json()["dataset"] == "housing"
    assert run.json()["metrics"]["score"] == "35.62%"
    assert client.get("/result/local-ml-flow-data").json() == {"content": "35.62%"}
    predicted = client.post("/datasets/housing/predict", json={"rows": [EXAMPLE_HOUSE]})
    assert predicted.status_code == 200, predicted.text
    original = client.post("/predict", json={"houses": [EXAMPLE_HOUSE]}).json()
    assert predicted.json()["predictions"] == original["predictions"]
    assert predicted.json()["run_id"] == run.json()["run_id"]
    error = assert_error(
        client.post("/datasets/housing/runs", json={"model": "logistic"}),
        422,
        "InvalidRequestError",
    )
    assert "not a regression model" in error["message"]


def test_a_cross_site_upload_is_refused(client):
    response = client.put(
        "/datasets/evil",
        files={"file": ("data.csv", IRIS, "text/csv")},
        data={"target": "species"},
        headers={"Origin": "https://evil.example"},
    )
    assert_error(response, 403, "CrossSiteRequestError")


def test_a_huge_integer_in_a_row_is_a_422_not_a_500(client, iris_run):
    row = {"sepal_length": 10**400, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    response = client.post(
        "/datasets/iris/predict",
        content=b'{"rows": [{"sepal_length": 1' + b"0" * 400 + b', "sepal_width": 3.5,'
        b' "petal_length": 1.4, "petal_width": 0.2}]}',
        headers={"content-type": "application/json"},
    )
    error = assert_error(response, 422, "DatasetValidationError")
    assert "'sepal_length' must be a number" in error["details"][0]
    assert row  # the same row as a Python value, for the reader


def test_listing_survives_a_corrupt_dataset_document(client, server: ApiServer):
    from tests.api.test_api import s3_of

    assert put(client, "broken", HOMES, target="price").status_code == 200
    s3_of(server).put_object(
        Bucket="local-ml-flow-data", Key="datasets/broken/dataset.json", Body=b"garbage{"
    )
    listed = {d["name"]: d for d in client.get("/datasets").json()["datasets"]}
    assert "not a valid DatasetDocument" in listed["broken"]["error"]
    assert listed["iris"]["error"] is None
    assert_error(client.get("/datasets/broken"), 502, "CorruptStateError")
    repaired = put(client, "broken", HOMES, target="price", schema="replace")
    assert repaired.status_code == 200, repaired.text


def test_tampered_predictions_are_corrupt_state(client, server: ApiServer, iris_run):
    import json

    from tests.api.test_api import s3_of

    s3 = s3_of(server)
    key = f"datasets/iris/runs/{iris_run['run_id']}/predictions.json"
    stored_predictions = json.loads(
        s3.get_object(Bucket="local-ml-flow-data", Key=key)["Body"].read()
    )
    try:
        tampered = {**stored_predictions, "y_true": [-1.0] * len(stored_predictions["y_true"])}
        s3.put_object(Bucket="local-ml-flow-data", Key=key, Body=json.dumps(tampered).encode())
        response = client.get(f"/datasets/iris/runs/{iris_run['run_id']}/predictions")
        assert_error(response, 502, "CorruptStateError")
    finally:
        s3.put_object(
            Bucket="local-ml-flow-data", Key=key, Body=json.dumps(stored_predictions).encode()
        )


# -- the run index: pages with a cursor, filters, a status never wrong whatever happens to the
# index. Runs are planted by writing their documents (no model trained): through the run log
# (with the index's marks, as a real run does) or straight to the store (as a tool that
# bypasses the run log would).

PAGED = "paged"
PLANTED = ("succeeded", "failed", "running")  # planted in turn: p00 succeeded, p01 failed...


@pytest.fixture(scope="module")
def emulator_store(server: ApiServer) -> ArtifactStore:
    return make_store(Settings(_env_file=None), endpoint_url=server.emulator_url)


def plant(emulator_store: ArtifactStore, log: RunLog, run_id: str, status: str) -> None:
    """A run's documents written straight to the store: no mark, the run log bypassed."""

    def put(name: str, document: object) -> None:
        emulator_store.put_json(emulator_store.data_bucket, log.key(run_id, name), document)

    put(REQUEST, Request(run_id=run_id, parameters=RunParameters(), created_at=utc_now()))
    if status == "succeeded":
        put(METRICS, scored(run_id))
    elif status == "failed":
        failure = Failure(
            run_id=run_id, stage="ingestion", error_type="X", message="planted", failed_at=utc_now()
        )
        put(ERROR, failure)


def scored(run_id: str, score: str = "50.00%") -> Metrics:
    return Metrics(run_id=run_id, n_test=10, score=score, evaluated_at=utc_now(), r2=0.5)


@pytest.fixture(scope="module")
def planted(client: httpx.Client, emulator_store: ArtifactStore) -> list[str]:
    """Nine runs of a dataset of their own, planted before its runs were ever listed (its
    index is built from them); their ids, newest first."""
    response = client.put(
        f"/datasets/{PAGED}",
        files={"file": ("data.csv", IRIS, "text/csv")},
        data={"target": "species"},
    )
    assert response.status_code == 200, response.text
    log = RunLog(emulator_store).of_dataset(PAGED)
    ids = [f"p{i:02d}" for i in range(9)]
    for i, run_id in enumerate(ids):
        plant(emulator_store, log, run_id, PLANTED[i % 3])
    return ids[::-1]


def every_page(client: httpx.Client, path: str, **params: str | int) -> Iterator[dict]:
    """Every page of a listing, following ``next_cursor``."""
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        yield page
        cursor = page["next_cursor"]
        if cursor is None:
            return


def test_pages_list_every_run_once_newest_first_even_as_one_is_added(
    client, emulator_store, planted
):
    path, seen, added = "/pipeline/runs", [], "p99-added"
    for i, page in enumerate(every_page(client, path, dataset=PAGED, limit=4)):
        assert len(page["runs"]) <= 4
        assert {r["dataset"] for r in page["runs"]} <= {PAGED}
        seen += [r["run_id"] for r in page["runs"]]
        if i == 0:  # a new run between two pages: it is on the next first page only
            log = RunLog(emulator_store).of_dataset(PAGED)
            log.queue(added, {})
    assert seen == planted
    first = client.get(path, params={"dataset": PAGED, "limit": 4}).json()["runs"]
    assert [r["run_id"] for r in first] == [added, *planted[:3]]
    assert first[0]["status"] == "queued"
    # the dataset's own listing pages alike
    same = [
        r["run_id"]
        for p in every_page(client, f"/datasets/{PAGED}/runs", limit=4)
        for r in p["runs"]
    ]
    assert same == [added, *planted]


def test_filters_and_what_is_refused(client, planted):
    by_status = {
        s: [r for i, r in enumerate(planted[::-1]) if PLANTED[i % 3] == s] for s in PLANTED
    }
    for status, expected in by_status.items():
        got = [
            r["run_id"]
            for p in every_page(client, "/pipeline/runs", dataset=PAGED, status=status, limit=2)
            for r in p["runs"]
        ]
        assert got == expected[::-1], status
    assert_error(
        client.get("/pipeline/runs", params={"status": "done"}), 422, "RequestValidationError"
    )
    wrong = assert_error(
        client.get("/pipeline/runs", params={"cursor": "not-a-cursor"}), 422, "InvalidRequestError"
    )
    assert "cursor" in wrong["message"]
    assert_error(
        client.get(f"/datasets/{PAGED}/runs", params={"cursor": "eyJ4IjoxfQ"}),
        422,
        "InvalidRequestError",
    )
    assert_error(
        client.get("/pipeline/runs", params={"dataset": "No Such"}), 422, "RequestValidationError"
    )
    assert_error(client.get("/pipeline/runs", params={"dataset": "nosuch"}), 404, "NotFoundError")


def status_of(client: httpx.Client, run_id: str) -> str:
    runs = [
        r for p in every_page(client, "/pipeline/runs", dataset=PAGED, limit=50) for r in p["runs"]
    ]
    return str(next(r for r in runs if r["run_id"] == run_id)["status"])


def test_a_stale_entry_never_shows_a_wrong_status(client, emulator_store, planted):
    log = RunLog(emulator_store).of_dataset(PAGED)
    running = "p02"
    assert status_of(client, running) == "running"
    # it finishes behind the index's back (no mark): a running run is read from its documents
    emulator_store.put_json(emulator_store.data_bucket, log.key(running, METRICS), scored(running))
    assert status_of(client, running) == "succeeded"
    # a settled run fails later (a promotion that fails): the run log marks it first
    settled = "p00"
    assert status_of(client, settled) == "succeeded"
    log.record_failure(settled, "promotion", "ConcurrentUpdateError", "lost")
    assert status_of(client, settled) == "failed"


def test_the_index_is_rebuilt_when_tampered_corrupt_or_deleted(client, emulator_store, planted):
    log = RunLog(emulator_store).of_dataset(PAGED)
    key, bucket = log.index.snapshot_key, emulator_store.data_bucket
    status_of(client, "p04")  # listed: read, settled, and the snapshot written soon after
    deadline = time.monotonic() + 30
    while True:
        try:
            document = json.loads(emulator_store.get_bytes(bucket, key))
            rows = {row[0]: row for row in document["runs"]}
            if rows["p04"][4] is not None:
                break
        except Exception:
            pass
        assert time.monotonic() < deadline, "no snapshot with p04's record"
        time.sleep(0.2)
    # a settled failed run made to say succeeded (a valid snapshot otherwise)
    rows["p04"][4]["status"] = "succeeded"
    emulator_store.put_bytes(bucket, key, json.dumps(document).encode(), "application/json")
    assert status_of(client, "p04") == "failed"
    emulator_store.put_bytes(bucket, key, b"{not json", "application/json")
    assert status_of(client, "p04") == "failed"
    emulator_store.delete(bucket, key)
    listed = [r["run_id"] for r in client.get(f"/datasets/{PAGED}/runs").json()["runs"]]
    assert set(planted) <= set(listed)  # rebuilt: every run found again
    assert status_of(client, "p04") == "failed"


@pytest.mark.xfail(
    strict=False,
    reason="known bug (issue 24 stays open): in the whole suite, a rebuilt index can list the"
    " oldest planted run (p00, written without marks) after its neighbour p01",
)
def test_a_rebuilt_index_keeps_the_creation_order(client, emulator_store, planted):
    log = RunLog(emulator_store).of_dataset(PAGED)
    emulator_store.delete(emulator_store.data_bucket, log.index.snapshot_key)
    listed = [r["run_id"] for r in client.get(f"/datasets/{PAGED}/runs").json()["runs"]]
    assert [r for r in listed if r in planted] == planted


def test_a_reconciliation_finds_writes_that_bypass_the_run_log(emulator_store, planted):
    """In-process, on the same emulator: a settled run's metrics rewritten by another tool."""
    log = RunLog(emulator_store).of_dataset(PAGED)
    settled = "p03"
    before = {r["run_id"]: r for r in log.page(50)[0]}
    assert before[settled]["metrics"]["score"] == "50.00%"
    emulator_store.put_json(
        emulator_store.data_bucket, log.key(settled, METRICS), scored(settled, "75.00%")
    )
    log.index.reconcile()
    after = {r["run_id"]: r for r in log.page(50)[0]}
    assert after[settled]["metrics"]["score"] == "75.00%"


def test_the_runs_page_shows_a_page_and_links_the_next(client, emulator_store):
    log = RunLog(emulator_store)
    for run_id in ("ui-a", "ui-b", "ui-c"):
        log.queue(run_id, {})
    first = client.get("/ui", params={"limit": 2}).text
    assert "ui-c" in first
    assert "ui-b" in first
    assert "ui-a" not in first
    assert 'id="runs-more"' in first
    link = first.split('id="runs-more" rel="next" href="', 1)[1].split('"', 1)[0]
    second = client.get(link.replace("&amp;", "&")).text
    assert "ui-a" in second
    assert "ui-c" not in second
    assert "newest runs" in second
