"""ArtifactStore: typed get/put over an S3 client, the key layout, sha256 checks.

Only this module talks to S3.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import joblib
from botocore.exceptions import BotoCoreError, ClientError

from local_ml_flow import aws
from local_ml_flow.errors import (
    AlreadyExistsError,
    EndpointUnreachableError,
    IntegrityError,
    NotFoundError,
    StorageError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Seed-compatible root keys (the original project's users look for them here).
MODEL_KEY = "model.joblib"
X_TEST_KEY = "x_test.joblib"
Y_TEST_KEY = "y_test.joblib"
SCORE_KEY = "score.txt"
LATEST_KEY = "runs/latest.json"
RUNS_PREFIX = "runs/"
DATASET_VERSIONS_PREFIX = "datasets/"

_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def run_key(run_id: str, name: str) -> str:
    """Key of a run-scoped artifact: ``runs/<run_id>/<name>``."""
    return f"{RUNS_PREFIX}{run_id}/{name}"


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

    # -- error translation -------------------------------------------------------------
    @contextmanager
    def _errors(self, bucket: str, key: str | None = None) -> Iterator[None]:
        where = f"s3://{bucket}/{key}" if key else f"bucket {bucket!r}"
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                raise NotFoundError(f"bucket {bucket!r} does not exist") from None
            if code in _MISSING_KEY_CODES:
                raise NotFoundError(f"{where} does not exist") from None
            if code == "PreconditionFailed":
                raise AlreadyExistsError(f"{where} already exists") from None
            message = exc.response.get("Error", {}).get("Message", str(exc))
            raise StorageError(f"S3 error on {where}: {code}: {message}") from None
        except aws.CONNECTION_ERRORS as exc:
            raise EndpointUnreachableError(
                f"AWS endpoint unreachable while accessing {where}: {exc}"
            ) from None
        except BotoCoreError as exc:
            raise StorageError(f"S3 error on {where}: {exc}") from None

    # -- raw bytes ---------------------------------------------------------------------
    def get_bytes(self, bucket: str, key: str) -> bytes:
        with self._errors(bucket, key):
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
        with self._errors(bucket, key):
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
            with self._errors(bucket, key):
                self.s3.head_object(Bucket=bucket, Key=key)
        except NotFoundError:
            return False
        return True

    def copy(self, bucket: str, source_key: str, target_key: str) -> None:
        with self._errors(bucket, source_key):
            self.s3.copy_object(
                Bucket=bucket, Key=target_key, CopySource={"Bucket": bucket, "Key": source_key}
            )

    def list_objects(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        out: list[StoredObject] = []
        with self._errors(bucket):
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
        with self._errors("*"):
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

    # -- reading in pieces (dataset pages) --------------------------------------------
    def etag(self, bucket: str, key: str) -> str:
        """The object's current ETag (a HEAD)."""
        with self._errors(bucket, key):
            return str(self.s3.head_object(Bucket=bucket, Key=key)["ETag"])

    def stream(
        self, bucket: str, key: str, chunk_bytes: int = 1 << 20
    ) -> tuple[str, Iterator[bytes]]:
        """The object's ETag and its bytes in chunks, read as they are consumed."""
        with self._errors(bucket, key):
            response = self.s3.get_object(Bucket=bucket, Key=key)

        def chunks() -> Iterator[bytes]:
            with self._errors(bucket, key):
                yield from response["Body"].iter_chunks(chunk_bytes)

        return str(response["ETag"]), chunks()

    def get_range(self, bucket: str, key: str, start: int, end: int, *, etag: str) -> bytes | None:
        """Bytes ``start..end`` (inclusive) of the object if its ETag is still ``etag``, else
        None (it was replaced)."""
        try:
            with self._errors(bucket, key):
                response = self.s3.get_object(
                    Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", IfMatch=etag
                )
                return response["Body"].read()
        except AlreadyExistsError:  # 412: If-Match did not hold
            return None

    # -- dataset -----------------------------------------------------------------------
    def get_dataset(self) -> bytes:
        return self.get_bytes(self.data_bucket, self.dataset_key)

    def replace_dataset(self, data: bytes) -> tuple[str, str | None]:
        """Keep the current dataset under a versioned key, then replace it.

        Returns (sha256 of the new dataset, versioned key of the previous one or None).
        """
        previous: str | None = None
        try:
            old = self.get_dataset()
        except NotFoundError:
            old = None
        if old is not None:
            stamp = utc_now().replace(":", "").replace("-", "")
            stem = self.dataset_key.rsplit(".", 1)[0]
            previous = f"{DATASET_VERSIONS_PREFIX}{stem}-{stamp}-{sha256(old)[:12]}.csv"
            self.put_bytes(self.data_bucket, previous, old, "text/csv")
        digest = self.put_bytes(self.data_bucket, self.dataset_key, data, "text/csv")
        return digest, previous
