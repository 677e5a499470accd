"""ArtifactStore on the moto server: typed errors, sha256 checks, dataset versions."""

from __future__ import annotations

import pytest

from local_ml_flow import aws, datasets
from local_ml_flow.errors import EndpointUnreachableError, IntegrityError, NotFoundError
from local_ml_flow.storage import ArtifactStore, sha256
from tests.conftest import free_port


def test_joblib_round_trip_checks_sha(empty_store):
    bucket = empty_store.data_bucket
    digest = empty_store.put_joblib(bucket, "obj.joblib", {"a": [1, 2]})
    assert empty_store.get_joblib(bucket, "obj.joblib", digest) == {"a": [1, 2]}
    with pytest.raises(IntegrityError, match="refusing to load"):
        empty_store.get_joblib(bucket, "obj.joblib", "0" * 64)


def test_missing_key_and_bucket(empty_store):
    with pytest.raises(NotFoundError, match=r"/nothing\.txt does not exist"):
        empty_store.get_text(empty_store.data_bucket, "nothing.txt")
    with pytest.raises(NotFoundError, match="bucket 'lmf-absent' does not exist"):
        empty_store.get_text("lmf-absent", "x")
    assert not empty_store.exists(empty_store.data_bucket, "nothing.txt")


def test_unreachable_endpoint(settings):
    s3 = aws.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}")
    store = ArtifactStore(s3, data_bucket="a-b-c", models_bucket="d-e-f", dataset_key="k")
    with pytest.raises(EndpointUnreachableError, match="unreachable while accessing s3://a-b-c/k"):
        store.get_dataset()


def test_accepted_dataset_keeps_the_previous_version(store, dataset_bytes):
    new = dataset_bytes.replace(b"13300000", b"13300001")
    accepted = datasets.accept(store, new, max_bytes=len(new), max_rows=1000)
    digest, previous = accepted.sha256, accepted.previous_version_key
    assert accepted.row_count == 545
    assert digest == sha256(new)
    assert previous is not None
    assert previous.startswith("datasets/housing-")
    assert store.get_bytes(store.data_bucket, previous) == dataset_bytes
    assert store.get_dataset() == new


def test_listing(store):
    store.put_text(store.models_bucket, "a/b.txt", "x")
    store.put_text(store.models_bucket, "a/c/d.txt", "y")
    assert [o.key for o in store.list_objects(store.models_bucket)] == ["a/b.txt", "a/c/d.txt"]
    assert [o.key for o in store.list_objects(store.models_bucket, "a/c/")] == ["a/c/d.txt"]
    assert store.data_bucket in store.list_buckets()
