"""Both handlers on the moto server: the event contract, the original keys, the invariants."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import joblib
import pytest

from local_ml_flow import datasets, handlers, pipeline
from local_ml_flow.errors import (
    DatasetValidationError,
    IntegrityError,
    InvalidRequestError,
    NoModelError,
    NotFoundError,
    StorageError,
)
from local_ml_flow.runlog import RunLog
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore, make_store, sha256
from tests.component.conftest import snapshot

EVENTS = Path(__file__).resolve().parent.parent / "events"


def event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def ingest(store: ArtifactStore, settings: Settings, ev: dict, ctx=None) -> dict:
    return handlers.ingestion(ev, ctx, store=store, settings=settings)


def infer(store: ArtifactStore, settings: Settings, ev: dict, ctx=None) -> dict:
    return handlers.inference(ev, ctx, store=store, settings=settings)


def test_empty_events_reproduce_the_original_flow_and_keys(store, settings, lambda_context):
    trained = ingest(store, settings, event("ingestion_default"), lambda_context)
    scored = infer(store, settings, event("inference_default"), lambda_context)

    data = {o.key for o in store.list_objects(settings.data_bucket)}
    models = {o.key for o in store.list_objects(settings.models_bucket)}
    assert {"housing.csv", "x_test.joblib", "y_test.joblib", "score.txt"} <= data
    assert "model.joblib" in models
    assert store.get_text(settings.data_bucket, "score.txt") == "65.29%"
    assert scored["score"] == "65.29%"
    assert scored["run_id"] == trained["run_id"]
    assert set(scored) == {"run_id", "r2", "mae", "rmse", "n_test", "score"}
    assert {"run_id", "n_train", "n_test", "features", "model_sha256", "dataset_sha256"} <= set(
        trained
    )
    assert (trained["n_train"], trained["n_test"]) == (436, 109)

    # the original's consumers can load the root artifacts with plain joblib
    x_test = joblib.load(io.BytesIO(store.get_bytes(settings.data_bucket, "x_test.joblib")))
    y_test = joblib.load(io.BytesIO(store.get_bytes(settings.data_bucket, "y_test.joblib")))
    model = joblib.load(io.BytesIO(store.get_bytes(settings.models_bucket, "model.joblib")))
    assert len(x_test) == len(y_test) == 109
    assert model.predict(x_test).shape == (109,)


def test_run_artifacts_live_under_their_own_prefix(store, settings):
    run = ingest(store, settings, {"run_id": "run-a"})
    infer(store, settings, {"run_id": "run-a"})
    data = {o.key for o in store.list_objects(settings.data_bucket, "runs/run-a/")}
    assert data == {
        f"runs/run-a/{name}"
        for name in (
            "request.json",
            "test_split.npz",  # what this project loads (x.npy and y.npy: no pickle)
            "x_test.joblib",  # the original's format, for users' scripts
            "y_test.joblib",
            "manifest.json",
            "metrics.json",
            "predictions.json",  # the test split's y_true and y_pred, for the charts
        )
    }
    models = {o.key for o in store.list_objects(settings.models_bucket, "runs/run-a/")}
    assert models == {"runs/run-a/model.skops", "runs/run-a/model.joblib"}
    manifest = store.get_json(settings.data_bucket, "runs/run-a/manifest.json")
    assert manifest["model_sha256"] == run["model_sha256"]
    assert manifest["dataset_sha256"] == sha256(store.get_dataset())
    assert manifest["parameters"] == {
        "model": "linear",
        "feature_set": "all",
        "test_size": 0.2,
        "random_state": 42,
    }
    assert {"python", "numpy", "pandas", "scikit-learn", "skops", "local-ml-flow"} <= set(
        manifest["environment"]
    )
    model_bytes = store.get_bytes(settings.models_bucket, "runs/run-a/model.skops")
    assert sha256(model_bytes) == run["model_sha256"]
    metrics = store.get_json(settings.data_bucket, "runs/run-a/metrics.json")
    assert metrics["r2"] == pytest.approx(0.6529, abs=1e-4)
    # the dataset the run trained on is archived under its sha256
    archive = f"datasets/housing-{run['dataset_sha256']}.csv"
    assert store.get_bytes(settings.data_bucket, archive) == store.get_dataset()


def test_a_run_stored_before_test_split_npz_still_scores_promotes_and_lists(store, settings):
    """Runs stored as x_test.npy + y_test.npy (manifest without test_split_sha256) are read
    as they are: scored, promoted, listed."""
    ingest(store, settings, {"run_id": "old", "promote": False})
    data, prefix = settings.data_bucket, "runs/old/"
    with zipfile.ZipFile(io.BytesIO(store.get_bytes(data, f"{prefix}test_split.npz"))) as split:
        for name in ("x", "y"):  # the members are the very .npy files of the layout before
            store.put_bytes(data, f"{prefix}{name}_test.npy", split.read(f"{name}.npy"), "x")
    store.delete(data, f"{prefix}test_split.npz")
    manifest = store.get_json(data, f"{prefix}manifest.json")
    del manifest["test_split_sha256"]
    store.put_json(data, f"{prefix}manifest.json", manifest)

    scored = infer(store, settings, {"run_id": "old"})
    assert scored["score"] == "65.29%"
    runs = RunLog.from_settings(store, settings)
    assert pipeline.make_current(runs, "old").run_id == "old"
    assert runs.latest_run_id("none") == "old"
    assert runs.record("old")["status"] == "succeeded"
    store.delete(data, f"{prefix}y_test.npy")  # a missing file of the old layout: not found
    with pytest.raises(NotFoundError):
        infer(store, settings, {"run_id": "old"})


def test_seed_event_gives_the_original_35_percent(store, settings):
    ingest(store, settings, event("ingestion_seed"))
    scored = infer(store, settings, {})
    assert scored["r2"] == pytest.approx(0.3562, abs=0.0005)


def test_runs_are_never_rewritten(store, settings):
    ingest(store, settings, {"run_id": "once"})
    before = snapshot(store)
    with pytest.raises(InvalidRequestError, match="already exists"):
        ingest(store, settings, {"run_id": "once", "model": "gradient_boosting"})
    infer(store, settings, {"run_id": "once"})
    after = snapshot(store)
    run_keys = [k for k in before if "/runs/once/" in k]
    assert run_keys
    assert all(after[k] == before[k] for k in run_keys)


def test_invalid_dataset_leaves_model_score_and_dataset_untouched(store, settings):
    ingest(store, settings, {})
    infer(store, settings, {})
    bad = b"price,area\n1,2\n"
    store.put_bytes(settings.data_bucket, "housing.csv", bad, "text/csv")
    before = snapshot(store)

    with pytest.raises(DatasetValidationError, match="missing columns"):
        ingest(store, settings, {"run_id": "bad-run"})

    after = snapshot(store)
    changed = {k for k in after if after.get(k) != before.get(k)}
    # only the failed run's own record was written
    assert changed == {
        f"{settings.data_bucket}/runs/bad-run/request.json",
        f"{settings.data_bucket}/runs/bad-run/error.json",
    }
    record = RunLog(store).record("bad-run")
    assert record["status"] == "failed"
    assert record["error"]["type"] == "DatasetValidationError"
    assert store.get_text(settings.data_bucket, "score.txt") == "65.29%"


def test_tampered_model_is_refused(store, settings):
    run = ingest(store, settings, {"run_id": "tamper"})
    key = "runs/tamper/model.skops"  # the model this project loads (model.joblib never is)
    original = store.get_bytes(settings.models_bucket, key)
    flipped = original[:100] + bytes([original[100] ^ 1]) + original[101:]
    store.put_bytes(settings.models_bucket, key, flipped, "x")
    with pytest.raises(IntegrityError, match="refusing to load it"):
        infer(store, settings, {"run_id": "tamper"})
    with pytest.raises(IntegrityError):
        pipeline.load_model(RunLog(store))
    assert run["model_sha256"] == sha256(original)


def test_inference_before_any_training(empty_store, settings):
    with pytest.raises(NoModelError, match="no trained model yet"):
        infer(empty_store, settings, {})
    with pytest.raises(NotFoundError, match="does not exist"):
        infer(empty_store, settings, {"run_id": "ghost"})


def test_missing_dataset_is_a_clear_error(empty_store, settings):
    with pytest.raises(NotFoundError, match=r"s3://lmf-data-\w+/housing.csv does not exist"):
        ingest(empty_store, settings, {})


def test_missing_bucket_is_a_clear_error(moto_endpoint):
    settings = Settings(_env_file=None, data_bucket="lmf-nope-data", models_bucket="lmf-nope-m")
    store = make_store(settings, endpoint_url=moto_endpoint)
    with pytest.raises(NotFoundError, match="bucket 'lmf-nope-data' does not exist"):
        ingest(store, settings, {})


@pytest.mark.parametrize(
    ("bad_event", "message"),
    [
        ({"model": "forest"}, "model 'forest' is unknown"),
        ({"feature_set": "most"}, "feature_set 'most' is unknown"),
        ({"test_size": 1}, "test_size must be a number with 0 < x < 1"),
        ({"test_size": "0.2"}, "test_size must be"),
        ({"random_state": -1}, "random_state must be a non-negative integer"),
        ({"run_id": "../escape"}, "run_id '../escape' is invalid"),
        ({"colour": "red"}, "unknown event fields: colour"),
        ({"promote": "yes"}, "promote must be true or false"),
        ([1, 2], "event must be a JSON object"),
    ],
)
def test_bad_events_are_refused(store, settings, bad_event, message):
    with pytest.raises(InvalidRequestError, match=message):
        ingest(store, settings, bad_event)


def test_latest_pointer_follows_the_last_successful_run(store, settings):
    ingest(store, settings, {"run_id": "first"})
    ingest(store, settings, {"run_id": "second", "feature_set": "seed", "promotion": "always"})
    pointer = RunLog(store).latest()
    assert pointer is not None
    assert pointer.run_id == "second"
    infer(store, settings, {"run_id": "first"})  # scoring an older run keeps score.txt
    assert not store.exists(settings.data_bucket, "score.txt")
    infer(store, settings, {})
    assert store.get_text(settings.data_bucket, "score.txt") == "35.62%"
    root = store.read(settings.models_bucket, "model.joblib")
    assert root.data == store.get_bytes(settings.models_bucket, "runs/second/model.joblib")
    assert root.metadata["run-id"] == "second"
    assert pointer.model_sha256 == sha256(
        store.get_bytes(settings.models_bucket, "runs/second/model.skops")
    )


def test_ingestion_keeps_the_better_run_current_by_default(store, settings):
    """LMF_PROMOTION=better: ``{}``-style ingestion promotes a run only if its test R² is at
    least the current run's; the worse run says why, and score.txt stays the better one's."""
    first = ingest(store, settings, {"run_id": "first"})
    assert first["promoted"] is True
    worse = ingest(store, settings, {"run_id": "worse", "feature_set": "seed"})
    assert worse["promoted"] is False
    assert "test R² 0.3562 is below 0.6529 of the current run first" in worse["not_promoted"]
    latest = RunLog(store).latest()
    assert latest is not None
    assert latest.run_id == "first"
    infer(store, settings, {})  # scores the current run, as the original flow does
    assert store.get_text(settings.data_bucket, "score.txt") == "65.29%"
    record = RunLog(store).record("worse")  # scored by its ingestion: a finished run
    assert record["status"] == "succeeded"
    assert record["metrics"]["score"] == "35.62%"
    assert record["current"] is False
    assert record["not_promoted"]["current_run_id"] == "first"
    same = ingest(store, settings, {"run_id": "same"})  # a tie: the newer run serves
    assert same["promoted"] is True
    always = settings.model_copy(update={"promotion": "always"})
    assert ingest(store, always, {"run_id": "forced", "feature_set": "seed"})["promoted"] is True
    pipeline.make_current(RunLog(store), "worse")  # kept once, promoted on request
    promoted = RunLog(store).record("worse")
    assert promoted["current"] is True
    assert promoted["not_promoted"] is None


def test_a_pointer_that_moves_meanwhile_is_compared_again(store, settings):
    """``better`` decides against the run that is current when the pointer is swapped: a run
    that read the pointer early is compared with the one promoted since, either way."""
    ingest(store, settings, {"run_id": "base", "feature_set": "seed"})  # R² 0.3562
    for run_id, model in (("a", "linear"), ("b", "ridge"), ("c", "ridge")):
        ingest(store, settings, {"run_id": run_id, "model": model, "promote": False})
    runs = RunLog(store)
    early = runs.peek_pointer()  # what a and c read, before b is promoted
    assert runs.promote("b", policy="better").promoted is True  # 0.6525 > 0.3562
    a = runs.promote("a", runs.manifest("a"), policy="better", just_trained=True, seen=early)
    assert a.promoted is True  # 0.6529 >= 0.6525 of b, not only >= 0.3562 of base
    assert a.run_id == "a"
    c = runs.promote("c", runs.manifest("c"), policy="better", just_trained=True, seen=early)
    assert c.promoted is False  # 0.6525 < 0.6529 of a, though above base's
    assert c.reason is not None
    assert "of the current run a:" in c.reason
    latest = runs.latest()
    assert latest is not None
    assert latest.run_id == "a"


def test_better_keeps_nothing_out_for_new_data_or_an_unservable_current_run(
    store, settings, dataset_bytes
):
    """A run on another dataset version, or a current run whose model cannot be served, is
    not a reason to keep a new run out; a failure to record a kept decision fails nothing."""
    ingest(store, settings, {"run_id": "first"})
    header, *rows = dataset_bytes.strip().split(b"\n")
    datasets.accept(
        store, b"\n".join([header, *reversed(rows)]) + b"\n", max_bytes=10**8, max_rows=10**6
    )
    new_data = ingest(store, settings, {"run_id": "new-data", "feature_set": "seed"})
    assert new_data["promoted"] is True  # lower R², other data: not comparable
    ingest(store, settings, {"run_id": "best"})  # the current run again, on the new data
    key = "runs/best/model.skops"
    store.put_bytes(settings.models_bucket, key, b"not the model", "application/zip")
    replaced = ingest(store, settings, {"run_id": "servable", "feature_set": "seed"})
    assert replaced["promoted"] is True  # the current run's model fails its sha256
    original = store.put_json

    def failing(bucket: str, key: str, *args: object, **kwargs: object) -> str:
        if key.endswith("/kept.json"):
            raise StorageError("S3 answered 503 SlowDown")
        return original(bucket, key, *args, **kwargs)

    store.put_json = failing
    ingest(store, settings, {"run_id": "top"})
    kept = ingest(store, settings, {"run_id": "kept", "feature_set": "seed"})
    assert kept["promoted"] is False
    record = RunLog(store).record("kept")
    assert record["status"] == "succeeded"  # not failed: only the reason went unrecorded
    assert record["not_promoted"] is None


def test_run_records(store, settings):
    ingest(store, settings, {"run_id": "r1"})
    assert RunLog(store).record("r1")["status"] == "running"
    infer(store, settings, {"run_id": "r1"})
    record = RunLog(store).record("r1")
    assert record["status"] == "succeeded"
    assert record["metrics"]["n_train"] == 436
    assert [r["run_id"] for r in RunLog(store).list()] == ["r1"]
    with pytest.raises(NotFoundError):
        RunLog(store).record("r2")


def test_list_runs_newest_first_and_limited(store, settings):
    for run_id in ("zeta", "alpha", "mid", "last"):  # names unordered: creation time orders
        ingest(store, settings, {"run_id": run_id})
    store.put_bytes(settings.data_bucket, "housing.csv", b"price\n1\n", "text/csv")
    with pytest.raises(DatasetValidationError):
        ingest(store, settings, {"run_id": "broken"})
    runs = RunLog(store).list(limit=3)
    assert [r["run_id"] for r in runs] == ["broken", "last", "mid"]
    assert [r["status"] for r in runs] == ["failed", "running", "running"]
    assert len(RunLog(store).list()) == 5


def test_a_warm_run_makes_no_redundant_requests(store, settings):
    """The request budget of issue 13 (requests are counted, not timed): ingestion that
    promotes its own run reads neither its metrics nor its error.json (it knows there are
    none), inference reads the pointer, the manifest and each artifact once."""
    sent: list[str] = []
    store.s3.meta.events.register(
        "before-send.s3", lambda event_name, **_: sent.append(event_name.rsplit(".", 1)[-1])
    )
    for _ in range(2):  # the second run is warm: the dataset's archive is known
        sent.clear()
        ingest(store, settings, {})
        ingestion = sorted(sent)
        sent.clear()
        infer(store, settings, {})
        inference = sorted(sent)
    # the run index's mark, request.json and the dataset; 5 artifacts (the test split is one
    # file: test_split.npz); the manifest and the pointer; 3 root copies and score.txt's
    # removal (not scored yet); the pointer; the root copies' tags and the promotion log's
    # entry (the replaced pointer's was written by this process)
    assert ingestion == sorted(
        ["PutObject", "PutObject", "GetObject"]
        + ["PutObject"] * 5
        + ["PutObject", "GetObject"]
        + ["CopyObject"] * 3
        + ["DeleteObject", "PutObject"]
        + ["HeadObject"] * 4
        + ["PutObject"]
    )
    # the pointer; manifest, model, test split; metrics, predictions; score.txt; the pointer
    # again (score.txt follows the current run only)
    assert inference == sorted(
        ["GetObject"] + ["GetObject"] * 3 + ["PutObject"] * 2 + ["PutObject", "GetObject"]
    )


def test_a_constant_price_is_refused_never_scored_as_perfect(store, settings, dataset_bytes):
    """Every price 5,000,000: scikit-learn's convention would score R² 100 %."""
    header, *rows = dataset_bytes.decode().strip().split("\n")
    constant = "\n".join([header, *("5000000," + r.split(",", 1)[1] for r in rows)]) + "\n"
    store.put_bytes(settings.data_bucket, "housing.csv", constant.encode(), "text/csv")
    with pytest.raises(InvalidRequestError, match="single value"):
        ingest(store, settings, {})
    assert RunLog.from_settings(store, settings).latest() is None


def test_uploads_that_cannot_be_trained_on_are_refused(store, settings, dataset_bytes):
    from local_ml_flow import datasets

    header, *rows = dataset_bytes.decode().strip().split("\n")
    before = snapshot(store)
    few = ("\n".join([header, *rows[:5]]) + "\n").encode()
    with pytest.raises(DatasetValidationError, match="at least 10"):
        datasets.accept(store, few, max_bytes=10**8, max_rows=10**6)
    same = "\n".join([header, *("5000000," + r.split(",", 1)[1] for r in rows[:50])]) + "\n"
    with pytest.raises(DatasetValidationError, match="single value"):
        datasets.accept(store, same.encode(), max_bytes=10**8, max_rows=10**6)
    assert snapshot(store) == before
