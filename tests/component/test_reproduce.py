"""Reproducing a run on moto: bit for bit when nothing changed; what differs when it did."""

from __future__ import annotations

import json

from local_ml_flow import handlers, pipeline
from local_ml_flow.reproduce import reproduce, reproductions
from local_ml_flow.runlog import RunLog
from local_ml_flow.storage import ArtifactStore


def trained(store: ArtifactStore, settings, run_id: str, **event) -> None:
    handlers.ingestion(
        {"run_id": run_id, "promote": False, **event}, store=store, settings=settings
    )
    handlers.inference({"run_id": run_id}, store=store, settings=settings)


def test_a_run_is_reproduced_bit_for_bit_and_the_run_is_untouched(store, settings):
    trained(store, settings, "gb", model="linear", random_state=7)
    runs = RunLog(store)
    before = {o.key: o.etag for o in store.list_objects(store.data_bucket, "runs/gb/")}
    result = reproduce(runs, "gb", pipeline.Limits())
    assert result.identical, result.differences
    assert (result.model_identical, result.predictions_identical) == (True, True)
    assert result.reproduced_model_sha256 == runs.manifest("gb").model_sha256
    assert (result.rows_differing, result.differences, result.versions) == (0, [], {})
    after = {o.key: o.etag for o in store.list_objects(store.data_bucket, "runs/gb/")}
    added = set(after) - set(before)
    assert {k: after[k] for k in before} == before  # the run's own documents never change
    assert [k.rsplit("/", 1)[1].startswith("reproduction-") for k in added] == [True]
    assert reproductions(runs, "gb") == [result]


def test_what_differs_is_said(store, settings):
    """A run whose stored model does not come from its recorded parameters (run "b"'s
    artifacts under a manifest that records seed 1 and another numpy): not identical, and
    each difference is named."""
    trained(store, settings, "a", random_state=1)
    trained(store, settings, "b", random_state=2)
    runs = RunLog(store)
    manifest = json.loads(store.get_bytes(store.data_bucket, "runs/b/manifest.json"))
    manifest["run_id"] = "mixed"
    manifest["parameters"]["random_state"] = 1
    manifest["environment"]["numpy"] = "1.0.0"
    for bucket, name in (
        (store.models_bucket, "model.skops"),
        (store.data_bucket, "test_split.npz"),
    ):
        store.copy(bucket, f"runs/b/{name}", f"runs/mixed/{name}")
    for name in ("request.json", "metrics.json"):
        document = json.loads(store.get_bytes(store.data_bucket, f"runs/b/{name}"))
        store.put_json(store.data_bucket, f"runs/mixed/{name}", {**document, "run_id": "mixed"})
    store.put_json(store.data_bucket, "runs/mixed/manifest.json", manifest)

    result = reproduce(runs, "mixed", pipeline.Limits())
    assert not result.identical
    assert (result.model_identical, result.predictions_identical) == (False, False)
    assert result.test_split_identical is False  # the split follows the seed too
    assert result.reproduced_model_sha256 == runs.manifest("a").model_sha256  # seed 1's model
    assert result.versions["numpy"][0] == "1.0.0"
    assert (result.rows_differing or 0) > 0
    assert (result.max_abs_difference or 0) > 0
    said = " | ".join(result.differences)
    for needle in ("numpy 1.0.0 then", "test split differs", "model's bytes differ", "rows"):
        assert needle in said, said
