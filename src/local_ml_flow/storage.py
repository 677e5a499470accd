"""ArtifactStore: typed get/put over an S3 client, sha256 checks; ``make_store`` builds one.

Only this module talks to S3. Which keys mean what is the run log's business (``runlog.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from local_ml_flow import aws
from local_ml_flow.errors import (
    AlreadyExistsError,
    ConcurrentUpdateError,
    CorruptStateError,
    DatasetTooLargeError,
    IntegrityError,
    KeyNotFoundError,
    NonFiniteMetricsError,
    StorageError,
)
from local_ml_flow.settings import Settings, command

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Independent S3 requests overlap on a small pool shared by the process (fewer than the
# client's 10 pooled connections). Its tasks are single store calls: they never wait on
# the pool themselves, so it cannot deadlock.
_WORKERS = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
T = TypeVar("T")


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="lmf-s3")
        return _pool


def background(call: Callable[[], T]) -> Future[T]:
    """Start ``call`` (one store call) on the shared pool; the caller must collect its
    result (or wait for it) before it answers."""
    return _executor().submit(call)


def gather(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent store calls at once; their results in order.

    Every call has finished when this returns or raises (no write is left in flight); the
    first failure in argument order is raised.
    """
    if len(calls) <= 1:
        return [call() for call in calls]
    futures = [_executor().submit(call) for call in calls]
    results: list[Any] = []
    error: BaseException | None = None
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:  # collected, raised once all calls are done
            error = error or exc
            results.append(None)
    if error is not None:
        raise error
    return results


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def key_stamp(at: str) -> str:
    """A ``utc_now`` timestamp for a key: ``2026-12-03T16:05:12.123456Z`` as
    ``20261203T160512.123456Z`` (fixed width: keys sort as the times do)."""
    when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return when.strftime("%Y%m%dT%H%M%S.%fZ")


Doc = TypeVar("Doc", bound=BaseModel)


@dataclass(frozen=True)
class Blob:
    """An object's bytes, ETag and user metadata."""

    data: bytes
    etag: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class Head:
    """An object's ETag, size and user metadata."""

    etag: str
    size: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class StoredObject:
    """A listed object."""

    bucket: str
    key: str
    size: int
    last_modified: str
    etag: str = ""


