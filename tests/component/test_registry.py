"""Registered datasets on the moto server: register, version, train and score through the
Lambda handlers (``{"dataset": NAME}`` events), classification and regression."""

from __future__ import annotations

import pytest

from local_ml_flow import handlers, registry
from local_ml_flow.errors import (
    CorruptStateError,
    DatasetValidationError,
    IntegrityError,
    InvalidRequestError,
    NotFoundError,
)
from local_ml_flow.runlog import RunLog
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore
from tests import datasets
from tests.component.conftest import snapshot

MAX_BYTES = 50 * 1024 * 1024


def add(store: ArtifactStore, name: str, data: bytes, **kwargs) -> registry.Registered:
    return registry.add(store, name, data, max_bytes=MAX_BYTES, max_rows=100_000, **kwargs)


def ingest(store: ArtifactStore, settings: Settings, event: dict) -> dict:
    return handlers.ingestion(event, None, store=store, settings=settings)


def infer(store: ArtifactStore, settings: Settings, event: dict) -> dict:
    return handlers.inference(event, None, store=store, settings=settings)


def test_a_classification_dataset_is_registered_with_its_inferred_schema(empty_store):
    registered = add(empty_store, "iris", datasets.csv(datasets.iris()), target="species")
    document = registered.document
    assert registered.created
    assert (document.task, document.target, document.rows) == ("classification", "species", 150)
    assert document.schema.labels == ["setosa", "versicolor", "virginica"]
    kinds = {c.name: (c.kind, c.feature) for c in document.schema.columns}
    assert kinds["sepal_length"] == ("number", True)
    assert kinds["species"] == ("categorical", False)
    assert registry.names(empty_store) == ["iris"]
    assert registry.get(empty_store, "iris") == document


def test_the_task_is_inferred_from_the_target(empty_store):
    assert add(empty_store, "dia", datasets.csv(datasets.diabetes()), target="progression")
    assert registry.get(empty_store, "dia").task == "regression"
    # whole numbers with few distinct values are classes, and stay numbers
    wine = add(empty_store, "wine", datasets.csv(datasets.wine()), target="cultivar").document
    assert (wine.task, wine.schema.labels) == ("classification", [0, 1, 2])
    # ...unless the caller says otherwise
    forced = add(
        empty_store, "wine-r", datasets.csv(datasets.wine()), target="cultivar", task="regression"
    )
    assert forced.document.task == "regression"


def test_free_text_is_refused_as_a_feature_with_the_reason(empty_store):
    document = add(empty_store, "homes", datasets.csv(datasets.mixed()), target="price").document
    note = document.schema.column("note")
    assert (note.kind, note.feature) == ("text", False)
    assert note.reason is not None
    assert "free text" in note.reason
    kinds = {c.name: c.kind for c in document.schema.columns}
    assert kinds == {
        "size": "number",
        "rooms": "integer",
        "garden": "boolean",
        "city": "categorical",
        "note": "text",
        "price": "number",
    }
    assert document.schema.column("rooms").missing > 0
    assert document.schema.column("city").levels == ["Lyon", "Nantes", "Paris"]


@pytest.mark.parametrize(
    ("frame", "target", "needle"),
    [
        (datasets.mixed().assign(price=5_000_000), "price", "nothing to learn"),
        (datasets.mixed().assign(price=5.5), "price", "single"),
        (datasets.iris().assign(species="setosa"), "species", "single class"),
        (datasets.iris().iloc[[*range(11), 50]], "species", "fewer than two rows"),
        (datasets.mixed().head(5), "price", "at least 10"),
        (datasets.mixed(), "nope", "not in the file"),
    ],
)
def test_data_that_cannot_be_trained_on_is_refused_at_registration(
    empty_store, frame, target, needle
):
    with pytest.raises(DatasetValidationError) as refused:
        add(empty_store, "bad", datasets.csv(frame), target=target)
    assert any(needle in p for p in refused.value.problems), refused.value.problems
    assert registry.names(empty_store) == []


