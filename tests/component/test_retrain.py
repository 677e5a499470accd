"""Retrain when data lands: the ingestion handler given S3 upload notifications (the event as
MiniStack delivers it, ``tests/events/s3_object_created.json``), on the moto server."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from local_ml_flow import handlers, notifications, registry
from local_ml_flow.errors import DatasetValidationError, InvalidRequestError
from local_ml_flow.runlog import RunLog
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore
from tests import datasets as sample
from tests.component.conftest import snapshot

EVENT = json.loads(
    (Path(__file__).resolve().parent.parent / "events" / "s3_object_created.json").read_text()
)


def s3_event(
    store: ArtifactStore, key: str, *, bucket: str | None = None, at: str | None = None
) -> dict[str, Any]:
    """The notification S3 sends for ``key`` as it now is (its key URL-encoded, its ETag)."""
    event = copy.deepcopy(EVENT)
    record = event["Records"][0]
    bucket = bucket or store.data_bucket
    head = store.head(bucket, key)
    record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["s3"]["object"].update(
        key=quote_plus(key, safe="/"), eTag=head.etag.strip('"') if head else "0" * 32
    )
    if at is not None:
        record["eventTime"] = at
    return event


def deliver(store: ArtifactStore, settings: Settings, event: dict[str, Any]) -> list[Any]:
    """The ingestion function given ``event`` (JSON in, JSON out); its uploads' outcomes."""
    answer = handlers.ingestion(json.loads(json.dumps(event)), None, store=store, settings=settings)
    return list(json.loads(json.dumps(answer))["uploads"])


def test_an_upload_of_housing_is_a_run_trained_scored_and_promoted(store, settings):
    event = s3_event(store, settings.dataset_key)
    (done,) = deliver(store, settings, event)
    expected_id = notifications.parse(event)[0].run_id()
    assert done["run_id"] == expected_id
    assert "-s3-" in expected_id
    assert done["promoted"] is True
    assert done["score"] == "65.29%"
    runs = RunLog.from_settings(store, settings)
    (record,) = runs.list()
    assert (record["run_id"], record["status"], record["current"]) == (
        expected_id,
        "succeeded",
        True,
    )
    assert store.get_text(settings.data_bucket, "score.txt") == "65.29%"

    # S3 delivers at least once, and retries a failed invocation: the same event again
    # finds its run and does nothing
    before = snapshot(store)
    (again,) = deliver(store, settings, event)
    assert again["run_id"] is None
    assert "earlier delivery" in again["ignored"]
    assert snapshot(store) == before


def test_a_bad_file_is_a_failed_run_saying_why_and_the_current_model_stays(store, settings):
    deliver(store, settings, s3_event(store, settings.dataset_key, at="2026-12-03T10:00:00Z"))
    runs = RunLog.from_settings(store, settings)
    current = runs.latest()
    assert current is not None
    store.put_bytes(settings.data_bucket, settings.dataset_key, b"a,b\n1,2\n", "text/csv")

    bad = s3_event(store, settings.dataset_key, at="2026-12-03T11:00:00Z")
    with pytest.raises(DatasetValidationError, match="missing columns"):
        deliver(store, settings, bad)
    failed = runs.record(notifications.parse(bad)[0].run_id())
    assert failed["status"] == "failed"
    assert failed["error"]["stage"] == "ingestion"
    assert "missing columns: price" in failed["error"]["message"]
    assert runs.latest() == current
    assert store.get_text(settings.data_bucket, "score.txt") == "65.29%"