class ArtifactStore:
    """Both buckets of local-ml-flow behind typed methods; S3 errors become typed errors."""

    def __init__(
        self, s3: S3Client, *, data_bucket: str, models_bucket: str, dataset_key: str
    ) -> None:
        self.s3 = s3
        self.data_bucket = data_bucket
        self.models_bucket = models_bucket
        self.dataset_key = dataset_key
        # Keys of write-once objects (dataset archives) this store saw written or present:
        # they are never rewritten nor deleted, so they need not be looked up again.
        self.written_once: set[tuple[str, str]] = set()

    def _target(self, bucket: str, key: str | None = None) -> aws.Target:
        return aws.Target("s3", bucket=bucket, key=key)

    # -- raw bytes ---------------------------------------------------------------------
    def get_bytes(self, bucket: str, key: str) -> bytes:
        return self.read(bucket, key).data

    def read(self, bucket: str, key: str) -> Blob:
        """An object's bytes with its ETag and user metadata."""
        target = self._target(bucket, key)
        with aws.translated(target):
            response = self.s3.get_object(Bucket=bucket, Key=key)
            try:
                data = response["Body"].read()
            except aws.CONNECTION_ERRORS:
                self._still_answers(target)
                raise
        return Blob(data, str(response.get("ETag", "")), dict(response.get("Metadata", {})))

    def _still_answers(self, target: aws.Target) -> None:
        """After an object's body broke off: CorruptStateError if S3 still answers (the
        object's bytes are shorter than recorded: its file was changed or damaged), else
        nothing (the endpoint went away; the caller's error stands)."""
        try:
            self.s3.head_bucket(Bucket=str(target.bucket))
        except Exception:  # any failure: the endpoint is gone, as reported
            return
        raise CorruptStateError(
            f"{target} is shorter than its recorded size: its file in the state directory was"
            f" changed or damaged (`{command()} doctor` checks and repairs a stopped state)"
        )

    def head(self, bucket: str, key: str) -> Head | None:
        """An object's ETag, size and user metadata; None if it does not exist."""
        try:
            with aws.translated(self._target(bucket, key)):
                response = self.s3.head_object(Bucket=bucket, Key=key)
        except KeyNotFoundError:
            return None
        return Head(
            str(response.get("ETag", "")),
            int(response.get("ContentLength", 0)),
            dict(response.get("Metadata", {})),
        )

    def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        *,
        once: bool = False,
        if_match: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Store bytes; returns their sha256 (also kept as object metadata).

        ``once``: write only if the key does not exist yet (an atomic conditional write),
        else AlreadyExistsError. ``if_match``: write only if the object still has this ETag
        (compare-and-swap), else ConcurrentUpdateError.
        """
        digest = sha256(data)
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if once else {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        try:
            with aws.translated(self._target(bucket, key)):
                self.s3.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=data,
                    ContentType=content_type,
                    Metadata={**(metadata or {}), "sha256": digest},
                    **extra,
                )
        except (AlreadyExistsError, KeyNotFoundError) as exc:
            if if_match is None:
                raise
            raise ConcurrentUpdateError(f"s3://{bucket}/{key} changed meanwhile") from exc
        return digest

    def exists(self, bucket: str, key: str) -> bool:
        return self.head(bucket, key) is not None

    def copy(
        self,
        bucket: str,
        source_key: str,
        target_key: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Server-side copy; ``metadata`` replaces the source's user metadata."""
        extra: dict[str, Any] = {}
        if metadata is not None:
            extra = {"Metadata": dict(metadata), "MetadataDirective": "REPLACE"}
        with aws.translated(self._target(bucket, source_key)):
            self.s3.copy_object(
                Bucket=bucket,
                Key=target_key,
                CopySource={"Bucket": bucket, "Key": source_key},
                **extra,
            )

    def delete(self, bucket: str, key: str) -> None:
        with aws.translated(self._target(bucket, key)):
            self.s3.delete_object(Bucket=bucket, Key=key)

    def purge(
        self, bucket: str, prefix: str, *, exact: bool = False, keep: str | None = None
    ) -> tuple[int, int]:
        """Delete every version (and delete marker) of the objects under ``prefix`` (only the
        key ``prefix`` itself when ``exact``; never the key ``keep``), so that their bytes are
        freed in a versioned bucket too; returns how many objects (current versions) and bytes
        (every version) went. One listing, then batches of 1,000 keys per request."""
        doomed: list[dict[str, str]] = []
        objects = size = 0
        with aws.translated(self._target(bucket, prefix)):
            paginator = self.s3.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if (exact and entry["Key"] != prefix) or entry["Key"] == keep:
                        continue
                    doomed.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
                    size += int(entry.get("Size", 0))  # type: ignore[call-overload]
                    objects += bool(entry.get("IsLatest")) and "Size" in entry
            for start in range(0, len(doomed), 1000):
                batch = doomed[start : start + 1000]
                answer = self.s3.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": batch, "Quiet": True},  # type: ignore[typeddict-item]
                )
                errors = answer.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise StorageError(
                        f"could not delete s3://{bucket}/{first.get('Key')}:"
                        f" {first.get('Code')}: {first.get('Message')}"
                        f" ({len(errors)} of {len(batch)} failed)"
                    )
        return objects, size

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
                            etag=str(obj.get("ETag", "")),
                        )
                    )
        return out

    def list_prefixes(self, bucket: str, prefix: str) -> list[str]:
        """The "folders" right under ``prefix`` (common prefixes with delimiter ``/``)."""
        out: list[str] = []
        with aws.translated(self._target(bucket)):
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                out.extend(p["Prefix"] for p in page.get("CommonPrefixes", []) if "Prefix" in p)
        return out

    def list_buckets(self) -> list[str]:
        with aws.translated(self._target("*")):
            return [b["Name"] for b in self.s3.list_buckets().get("Buckets", [])]

    # -- documents ---------------------------------------------------------------------
    def get_json(self, bucket: str, key: str) -> Any:
        data = self.get_bytes(bucket, key)
        try:
            return json.loads(data)
        except ValueError:
            raise CorruptStateError(f"s3://{bucket}/{key} is not valid JSON") from None

    def put_json(
        self,
        bucket: str,
        key: str,
        value: Any,
        *,
        once: bool = False,
        if_match: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Write a JSON document; NaN and Infinity are refused (they are not JSON)."""
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        try:
            data = json.dumps(value, indent=2, sort_keys=True, allow_nan=False).encode()
        except ValueError:
            raise NonFiniteMetricsError(
                f"refusing to write s3://{bucket}/{key}: it holds NaN or Infinity"
            ) from None
        return self.put_bytes(
            bucket,
            key,
            data,
            "application/json",
            once=once,
            if_match=if_match,
            metadata=metadata,
        )

    def get_text(self, bucket: str, key: str) -> str:
        data = self.get_bytes(bucket, key)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptStateError(f"s3://{bucket}/{key} is not UTF-8 text") from None

    def put_text(self, bucket: str, key: str, text: str, **kwargs: Any) -> str:
        return self.put_bytes(bucket, key, text.encode(), "text/plain; charset=utf-8", **kwargs)

    # -- artifacts: written in safe formats, loaded only from those --------------------
    def _verified(self, bucket: str, key: str, expected_sha256: str) -> bytes:
        return verified(self.get_bytes(bucket, key), f"s3://{bucket}/{key}", expected_sha256)

    def put_model(self, bucket: str, key: str, model: Any) -> str:
        """A fitted model in skops' format (no pickle); returns the sha256 stored."""
        return self.put_bytes(bucket, key, model_to_bytes(model), "application/zip")

    def get_model(self, bucket: str, key: str, expected_sha256: str, trusted: Sequence[str]) -> Any:
        """Load a skops model whose bytes match ``expected_sha256``, creating no type outside
        skops' defaults and ``trusted`` (which the caller fixes in code)."""
        data = self._verified(bucket, key, expected_sha256)
        return model_from_bytes(data, f"s3://{bucket}/{key}", trusted)

    def put_array(self, bucket: str, key: str, array: np.ndarray) -> str:
        """A numeric array in NumPy's .npy format (no pickle); returns the sha256 stored."""
        return self.put_bytes(bucket, key, array_bytes(array), "application/octet-stream")

    def get_array(self, bucket: str, key: str, expected_sha256: str) -> np.ndarray:
        """Load a .npy array whose bytes match ``expected_sha256``; object arrays refused."""
        data = self._verified(bucket, key, expected_sha256)
        return array_from_bytes(data, f"s3://{bucket}/{key}")

    def put_joblib(self, bucket: str, key: str, value: Any) -> str:
        """A joblib (pickle) copy for the original project's users; this project never loads
        one back."""
        import joblib  # only ingestion writes these

        buffer = io.BytesIO()
        joblib.dump(value, buffer)
        return self.put_bytes(bucket, key, buffer.getvalue(), "application/octet-stream")

    # -- reading in pieces (dataset pages) --------------------------------------------
    def etag(self, bucket: str, key: str) -> str:
        """The object's current ETag (a HEAD); KeyNotFoundError if it does not exist."""
        head = self.head(bucket, key)
        if head is None:
            raise KeyNotFoundError(f"s3://{bucket}/{key} does not exist")
        return head.etag

    def stream(
        self, bucket: str, key: str, chunk_bytes: int = 1 << 20
    ) -> tuple[str, Iterator[bytes]]:
        """The object's ETag and its bytes in chunks, read as they are consumed."""
        with aws.translated(self._target(bucket, key)):
            response = self.s3.get_object(Bucket=bucket, Key=key)

        def chunks() -> Iterator[bytes]:
            with aws.translated(self._target(bucket, key)):
                yield from response["Body"].iter_chunks(chunk_bytes)

        return str(response["ETag"]), chunks()

    def get_range(self, bucket: str, key: str, start: int, end: int, *, etag: str) -> bytes | None:
        """Bytes ``start..end`` (inclusive) of the object if its ETag is still ``etag``, else
        None (it was replaced)."""
        try:
            with aws.translated(self._target(bucket, key)):
                response = self.s3.get_object(
                    Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", IfMatch=etag
                )
                return response["Body"].read()
        except AlreadyExistsError:  # 412: If-Match did not hold
            return None

    # -- dataset -----------------------------------------------------------------------
    def get_dataset(self, max_bytes: int | None = None) -> bytes:
        """The dataset's bytes; one above ``max_bytes`` is refused from its size, before its
        body is read (a too large dataset never fills the memory)."""
        bucket, key = self.data_bucket, self.dataset_key
        with aws.translated(self._target(bucket, key)):
            response = self.s3.get_object(Bucket=bucket, Key=key)
            size = int(response.get("ContentLength", 0))
            if max_bytes is None or size <= max_bytes:
                return response["Body"].read()
            response["Body"].close()
        raise DatasetTooLargeError(
            [
                f"dataset s3://{bucket}/{key} is {size} bytes, above the limit of {max_bytes}"
                " bytes (LMF_MAX_DATASET_BYTES): use a smaller dataset or raise the limit"
                " (and the function's memory with it)"
            ]
        )


def verified(data: bytes, where: str, expected_sha256: str) -> bytes:
    """``data`` if its sha256 is ``expected_sha256``; IntegrityError otherwise."""
    actual = sha256(data)
    if actual != expected_sha256:
        raise IntegrityError(
            f"{where} has sha256 {actual}, expected {expected_sha256}: refusing to load it"
        )
    return data


# Reading a .npy header (NumPy's ast.literal_eval), which skops does for every array of a
# model, is not thread-safe on CPython 3.11: two at once can fail with "SystemError: AST
# constructor recursion depth mismatch" (seen with 10 concurrent runs in one API process).
# Loads are short (about a millisecond): they take turns.
_LOADING = threading.Lock()


def model_to_bytes(model: Any) -> bytes:
    """A fitted model in skops' format (no pickle), the same bytes for the same model."""
    import skops.io

    return _canonical_skops(skops.io.dumps(model))


def model_from_bytes(data: bytes, where: str, trusted: Sequence[str]) -> Any:
    """A skops model from checked bytes, creating no type outside skops' defaults and
    ``trusted``."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        with _LOADING:
            return skops.io.loads(data, trusted=list(trusted))
    except UntrustedTypesFoundException as exc:
        raise IntegrityError(f"{where} holds types we never load: {exc}") from None
    except Exception as exc:  # a zip or schema skops cannot read
        raise CorruptStateError(f"{where} is not a readable model: {exc}") from None


def array_from_bytes(data: bytes, where: str) -> np.ndarray:
    """A numeric .npy array from checked bytes; object arrays refused (no pickle)."""
    try:
        with _LOADING:
            array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise IntegrityError(f"{where} is not a plain array: {exc}") from None
    except Exception as exc:
        raise CorruptStateError(f"{where} is not a .npy array: {exc}") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise IntegrityError(f"{where} is not a numeric array")
    return array


# The members of a run's test split file (``split_to_bytes``): each a .npy array.
SPLIT_MEMBERS = ("x.npy", "y.npy")


def array_bytes(array: np.ndarray) -> bytes:
    """A numeric array in NumPy's .npy format (float64, no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype="float64"), allow_pickle=False)
    return buffer.getvalue()


def split_to_bytes(x: np.ndarray, y: np.ndarray) -> tuple[bytes, str, str]:
    """A test split as one file (a stored zip of ``x.npy`` and ``y.npy``, the same bytes for
    the same arrays) with the sha256 of each array's .npy bytes: one object to write and
    read instead of two."""
    members = [array_bytes(x), array_bytes(y)]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for name, data in zip(SPLIT_MEMBERS, members, strict=True):
            target.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue(), sha256(members[0]), sha256(members[1])


def split_from_bytes(data: bytes, where: str) -> tuple[bytes, bytes]:
    """The .npy bytes of ``x`` and ``y`` in a test split file whose own bytes were checked
    (each is checked and loaded by the caller, like a single .npy file)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as source:
            if sorted(source.namelist()) != sorted(SPLIT_MEMBERS):
                raise CorruptStateError(f"{where} does not hold exactly {SPLIT_MEMBERS}")
            x, y = (source.read(name) for name in SPLIT_MEMBERS)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CorruptStateError(f"{where} is not a test split file: {exc}") from None
    return x, y


def _canonical_skops(data: bytes) -> bytes:
    """skops' archive with the same bytes for the same model: object ids and array file names
    numbered in document order, entries sorted, fixed timestamps (so a model's sha256 is
    reproducible, as joblib's is)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("__id__"), int):
                node["__id__"] = ids.setdefault(node["__id__"], len(ids))
            if isinstance(node.get("file"), str) and node["file"] in source.namelist():
                node["file"] = files.setdefault(node["file"], f"{len(files)}.npy")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    entries = {new: source.read(old) for old, new in files.items()}
    entries["schema.json"] = json.dumps(schema, indent=2).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, entries[name])
    return out.getvalue()


def parse_document(data: bytes, kind: type[Doc], where: str) -> Doc:
    """``data`` as a ``kind`` document; CorruptStateError naming ``where`` otherwise."""
    try:
        return kind.model_validate_json(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise CorruptStateError(f"{where} is not a valid {kind.__name__}: {problems}") from None


def make_store(settings: Settings, *, endpoint_url: str | None = None) -> ArtifactStore:
    """An ArtifactStore over a fresh S3 client, buckets and dataset key from settings."""
    return ArtifactStore(
        aws.client("s3", endpoint_url=endpoint_url),
        data_bucket=settings.data_bucket,
        models_bucket=settings.models_bucket,
        dataset_key=settings.dataset_key,
    )