def test_names_are_matched_whole(empty_store):
    for name in ("Iris", "a b", "x" * 65, "", "abc\n", "../x", "housing"):
        with pytest.raises(InvalidRequestError):
            add(empty_store, name, datasets.csv(datasets.iris()), target="species")


def test_a_new_version_is_validated_against_the_stored_schema(empty_store):
    frame = datasets.mixed()
    add(empty_store, "homes", datasets.csv(frame), target="price")
    before = snapshot(empty_store)
    changed = frame.astype(object)
    changed.loc[3, "city"] = "Berlin"
    changed.loc[4, "rooms"] = "many"
    changed.loc[6, "garden"] = "maybe"
    changed = changed.drop(columns=["size"]).assign(extra=1)
    with pytest.raises(DatasetValidationError) as refused:
        add(empty_store, "homes", datasets.csv(changed))
    problems = "\n".join(refused.value.problems)
    assert "missing columns: size" in problems
    assert "unknown columns: extra" in problems
    assert "column 'city': unseen levels at line 5 (found 'Berlin'" in problems
    assert "column 'rooms': expected whole numbers at line 6" in problems
    assert "column 'garden': expected yes or no at line 8" in problems
    assert snapshot(empty_store) == before  # a refused upload changes nothing

    # accepted on purpose: the schema is replaced and versioned
    replaced = add(empty_store, "homes", datasets.csv(changed), replace_schema=True).document
    assert next(v.sha256 for v in replaced.versions) != replaced.sha256
    assert len({v.schema_sha256 for v in replaced.versions}) == 2
    assert replaced.schema.column("city").kind == "categorical"
    assert "Berlin" in (replaced.schema.column("city").levels or [])


def test_every_accepted_version_is_archived_by_sha256(empty_store):
    first = add(empty_store, "homes", datasets.csv(datasets.mixed(seed=1)), target="price")
    second = add(empty_store, "homes", datasets.csv(datasets.mixed(seed=2)))
    assert not second.created
    digests = [v.sha256 for v in second.document.versions]
    assert digests == [first.document.sha256, second.document.sha256]
    assert len({v.schema_sha256 for v in second.document.versions}) == 1
    for digest in digests:
        data = registry.read_version(empty_store, "homes", digest, MAX_BYTES)
        assert data in (datasets.csv(datasets.mixed(seed=1)), datasets.csv(datasets.mixed(seed=2)))


def test_a_classification_run_through_the_handlers(empty_store, settings):
    add(empty_store, "iris", datasets.csv(datasets.iris()), target="species")
    trained = ingest(empty_store, settings, {"dataset": "iris"})
    scored = infer(empty_store, settings, {"dataset": "iris"})
    assert trained["model"] == "logistic"  # the task's default
    assert (trained["n_train"], trained["n_test"]) == (120, 30)
    assert scored["run_id"] == trained["run_id"]
    assert scored["dataset"] == "iris"
    assert 0.85 <= scored["accuracy"] <= 1
    assert set(scored) >= {"balanced_accuracy", "f1_macro", "log_loss", "roc_auc", "score"}
    runs = RunLog.from_settings(empty_store, settings).of_dataset("iris")
    pointer = runs.latest()
    assert pointer is not None
    assert pointer.run_id == trained["run_id"]
    # its own keys; the housing keys are untouched
    keys = {o.key for o in empty_store.list_objects(settings.data_bucket)}
    assert f"datasets/iris/runs/{trained['run_id']}/manifest.json" in keys
    assert not any(k.startswith("runs/") or k == "score.txt" for k in keys)
    predictions = runs.predictions(trained["run_id"])
    assert predictions.labels == ["setosa", "versicolor", "virginica"]
    assert sum(map(sum, predictions.confusion or [])) == 30
    assert len(predictions.roc or []) == 3