def test_the_pipelines_own_writes_start_no_run(store, settings):
    """Everything a run writes (run files, the archive of housing, the root copies, the
    pointer) starts nothing and writes nothing: a run never starts another."""
    deliver(store, settings, s3_event(store, settings.dataset_key))
    own = [o.key for o in store.list_objects(settings.data_bucket)]
    assert any(k.startswith("datasets/housing-") and k.endswith(".csv") for k in own)
    before = snapshot(store)
    for key in own:
        if key == settings.dataset_key:
            continue
        (done,) = deliver(store, settings, s3_event(store, key))
        assert done["run_id"] is None, key
        assert done["ignored"], key
    models = store.list_objects(settings.models_bucket)
    for obj in models:
        event = s3_event(store, obj.key, bucket=settings.models_bucket)
        (done,) = deliver(store, settings, event)
        assert "is not in the data bucket" in done["ignored"], obj.key
    assert snapshot(store) == before
    assert len(RunLog.from_settings(store, settings).list()) == 1


def test_an_upload_replaced_since_is_left_to_the_newer_uploads_event(store, settings):
    stale = s3_event(store, settings.dataset_key)
    stale["Records"][0]["s3"]["object"]["eTag"] = "0" * 32
    (done,) = deliver(store, settings, stale)
    assert "was replaced since" in done["ignored"]
    assert RunLog.from_settings(store, settings).list() == []


def test_a_registered_datasets_new_version_is_a_run_of_that_dataset(empty_store, settings):
    store = empty_store
    frame = sample.iris()
    first = registry.add(
        store, "iris", sample.csv(frame), target="species", max_bytes=10**7, max_rows=10**5
    )
    key = registry.version_key("iris", first.document.sha256)
    (done,) = deliver(store, settings, s3_event(store, key))
    assert done["dataset"] == "iris"
    assert done["promoted"] is True
    runs = RunLog.from_settings(store, settings).of_dataset("iris")
    assert runs.latest_run_id("none") == done["run_id"]
    assert runs.record(done["run_id"])["dataset_sha256"] == first.document.sha256

    # a later version: the first one's event (delivered late) trains nothing
    registry.add(store, "iris", sample.csv(frame.iloc[::-1]), max_bytes=10**7, max_rows=10**5)
    late = s3_event(store, key, at="2026-12-03T12:00:00Z")
    (ignored,) = deliver(store, settings, late)
    assert "no longer its current one" in ignored["ignored"]

    # a file written by hand under a version key is not a version: nothing is trained
    forged = registry.version_key("iris", "ab" * 32)
    store.put_bytes(store.data_bucket, forged, b"x\n1\n", "text/csv")
    (upload,) = notifications.parse(s3_event(store, forged))
    plan = notifications.plan(upload, RunLog(store), settings, settle_s=0)
    assert isinstance(plan, notifications.Ignored)
    assert "is not an accepted version of dataset 'iris'" in plan.reason
    assert len(runs.list()) == 1


def test_a_url_encoded_key_is_decoded_before_it_is_matched(moto_endpoint, empty_store, settings):
    odd = Settings(
        _env_file=None,
        data_bucket=settings.data_bucket,
        models_bucket=settings.models_bucket,
        dataset_key="my data/housing+v2.csv",
    )
    empty_store.put_bytes(empty_store.data_bucket, odd.dataset_key, b"anything", "text/csv")
    event = s3_event(empty_store, odd.dataset_key)
    assert event["Records"][0]["s3"]["object"]["key"] == "my+data/housing%2Bv2.csv"
    (upload,) = notifications.parse(event)
    assert upload.key == odd.dataset_key
    plan = notifications.plan(upload, RunLog(empty_store), odd)
    assert isinstance(plan, notifications.Retrain)
    assert plan.dataset == "housing"
    assert RunLog(empty_store).record(plan.run_id)["status"] == "queued"


@pytest.mark.parametrize(
    "records",
    [
        [],
        "housing.csv",
        [{"s3": {"bucket": {"name": "b"}}}],
        [{**EVENT["Records"][0], "eventTime": "noon"}],
    ],
)
def test_a_malformed_notification_is_refused(store, settings, records):
    with pytest.raises(InvalidRequestError):
        deliver(store, settings, {"Records": records})
