"""Component fixtures: fresh buckets on the real moto server, settings, a store over them."""

from __future__ import annotations

import uuid

import pytest

from local_ml_flow import aws
from local_ml_flow.runindex import is_index_key
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore, make_store


@pytest.fixture
def settings() -> Settings:
    """Settings with buckets of their own, so tests sharing the moto server stay isolated."""
    suffix = uuid.uuid4().hex[:10]
    return Settings(
        _env_file=None,
        data_bucket=f"lmf-data-{suffix}",
        models_bucket=f"lmf-models-{suffix}",
    )


@pytest.fixture
def empty_store(moto_endpoint: str, settings: Settings) -> ArtifactStore:
    """A store whose two buckets exist and are empty."""
    s3 = aws.client("s3", endpoint_url=moto_endpoint)
    for bucket in (settings.data_bucket, settings.models_bucket):
        s3.create_bucket(Bucket=bucket)
    return make_store(settings, endpoint_url=moto_endpoint)


@pytest.fixture
def store(empty_store: ArtifactStore, dataset_bytes: bytes) -> ArtifactStore:
    """A store with the reference housing.csv uploaded."""
    empty_store.put_bytes(empty_store.data_bucket, "housing.csv", dataset_bytes, "text/csv")
    return empty_store


def snapshot(store: ArtifactStore) -> dict[str, bytes]:
    """Every object of both buckets, key -> bytes (but the run index's: derived data, it
    follows the runs)."""
    out: dict[str, bytes] = {}
    for bucket in (store.data_bucket, store.models_bucket):
        for obj in store.list_objects(bucket):
            if is_index_key(obj.key):
                continue
            out[f"{bucket}/{obj.key}"] = store.get_bytes(bucket, obj.key)
    return out


@pytest.fixture
def lambda_context() -> object:
    """A minimal Lambda context (the handlers do not use it)."""

    class Context:
        function_name = "test"
        aws_request_id = "test-request"
        memory_limit_in_mb = 1024

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 300_000

    return Context()