def test_a_binary_run_has_one_roc_curve_and_gradient_boosting_is_stratified(empty_store, settings):
    add(empty_store, "cancer", datasets.csv(datasets.breast_cancer()), target="diagnosis")
    trained = ingest(
        empty_store,
        settings,
        {"dataset": "cancer", "model": "gradient_boosting", "test_size": 0.25},
    )
    scored = infer(empty_store, settings, {"dataset": "cancer", "run_id": trained["run_id"]})
    assert scored["roc_auc"] > 0.95
    runs = RunLog.from_settings(empty_store, settings).of_dataset("cancer")
    predictions = runs.predictions(trained["run_id"])
    assert predictions.roc is not None
    assert len(predictions.roc) == 1
    assert predictions.roc[0]["label"] == "malignant"
    truth = [int(v) for v in predictions.y_true]
    # stratified: each class keeps its share (212 malignant of 569) in the test split
    assert truth.count(1) == round(212 * 143 / 569)


def test_a_regression_run_with_missing_values_and_categories(empty_store, settings):
    add(empty_store, "homes", datasets.csv(datasets.mixed()), target="price")
    for kind in ("linear", "ridge", "gradient_boosting"):
        trained = ingest(empty_store, settings, {"dataset": "homes", "model": kind})
        scored = infer(empty_store, settings, {"dataset": "homes", "run_id": trained["run_id"]})
        assert scored["r2"] > 0.8, (kind, scored)
    manifest = (
        RunLog.from_settings(empty_store, settings).of_dataset("homes").manifest(trained["run_id"])
    )
    assert manifest.encoding is not None
    encoded = {c.name: c for c in manifest.encoding.columns}
    assert encoded["rooms"].fill == 3.0  # the training split's median
    assert set(manifest.features) >= {"city=Lyon", "city=Nantes", "city=Paris", "garden"}
    assert "note" not in encoded


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        ({"dataset": "iris", "model": "linear"}, "not a classification model"),
        ({"dataset": "iris", "feature_set": "seed"}, "feature_set is housing's"),
        ({"dataset": "iris", "features": ["nope"]}, "'nope' is not a column"),
        ({"dataset": "iris", "features": ["species"]}, "cannot be a feature"),
        ({"dataset": "iris", "test_size": 0.01}, "cannot both hold all 3 classes"),
        ({"dataset": "iris", "test_size": 0.005}, "are too few for test_size"),
        ({"features": ["area"]}, "housing takes feature_set"),
        ({"model": "logistic"}, "not a regression model"),
        ({"dataset": "Iris"}, "dataset name 'Iris' is invalid"),
    ],
)
def test_bad_run_parameters_are_refused_with_the_reason(empty_store, settings, event, needle):
    add(empty_store, "iris", datasets.csv(datasets.iris()), target="species")
    with pytest.raises(InvalidRequestError, match=needle):
        ingest(empty_store, settings, event)


def test_an_unknown_dataset_is_not_found(empty_store, settings):
    with pytest.raises(NotFoundError, match="no dataset named 'ghost'"):
        ingest(empty_store, settings, {"dataset": "ghost"})


# -- what an adversarial review found ---------------------------------------------------------
def test_a_corrupt_document_is_listed_as_such_and_replaced_on_purpose(empty_store):
    add(empty_store, "iris", datasets.csv(datasets.iris()), target="species")
    add(empty_store, "homes", datasets.csv(datasets.mixed()), target="price")
    bucket = empty_store.data_bucket
    empty_store.put_bytes(bucket, registry.document_key("homes"), b"garbage{", "application/json")
    found = {d.name: d for d in registry.documents(empty_store)}
    assert isinstance(found["iris"], registry.DatasetDocument)
    assert isinstance(found["homes"], registry.Unreadable)
    assert "not a valid DatasetDocument" in found["homes"].error
    with pytest.raises(CorruptStateError):
        add(empty_store, "homes", datasets.csv(datasets.mixed()))
    rebuilt = add(empty_store, "homes", datasets.csv(datasets.mixed()), replace_schema=True,
                  target="price")  # fmt: skip
    assert rebuilt.document.rows == 200
    assert isinstance(registry.get(empty_store, "homes"), registry.DatasetDocument)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: {**d, "target": "zzz"},
        lambda d: {**d, "name": "other"},
        lambda d: {**d, "sha256": "../../x"},
        lambda d: {**d, "task": "regression"},
        lambda d: {**d, "schema": {**d["schema"], "columns": d["schema"]["columns"] * 2}},
        lambda d: {**d, "schema": {**d["schema"], "labels": []}},
    ],
)
def test_a_tampered_document_is_corrupt_state_not_a_crash(empty_store, settings, tamper):
    import json

    add(empty_store, "iris", datasets.csv(datasets.iris()), target="species")
    key = registry.document_key("iris")
    document = json.loads(empty_store.get_bytes(empty_store.data_bucket, key))
    empty_store.put_bytes(
        empty_store.data_bucket, key, json.dumps(tamper(document)).encode(), "application/json"
    )
    with pytest.raises(CorruptStateError):
        registry.get(empty_store, "iris")
    with pytest.raises(CorruptStateError):
        ingest(empty_store, settings, {"dataset": "iris"})


