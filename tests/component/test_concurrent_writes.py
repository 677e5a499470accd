"""Writes that run concurrently keep every guarantee: a cut one fails the run, nothing moves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from local_ml_flow import aws, bootstrap, handlers
from local_ml_flow.errors import (
    DatasetTooLargeError,
    FunctionFailedError,
    LocalMlFlowError,
    StorageError,
)
from local_ml_flow.events import RunOptions
from local_ml_flow.invoke import LocalInvoker
from local_ml_flow.runlog import RunLog
from local_ml_flow.runner import run_pipeline
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore, gather, make_store
from tests.faults import FaultProxy

ARTIFACTS = (
    "test_split.npz",
    "model.skops",
    "x_test.joblib",
    "y_test.joblib",
    "model.joblib",
)
ROOT_WRITES = ("model.joblib", "x_test.joblib", "y_test.joblib", "score.txt")


@pytest.fixture
def proxied(
    moto_endpoint: str, settings: Settings, dataset_bytes: bytes
) -> Iterator[tuple[FaultProxy, ArtifactStore]]:
    """A store whose S3 requests go through a fault proxy, with a first run current."""
    s3 = aws.client("s3", endpoint_url=moto_endpoint)
    for bucket in (settings.data_bucket, settings.models_bucket):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=settings.data_bucket, Key="housing.csv", Body=dataset_bytes)
    proxy = FaultProxy(moto_endpoint)
    store = make_store(settings, endpoint_url=proxy.url)
    handlers.ingestion({"run_id": "first"}, store=store, settings=settings)
    handlers.inference({}, store=store, settings=settings)
    try:
        yield proxy, store
    finally:
        proxy.stop()


def assert_first_is_current(store: ArtifactStore) -> None:
    runs = RunLog(store)
    pointer = runs.latest()
    assert pointer is not None
    assert pointer.run_id == "first"
    assert set(runs.root_runs().values()) == {"first"}


def ends_with(name: str, run_id: str | None = None) -> Callable[[str, str], bool]:
    suffix = f"/runs/{run_id}/{name}" if run_id else f"/{name}"
    return lambda method, path: path.split("?")[0].endswith(suffix)


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_a_cut_artifact_write_fails_the_run_with_no_manifest(proxied, settings, artifact):
    proxy, store = proxied
    proxy.cut_write(0, ends_with(artifact, "cut"))
    with pytest.raises(StorageError):
        handlers.ingestion({"run_id": "cut"}, store=store, settings=settings)
    proxy.heal()
    assert proxy.cut, f"the write of {artifact} was never made"
    files = {o.key.rsplit("/", 1)[-1] for o in store.list_objects(store.data_bucket, "runs/cut/")}
    files |= {o.key.rsplit("/", 1)[-1] for o in store.list_objects(store.models_bucket, "runs/")}
    assert "manifest.json" not in files
    # the other writes had all finished when ingestion answered: none is still in flight
    assert set(ARTIFACTS) - {artifact} <= files
    record = RunLog(store).record("cut")
    assert (record["status"], record["error"]["stage"]) == ("failed", "ingestion")
    assert_first_is_current(store)


@pytest.mark.parametrize("document", ["metrics.json", "predictions.json"])
def test_a_cut_scoring_write_fails_the_run_and_nothing_is_promoted(proxied, settings, document):
    proxy, store = proxied
    invoker = LocalInvoker(bootstrap.local_functions(settings, store))
    proxy.cut_write(0, ends_with(document))
    with pytest.raises(FunctionFailedError) as info:
        run_pipeline(invoker, RunLog(store), settings, RunOptions())
    proxy.heal()
    assert proxy.cut
    assert info.value.details["stage"] == "inference"
    record = RunLog(store).record(info.value.details["run_id"])
    assert (record["status"], record["current"]) == ("failed", False)
    assert_first_is_current(store)


@pytest.mark.parametrize("root", ROOT_WRITES)
def test_a_cut_root_copy_fails_the_promotion_and_the_roots_are_repaired(proxied, settings, root):
    proxy, store = proxied

    def bucket(key: str) -> str:
        return settings.models_bucket if key == "model.joblib" else settings.data_bucket

    invoker = LocalInvoker(bootstrap.local_functions(settings, store))
    proxy.cut_write(0, lambda method, path: path.split("?")[0] == f"/{bucket(root)}/{root}")
    with pytest.raises(LocalMlFlowError) as info:
        run_pipeline(invoker, RunLog(store), settings, RunOptions())
    proxy.heal()
    assert proxy.cut
    assert info.value.details["stage"] == "promotion"
    record = RunLog(store).record(info.value.details["run_id"])
    assert (record["status"], record["current"]) == ("failed", False)
    assert_first_is_current(store)
    runs = RunLog(store)
    current = runs.latest()
    assert current is not None
    scored = runs.metrics(current.run_id)
    assert scored is not None
    assert store.get_text(settings.data_bucket, "score.txt") == scored.score


def test_a_cut_promotion_log_write_keeps_the_promotion_and_the_entry_comes_back(proxied, settings):
    """The pointer is the commit point: a promotion whose log entry cannot be written stands;
    the log rebuilds the entry from the pointer, and the next promoter writes it."""
    proxy, store = proxied
    invoker = LocalInvoker(bootstrap.local_functions(settings, store))
    proxy.cut_write(0, lambda method, path: "/promotions/" in path)
    cut = run_pipeline(invoker, RunLog(store), settings, RunOptions(promotion="always"), by="cli")
    proxy.heal()
    assert proxy.cut
    assert cut["promoted"] is True
    log = RunLog(store).promotions()
    assert [(e.run_id, e.previous_run_id, e.by, e.recorded) for e in log] == [
        (cut["run_id"], "first", "cli", False),  # rebuilt from the pointer
        ("first", None, "lambda", True),  # the ingestion function's policy, invoked directly
    ]
    assert log[0].reason == "promotion policy always: a new run replaces the current one"
    assert log[1].reason == "promotion policy better: the first run to become current"
    # another process promotes next: it writes the replaced promotion's entry too
    other = make_store(settings, endpoint_url=proxy.url)
    after = run_pipeline(invoker, RunLog(other), settings, RunOptions(promotion="always"))
    log = RunLog(other).promotions()
    assert [(e.run_id, e.previous_run_id, e.recorded) for e in log] == [
        (after["run_id"], cut["run_id"], True),
        (cut["run_id"], "first", True),
        ("first", None, True),
    ]
    assert len(store.list_objects(settings.data_bucket, "promotions/")) == 3


def test_gather_waits_for_every_call_and_raises_the_first_failure() -> None:
    finished: list[str] = []
    started = threading.Barrier(3, timeout=5)  # the three run at once

    def slow(name: str, fail: bool = False) -> str:
        started.wait()
        time.sleep(0.05 if fail else 0.2)
        finished.append(name)
        if fail:
            raise ValueError(name)
        return name

    with pytest.raises(ValueError, match=r"^b$"):
        gather(lambda: slow("a"), lambda: slow("b", True), lambda: slow("c", True))
    assert sorted(finished) == ["a", "b", "c"]  # nothing left running when it raised
    assert gather(lambda: 1, lambda: "two") == [1, "two"]


def test_every_dataset_a_run_used_is_archived_and_only_once(proxied, settings, dataset_bytes):
    proxy, store = proxied
    other = b"".join(dataset_bytes.splitlines(keepends=True)[:-1])  # one row fewer
    store.put_bytes(store.data_bucket, "housing.csv", other, "text/csv")
    archive_writes = lambda method, path: "/datasets/" in path  # noqa: E731
    proxy.cut_write(10**6, archive_writes)  # counts them, cuts none
    handlers.ingestion({"run_id": "second"}, store=store, settings=settings)
    assert len(proxy.writes) == 1  # a new dataset: archived
    archived = {o.key for o in store.list_objects(store.data_bucket, "datasets/")}
    assert len(archived) == 2  # the first run's dataset and this one
    proxy.cut_write(10**6, archive_writes)
    handlers.ingestion({"run_id": "third"}, store=store, settings=settings)
    proxy.heal()
    assert proxy.writes == []  # the same dataset: kept already
    assert {o.key for o in store.list_objects(store.data_bucket, "datasets/")} == archived


def test_a_dataset_over_the_byte_limit_is_refused_from_its_size(store, settings, dataset_bytes):
    limited = settings.model_copy(update={"max_dataset_bytes": len(dataset_bytes) - 1})
    with pytest.raises(DatasetTooLargeError) as info:
        handlers.ingestion({"run_id": "big"}, store=store, settings=limited)
    assert info.value.details == [
        f"dataset s3://{settings.data_bucket}/housing.csv is {len(dataset_bytes)} bytes, above"
        f" the limit of {len(dataset_bytes) - 1} bytes (LMF_MAX_DATASET_BYTES): use a smaller"
        " dataset or raise the limit (and the function's memory with it)"
    ]
    record = RunLog(store).record("big")
    assert (record["status"], record["error"]["type"]) == ("failed", "DatasetTooLargeError")
    assert store.list_objects(store.data_bucket, "datasets/") == []  # nothing archived
