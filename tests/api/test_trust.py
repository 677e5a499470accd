"""The run store can be trusted, through the real API on a real emulator over HTTP.

Foreign code never runs (planted pickles, rewritten hashes); a cut at any write of a
promotion leaves one run wholly current; concurrent promoters and uploads lose nothing; junk
in any stored document is an error, never a 500; non-finite metrics and the R² gate keep a
bad model from being served; AWS trouble is a 503.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import skops.io

from local_ml_flow.embedded import EmbeddedEmulator
from local_ml_flow.runlog import RunLog
from local_ml_flow.settings import Settings
from local_ml_flow.storage import make_store, sha256
from tests.api.conftest import ApiServer, assert_error, start_server
from tests.api.test_api import HOUSE
from tests.conftest import Exploit, emulator_client, free_port
from tests.faults import FaultProxy

DATA, MODELS = "lmf-trust-data", "lmf-trust-models"
ENV = {"LMF_INVOKER": "local", "LMF_DATA_BUCKET": DATA, "LMF_MODELS_BUCKET": MODELS}
ROOTS = {(MODELS, "model.joblib"), (DATA, "x_test.joblib"), (DATA, "y_test.joblib")}
PROMOTION_WRITE = re.compile(
    r"^/[^/?]+/(model\.joblib|x_test\.joblib|y_test\.joblib|score\.txt|runs/latest\.json)(\?|$)"
)


@pytest.fixture(scope="module")
def emulator(dataset_bytes: bytes) -> Iterator[EmbeddedEmulator]:
    emulator = EmbeddedEmulator("127.0.0.1", free_port())
    emulator.start()
    emulator.provision(
        Settings(_env_file=None, data_bucket=DATA, models_bucket=MODELS), dataset_bytes
    )
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def proxy(emulator: EmbeddedEmulator) -> Iterator[FaultProxy]:
    faults = FaultProxy(emulator.endpoint_url)
    yield faults
    faults.stop()


def serve(factory: pytest.TempPathFactory, path: Path, endpoint: str, **env: str) -> ApiServer:
    """An API server in LocalStack mode on ``endpoint``, running the functions in-process."""
    return start_server(factory, path, args=[], env={**ENV, "AWS_ENDPOINT_URL": endpoint, **env})


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, dataset_path: Path, proxy: FaultProxy
) -> Iterator[ApiServer]:
    api = serve(tmp_path_factory, dataset_path, proxy.url, LMF_MODEL_REFRESH_S="0")
    yield api
    api.stop()


@pytest.fixture
def s3(emulator: EmbeddedEmulator):
    return emulator_client("s3", emulator.endpoint_url)


def run(client: httpx.Client, **parameters: object) -> dict:
    response = client.post("/pipeline/runs", json=parameters)
    assert response.status_code == 201, response.text
    return dict(response.json())


def current(client: httpx.Client) -> str | None:
    """The run the listing marks current."""
    runs = client.get("/pipeline/runs", params={"limit": 500}).json()["runs"]
    marked = [r["run_id"] for r in runs if r["current"]]
    assert len(marked) <= 1, marked
    return marked[0] if marked else None


def pointer(s3) -> dict:
    return json.loads(s3.get_object(Bucket=DATA, Key="runs/latest.json")["Body"].read())


def root_tags(s3) -> dict[str, str | None]:
    """The run each root copy names (score.txt: None when absent)."""
    tags = {}
    for bucket, key in (*ROOTS, (DATA, "score.txt")):
        try:
            tags[key] = s3.head_object(Bucket=bucket, Key=key)["Metadata"].get("run-id")
        except s3.exceptions.ClientError:
            tags[key] = None
    return tags


def assert_one_current_run(client: httpx.Client, s3) -> str:
    """/predict, /result, the listing, the pointer and every root copy name one run."""
    run_id = pointer(s3)["run_id"]
    assert current(client) == run_id
    record = client.get(f"/pipeline/runs/{run_id}").json()
    deadline = time.monotonic() + 10  # a server that did not promote re-reads in the background
    while True:  # (an answer from what was current before, even an error, until it has)
        predicted = client.post("/predict", json={"houses": [HOUSE]})
        result = client.get(f"/result/{DATA}")
        served = (
            predicted.json().get("run_id") if predicted.status_code == 200 else predicted.text,
            result.json().get("content") if result.status_code == 200 else result.text,
        )
        if served == (run_id, record["metrics"]["score"]) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert served == (run_id, record["metrics"]["score"])
    assert set(root_tags(s3).values()) == {run_id}, (run_id, root_tags(s3))
    return run_id


# -- one commit point ---------------------------------------------------------------------
@pytest.mark.parametrize("cut", range(5))
def test_a_cut_at_any_promotion_write_leaves_one_run_current(client, proxy, s3, cut):
    if pointer_missing(s3):
        run(client)
    before = assert_one_current_run(client, s3)
    proxy.cut_write(cut, lambda method, path: bool(PROMOTION_WRITE.match(path)))
    response = client.post("/pipeline/runs", json={"feature_set": "seed", "promotion": "always"})
    proxy.heal()
    assert proxy.cut, f"no promotion write #{cut} happened: {proxy.writes}"
    error = assert_error(response, 502, "StorageError")
    failed = error["details"]["run_id"]
    assert error["details"]["stage"] == "promotion"
    record = client.get(f"/pipeline/runs/{failed}").json()
    assert (record["status"], record["current"]) == ("failed", False)
    assert record["error"]["stage"] == "promotion"
    assert assert_one_current_run(client, s3) == before
    after = run(client)  # the next promotion works and becomes current
    assert assert_one_current_run(client, s3) == after["run_id"]


def pointer_missing(s3) -> bool:
    try:
        pointer(s3)
    except s3.exceptions.NoSuchKey:
        return True
    return False


def test_concurrent_promoters_in_two_processes_keep_one_current_run(
    tmp_path_factory, dataset_path, emulator, client, s3
):
    other = serve(tmp_path_factory, dataset_path, emulator.endpoint_url, LMF_MODEL_REFRESH_S="0")
    try:
        with httpx.Client(base_url=other.url, timeout=120) as second:
            clients = [client, second] * 4
            with ThreadPoolExecutor(len(clients)) as pool:
                responses = list(pool.map(lambda c: c.post("/pipeline/runs", json={}), clients))
            assert [r.status_code for r in responses] == [201] * len(clients)
            winner = assert_one_current_run(client, s3)
            assert winner in {r.json()["run_id"] for r in responses}
            deadline = time.monotonic() + 10  # the other process re-reads in the background
            while second.post("/predict", json={"houses": [HOUSE]}).json()["run_id"] != winner:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        other.stop()


# -- never unpickle -----------------------------------------------------------------------
def test_planted_code_never_runs_and_the_previous_run_serves_again(
    tmp_path_factory, dataset_path, emulator, client, s3, tmp_path
):
    good = run(client)["run_id"]
    victim = run(client)["run_id"]
    marker = tmp_path / "foreign-code-ran"
    pickled = pickle.dumps(Exploit(str(marker)))
    evil_array = io.BytesIO()
    np.save(evil_array, np.array([Exploit(str(marker))], dtype=object), allow_pickle=True)
    evil_split = io.BytesIO()
    with zipfile.ZipFile(evil_split, "w") as split:
        split.writestr("x.npy", evil_array.getvalue())
        split.writestr("y.npy", evil_array.getvalue())
    planted = {
        (MODELS, f"runs/{victim}/model.skops"): skops.io.dumps(Exploit(str(marker))),
        (MODELS, f"runs/{victim}/model.joblib"): pickled,
        (DATA, f"runs/{victim}/test_split.npz"): evil_split.getvalue(),
        (DATA, f"runs/{victim}/x_test.npy"): evil_array.getvalue(),  # the layout before
        (DATA, f"runs/{victim}/y_test.npy"): evil_array.getvalue(),
        (DATA, f"runs/{victim}/x_test.joblib"): pickled,
        (DATA, f"runs/{victim}/y_test.joblib"): pickled,
    }
    for (bucket, key), data in planted.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    # ...and every recorded hash rewritten to match, the pointer aimed at the planted run
    manifest_key = f"runs/{victim}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=DATA, Key=manifest_key)["Body"].read())
    hashes = {
        "model_sha256": sha256(planted[(MODELS, f"runs/{victim}/model.skops")]),
        "x_test_sha256": sha256(evil_array.getvalue()),
        "y_test_sha256": sha256(evil_array.getvalue()),
        "test_split_sha256": sha256(evil_split.getvalue()),
    }
    s3.put_object(Bucket=DATA, Key=manifest_key, Body=json.dumps({**manifest, **hashes}))
    aimed = {**pointer(s3), "run_id": victim, **hashes}
    s3.put_object(Bucket=DATA, Key="runs/latest.json", Body=json.dumps(aimed))

    fresh = serve(tmp_path_factory, dataset_path, emulator.endpoint_url)
    try:
        with httpx.Client(base_url=fresh.url, timeout=60) as http:
            assert_error(http.post("/predict", json={"houses": [HOUSE]}), 502, "IntegrityError")
            restored = {**aimed, "run_id": good, **_hashes_of(s3, good)}
            s3.put_object(Bucket=DATA, Key="runs/latest.json", Body=json.dumps(restored))
            served = http.post("/predict", json={"houses": [HOUSE]})
            assert served.status_code == 200, served.text
            assert served.json()["run_id"] == good
    finally:
        fresh.stop()
        # the fresh server's start-up repair copied the planted run's files to the root keys:
        # with the pointer restored, make them follow it again (as the next start would)
        settings = Settings(_env_file=None, data_bucket=DATA, models_bucket=MODELS)
        RunLog.from_settings(
            make_store(settings, endpoint_url=emulator.endpoint_url), settings
        ).repair()
    assert not marker.exists(), "foreign code ran"


def _hashes_of(s3, run_id: str) -> dict:
    key = f"runs/{run_id}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=DATA, Key=key)["Body"].read())
    return {k: manifest[k] for k in ("model_sha256", "x_test_sha256", "y_test_sha256")}


# -- bad stored state ---------------------------------------------------------------------
JUNK = [b"\xff\xfe\x00 not utf-8", b"[]", b"{}", b'{"run_id": 42}', b"NaN"]
READS = [
    ("GET", "/"),
    ("GET", "/pipeline/runs"),
    ("GET", "/pipeline/runs/{run}"),
    ("POST", "/predict"),
    ("GET", f"/result/{DATA}"),
    ("GET", "/ready"),
    ("GET", "/bucket/dataset"),
    ("GET", "/bucket/datasets"),
    ("GET", "/bucket/get-all-models"),
]


def check_every_read(client: httpx.Client, run_id: str, key: str, junk: bytes) -> None:
    for method, path in READS:
        body = {"houses": [HOUSE]} if method == "POST" else None
        response = client.request(method, path.format(run=run_id), json=body)
        assert response.status_code != 500, (key, junk, path, response.text)
        assert "Traceback" not in response.text
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}, response.text
    read_documents = ("request.json", "manifest.json", "metrics.json")
    if key.endswith(read_documents):  # (queued.json is not read once ingestion started)
        listing = client.get("/pipeline/runs").json()["runs"]
        mine = next(r for r in listing if r["run_id"] == run_id)
        assert mine["status"] == "corrupt", (key, junk, mine)
        assert key in mine["error"]["message"]


def test_junk_in_any_stored_document_is_an_error_not_a_500(client, s3):
    run_id = run(client)["run_id"]
    documents = [
        f"runs/{run_id}/request.json",
        f"runs/{run_id}/queued.json",
        f"runs/{run_id}/manifest.json",
        f"runs/{run_id}/metrics.json",
        "runs/latest.json",
        "score.txt",
    ]
    for key in documents:
        original = s3.get_object(Bucket=DATA, Key=key)
        body, metadata = original["Body"].read(), original["Metadata"]
        try:
            for junk in JUNK:
                s3.put_object(Bucket=DATA, Key=key, Body=junk)
                check_every_read(client, run_id, key, junk)
        finally:
            s3.put_object(Bucket=DATA, Key=key, Body=body, Metadata=metadata)
    assert client.get(f"/pipeline/runs/{run_id}").json()["status"] == "succeeded"


def test_predictions_whose_columns_differ_in_length_are_an_error_not_a_500(client, s3):
    """A predictions.json rewritten with fewer predicted than actual prices (each list valid
    on its own) is corrupt state, whole or sampled for a chart (?max_points)."""
    run_id = run(client)["run_id"]
    key = f"runs/{run_id}/predictions.json"
    original = s3.get_object(Bucket=DATA, Key=key)["Body"].read()
    stored = json.loads(original)
    stored["y_pred"] = stored["y_pred"][:3]
    s3.put_object(Bucket=DATA, Key=key, Body=json.dumps(stored).encode())
    try:
        path = f"/pipeline/runs/{run_id}/predictions"
        for params in ({}, {"max_points": 10}):
            response = client.get(path, params=params)
            assert_error(response, 502, "CorruptStateError")
            assert key in response.json()["error"]["message"]
    finally:
        s3.put_object(Bucket=DATA, Key=key, Body=original)
    assert client.get(path, params={"max_points": 10}).status_code == 200


# -- numbers are numbers, and the gate ----------------------------------------------------
def test_garbage_numbers_fail_the_run_and_nothing_changes(client, s3, dataset_bytes):
    """An area of 1e300 once trained to R² -inf and was promoted: now the run fails (the
    input rules bound every number; non-finite metrics would fail it too, see
    tests/component/test_runlog.py) and nothing that was current changes."""
    before = assert_one_current_run(client, s3)
    huge = dataset_bytes.replace(b"13300000,7420", b"13300000,1e300", 1)
    s3.put_object(Bucket=DATA, Key="housing.csv", Body=huge)
    try:
        error = assert_error(client.post("/pipeline/runs", json={}), 502, "DatasetValidationError")
    finally:
        s3.put_object(Bucket=DATA, Key="housing.csv", Body=dataset_bytes)
    assert "column 'area'" in error["message"]
    record = client.get(f"/pipeline/runs/{error['details']['run_id']}").json()
    assert record["status"] == "failed"
    assert record["error"]["type"] == "DatasetValidationError"
    assert assert_one_current_run(client, s3) == before
    for obj in s3.list_objects_v2(Bucket=DATA, Prefix="runs/").get("Contents", []):
        if obj["Key"].endswith(".json"):
            text = s3.get_object(Bucket=DATA, Key=obj["Key"])["Body"].read().decode()
            assert "NaN" not in text
            assert "Infinity" not in text


def test_the_r2_gate_keeps_a_bad_model_from_being_served(
    tmp_path_factory, dataset_path, emulator, client, s3
):
    before = assert_one_current_run(client, s3)
    strict = serve(tmp_path_factory, dataset_path, emulator.endpoint_url, LMF_MIN_R2="0.5")
    try:
        with httpx.Client(base_url=strict.url, timeout=60) as http:
            error = assert_error(
                http.post("/pipeline/runs", json={"feature_set": "seed"}),
                409,
                "PromotionRefusedError",
            )
            assert "below LMF_MIN_R2" in error["message"]
            record = http.get(f"/pipeline/runs/{error['details']['run_id']}").json()
            assert record["status"] == "failed"
            assert record["error"]["stage"] == "promotion"
            assert run(http, feature_set="all")["current"] is True  # R² 0.65 passes
    finally:
        strict.stop()
    assert assert_one_current_run(client, s3) != before


# -- every accepted dataset is kept -------------------------------------------------------
def test_concurrent_uploads_are_all_kept(client, s3, dataset_bytes):
    uploads = [
        dataset_bytes.replace(b"13300000,7420", f"1330000{i},7420".encode(), 1) for i in range(6)
    ]

    def upload(data: bytes) -> httpx.Response:
        return client.put("/bucket/dataset", files={"file": ("housing.csv", data, "text/csv")})

    with ThreadPoolExecutor(len(uploads)) as pool:
        responses = list(pool.map(upload, uploads))
    assert [r.status_code for r in responses] == [200] * len(uploads)
    history = client.get("/bucket/datasets").json()["datasets"]
    kept = {d["sha256"] for d in history}
    assert {sha256(u) for u in uploads} <= kept
    for data in uploads:
        key = f"datasets/housing-{sha256(data)}.csv"
        assert s3.get_object(Bucket=DATA, Key=key)["Body"].read() == data
    current_bytes = s3.get_object(Bucket=DATA, Key="housing.csv")["Body"].read()
    assert current_bytes in uploads
    assert [d["sha256"] for d in history if d["current"]] == [sha256(current_bytes)]
    s3.put_object(Bucket=DATA, Key="housing.csv", Body=dataset_bytes)


# -- right codes --------------------------------------------------------------------------
def test_unreachable_aws_is_503_even_when_starting_a_run(tmp_path_factory, dataset_path):
    dead = serve(tmp_path_factory, dataset_path, f"http://127.0.0.1:{free_port()}")
    try:
        with httpx.Client(base_url=dead.url, timeout=60) as http:
            assert_error(http.post("/pipeline/runs", json={}), 503, "EndpointUnreachableError")
            assert_error(http.get(f"/result/{DATA}"), 503, "EndpointUnreachableError")
    finally:
        dead.stop()


def test_a_missing_function_is_the_servers_configuration_not_a_404(
    tmp_path_factory, dataset_path, emulator
):
    misnamed = serve(
        tmp_path_factory,
        dataset_path,
        emulator.endpoint_url,
        LMF_INVOKER="lambda",
        LMF_INGESTION_FUNCTION="not-deployed",
    )
    try:
        with httpx.Client(base_url=misnamed.url, timeout=60) as http:
            error = assert_error(http.post("/pipeline/runs", json={}), 503, "FunctionNotFoundError")
            assert "not-deployed" in error["message"]
    finally:
        misnamed.stop()


# -- promotion: the policy, and a run that cannot be served ----------------------------------
def test_a_worse_run_is_kept_back_with_the_reason_unless_asked(client, s3):
    """LMF_PROMOTION=better (the default): a run scoring worse than the current one stays
    out of service, and says why in its record; a tie goes to the newer run; asked for
    (``promotion: always``, or an explicit promotion), it becomes current."""
    best = run(client, promotion="always")  # linear: test R² 0.6529
    assert best["current"] is True
    assert best["not_promoted"] is None
    served = client.get(f"/result/{DATA}").json()["content"]
    worse = run(client, model="ridge")  # test R² 0.6525
    assert worse["status"] == "succeeded"
    assert worse["current"] is False
    kept = worse["not_promoted"]
    assert kept["current_run_id"] == best["run_id"]
    assert kept["policy"] == "better"
    assert "test R² 0.6525 is below 0.6529 of the current run" in kept["reason"]
    assert pointer(s3)["run_id"] == best["run_id"]
    assert client.get(f"/result/{DATA}").json()["content"] == served
    assert client.post("/predict", json={"houses": [HOUSE]}).json()["run_id"] == best["run_id"]
    listed = client.get("/pipeline/runs").json()["runs"]
    assert next(r for r in listed if r["run_id"] == worse["run_id"])["not_promoted"] == kept

    tie = run(client)  # the same parameters and data: the same score, the newer run serves
    assert tie["current"] is True
    assert tie["not_promoted"] is None
    forced = run(client, model="ridge", promotion="always")
    assert forced["current"] is True
    assert pointer(s3)["run_id"] == forced["run_id"]
    back = client.post(f"/pipeline/runs/{tie['run_id']}/promote")  # explicit: no comparison
    assert back.status_code == 200, back.text
    assert back.json()["current"] is True
    bad = client.post("/pipeline/runs", json={"promotion": "sometimes"})
    assert_error(bad, 422, "RequestValidationError")


def test_promotion_refuses_a_run_whose_model_cannot_be_served(client, s3):
    """An explicit promotion loads the run's model, checks its sha256 and predicts a test
    row before the pointer moves: a swapped model, or a manifest that disagrees with its
    model, is refused (409) and the current run keeps serving."""
    target = run(client, promotion="always")["run_id"]
    other = run(client, model="ridge", feature_set="seed", promotion="always")["run_id"]
    model_key, manifest_key = f"runs/{target}/model.skops", f"runs/{target}/manifest.json"
    original_model = s3.get_object(Bucket=MODELS, Key=model_key)["Body"].read()
    original_manifest = s3.get_object(Bucket=DATA, Key=manifest_key)["Body"].read()
    manifest = json.loads(original_manifest)
    other_model = s3.get_object(Bucket=MODELS, Key=f"runs/{other}/model.skops")["Body"].read()
    tampered = {
        "a swapped model": (MODELS, model_key, other_model),
        "a manifest naming fewer features": (
            DATA,
            manifest_key,
            json.dumps({**manifest, "features": manifest["features"][:5]}).encode(),
        ),
    }
    try:
        for what, (bucket, key, data) in tampered.items():
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            refused = client.post(f"/pipeline/runs/{target}/promote")
            assert_error(refused, 409, "PromotionRefusedError")
            assert "cannot be served" in refused.json()["error"]["message"], what
            assert pointer(s3)["run_id"] == other, what
            assert client.post("/predict", json={"houses": [HOUSE]}).json()["run_id"] == other
            s3.put_object(Bucket=MODELS, Key=model_key, Body=original_model)
            s3.put_object(Bucket=DATA, Key=manifest_key, Body=original_manifest)
    finally:
        s3.put_object(Bucket=MODELS, Key=model_key, Body=original_model)
        s3.put_object(Bucket=DATA, Key=manifest_key, Body=original_manifest)
    promoted = client.post(f"/pipeline/runs/{target}/promote")
    assert promoted.status_code == 200, promoted.text
    assert pointer(s3)["run_id"] == target