def test_a_version_whose_archive_was_replaced_is_refused_not_acknowledged(empty_store):
    first = add(empty_store, "iris", datasets.csv(datasets.iris()), target="species").document
    key = registry.version_key("iris", first.sha256)
    empty_store.put_bytes(empty_store.data_bucket, key, b"other bytes", "text/csv")
    with pytest.raises(IntegrityError):
        add(empty_store, "iris", datasets.csv(datasets.iris()))
    empty_store.delete(empty_store.data_bucket, key)
    add(empty_store, "iris", datasets.csv(datasets.iris()))  # missing: written again
    assert registry.read_version(empty_store, "iris", first.sha256, MAX_BYTES) == datasets.csv(
        datasets.iris()
    )


def test_usual_missing_markers_are_missing_cells(empty_store):
    frame = datasets.mixed().astype(object)
    frame.loc[1, "rooms"] = "NA"
    frame.loc[2, "size"] = "null"
    frame.loc[3, "city"] = "N/A"
    document = add(empty_store, "homes", datasets.csv(frame), target="price").document
    kinds = {c.name: (c.kind, c.missing) for c in document.schema.columns}
    assert kinds["rooms"][0] == "integer"
    assert kinds["size"] == ("number", 1)
    assert "N/A" not in (document.schema.column("city").levels or [])


def test_a_numeric_target_with_a_typo_is_named_not_turned_into_classes(empty_store):
    frame = datasets.mixed().astype(object)
    frame.loc[4, "price"] = "12o.5"
    with pytest.raises(DatasetValidationError, match=r"holds numbers except at line 6"):
        add(empty_store, "homes", datasets.csv(frame), target="price")
    frame.loc[4, "price"] = "1e308"
    with pytest.raises(DatasetValidationError, match="too large values"):
        add(empty_store, "homes", datasets.csv(frame), target="price")


def test_impossible_runs_are_refused_before_anything_is_recorded(empty_store, settings):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    wide = pd.DataFrame(
        {f"c{i}": rng.choice([f"l{j}" for j in range(40)], 120) for i in range(30)}
    ).assign(y=rng.normal(size=120))
    add(empty_store, "wide", datasets.csv(wide), target="y")
    for event, needle in (
        ({"dataset": "wide"}, "model inputs"),
        ({"dataset": "wide", "features": ["c0"], "test_size": 0.999}, "too few for test_size"),
    ):
        with pytest.raises(InvalidRequestError, match=needle):
            ingest(empty_store, settings, event)
    assert not empty_store.list_objects(empty_store.data_bucket, "datasets/wide/runs/")
    trained = ingest(empty_store, settings, {"dataset": "wide", "features": ["c0", "c1"]})
    assert trained["n_train"] == 96


def test_inference_of_an_unknown_dataset_is_not_found(empty_store, settings):
    with pytest.raises(NotFoundError, match="no dataset named 'nope'"):
        infer(empty_store, settings, {"dataset": "nope"})


def test_the_housing_history_lists_only_housing_files(store, dataset_bytes):
    """A registered dataset's files (``datasets/<name>/...``) are not versions of housing.csv."""
    from local_ml_flow import datasets as housing

    housing.accept(store, dataset_bytes, max_bytes=MAX_BYTES, max_rows=100_000)
    before = housing.history(store)
    assert len(before) == 1
    add(store, "iris", datasets.csv(datasets.iris()), target="species")
    assert housing.history(store) == before
