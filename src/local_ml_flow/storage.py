"""ArtifactStore: typed get/put over an S3 client, sha256 checks; ``make_store`` builds one.

Only this module talks to S3. Which keys mean what is the run log's business (``runlog.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import joblib

from local_ml_flow import aws
from local_ml_flow.errors import IntegrityError, KeyNotFoundError, StorageError
from local_ml_flow.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class StoredObject:
    """A listed object."""

    bucket: str
    key: str
    size: int
    last_modified: str


class ArtifactStore:
    """Both buckets of local-ml-flow behind typed methods; S3 errors become typed errors."""

    def __init__(
        self, s3: S3Client, *, data_bucket: str, models_bucket: str, dataset_key: str
    ) -> None:
        self.s3 = s3
        self.data_bucket = data_bucket
        self.models_bucket = models_bucket
        self.dataset_key = dataset_key

    def _target(self, bucket: str, key: str | None = None) -> aws.Target:
        return aws.Target("s3", bucket=bucket, key=key)

    # -- raw bytes ---------------------------------------------------------------------
    def get_bytes(self, bucket: str, key: str) -> bytes:
        with aws.translated(self._target(bucket, key)):
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str, *, once: bool = False
    ) -> str:
        """Store bytes; returns their sha256 (also kept as object metadata).

        ``once``: write only if the key does not exist yet (an atomic conditional write),
        else AlreadyExistsError.
        """
        digest = sha256(data)
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if once else {}
        with aws.translated(self._target(bucket, key)):
            self.s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata={"sha256": digest},
                **extra,
            )
        return digest

    def exists(self, bucket: str, key: str) -> bool:
        try:
            with aws.translated(self._target(bucket, key)):
                self.s3.head_object(Bucket=bucket, Key=key)
        except KeyNotFoundError:
            return False
        return True

    def copy(self, bucket: str, source_key: str, target_key: str) -> None:
        with aws.translated(self._target(bucket, source_key)):
            self.s3.copy_object(
                Bucket=bucket, Key=target_key, CopySource={"Bucket": bucket, "Key": source_key}
            )

    def list_objects(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        out: list[StoredObject] = []
        with aws.translated(self._target(bucket)):
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    out.append(
                        StoredObject(
                            bucket=bucket,
                            key=obj["Key"],
                            size=int(obj.get("Size", 0)),
                            last_modified=obj["LastModified"].isoformat(),
                        )
                    )
        return out

    def list_buckets(self) -> list[str]:
        with aws.translated(self._target("*")):
            return [b["Name"] for b in self.s3.list_buckets().get("Buckets", [])]

    # -- typed helpers -----------------------------------------------------------------
    def get_json(self, bucket: str, key: str) -> Any:
        data = self.get_bytes(bucket, key)
        try:
            return json.loads(data)
        except ValueError:
            raise StorageError(f"s3://{bucket}/{key} is not valid JSON") from None

    def put_json(self, bucket: str, key: str, value: Any, *, once: bool = False) -> str:
        data = json.dumps(value, indent=2, sort_keys=True).encode()
        return self.put_bytes(bucket, key, data, "application/json", once=once)

    def get_text(self, bucket: str, key: str) -> str:
        return self.get_bytes(bucket, key).decode("utf-8")

    def put_text(self, bucket: str, key: str, text: str) -> str:
        return self.put_bytes(bucket, key, text.encode(), "text/plain; charset=utf-8")

    def put_joblib(self, bucket: str, key: str, value: Any) -> str:
        """Serialise with joblib; returns the sha256 of the bytes stored."""
        buffer = io.BytesIO()
        joblib.dump(value, buffer)
        return self.put_bytes(bucket, key, buffer.getvalue(), "application/octet-stream")

    def get_joblib(self, bucket: str, key: str, expected_sha256: str) -> Any:
        """Load a joblib artifact only if its bytes match the sha256 we recorded.

        joblib is pickle: bytes we did not write are never unpickled.
        """
        data = self.get_bytes(bucket, key)
        actual = sha256(data)
        if actual != expected_sha256:
            raise IntegrityError(
                f"s3://{bucket}/{key} has sha256 {actual}, expected {expected_sha256}:"
                " refusing to load it"
            )
        return joblib.load(io.BytesIO(data))

    # -- dataset -----------------------------------------------------------------------
    def get_dataset(self) -> bytes:
        return self.get_bytes(self.data_bucket, self.dataset_key)


def make_store(settings: Settings, *, endpoint_url: str | None = None) -> ArtifactStore:
    """An ArtifactStore over a fresh S3 client, buckets and dataset key from settings."""
    return ArtifactStore(
        aws.client("s3", endpoint_url=endpoint_url),
        data_bucket=settings.data_bucket,
        models_bucket=settings.models_bucket,
        dataset_key=settings.dataset_key,
    )
