"""ArtifactStore on the moto server: typed errors, sha256 checks, dataset versions."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from local_ml_flow import aws, datasets
from local_ml_flow.errors import (
    CorruptStateError,
    EndpointUnreachableError,
    IntegrityError,
    NotFoundError,
)
from local_ml_flow.storage import ArtifactStore, sha256
from tests.conftest import Exploit, free_port


def test_array_round_trip_checks_sha(empty_store):
    bucket = empty_store.data_bucket
    digest = empty_store.put_array(bucket, "obj.npy", np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert empty_store.get_array(bucket, "obj.npy", digest).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(IntegrityError, match="refusing to load"):
        empty_store.get_array(bucket, "obj.npy", "0" * 64)


def test_arrays_never_unpickle(empty_store, tmp_path):
    """A .npy of Python objects is a pickle: refused even with a matching sha256."""
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    np.save(buffer, np.array([Exploit(str(marker))], dtype=object), allow_pickle=True)
    bucket = empty_store.data_bucket
    digest = empty_store.put_bytes(bucket, "evil.npy", buffer.getvalue(), "x")
    with pytest.raises(IntegrityError, match="not a plain array"):
        empty_store.get_array(bucket, "evil.npy", digest)
    assert not marker.exists()


def test_models_load_only_trusted_types(empty_store, tmp_path):
    """A skops file naming a type outside the trusted list is refused, hash or not."""
    import skops.io

    marker = tmp_path / "ran"
    bucket = empty_store.models_bucket
    digest = empty_store.put_bytes(bucket, "m.skops", skops.io.dumps(Exploit(str(marker))), "x")
    with pytest.raises(IntegrityError, match="types we never load"):
        empty_store.get_model(bucket, "m.skops", digest, trusted=[])
    pickled = pickle.dumps(Exploit(str(marker)))
    digest = empty_store.put_bytes(bucket, "p.skops", pickled, "x")
    with pytest.raises(CorruptStateError, match="not a readable model"):
        empty_store.get_model(bucket, "p.skops", digest, trusted=[])
    assert not marker.exists()


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
