"""The current dataset as users see it: a page of its rows, uploads, and the archive of every
accepted dataset (write-once, keyed by sha256)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from local_ml_flow.errors import AlreadyExistsError, DatasetValidationError
from local_ml_flow.ml import dataset
from local_ml_flow.storage import ArtifactStore, sha256

VERSIONS_PREFIX = "datasets/"
_ARCHIVED = re.compile(r"-([0-9a-f]{64})\.csv\Z")


@dataclass(frozen=True)
class Accepted:
    """An upload that became the current dataset."""

    row_count: int
    sha256: str
    previous_version_key: str | None


def archive_key(store: ArtifactStore, digest: str) -> str:
    """Where a dataset with this sha256 is kept: ``datasets/housing-<sha256>.csv``."""
    stem = store.dataset_key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{VERSIONS_PREFIX}{stem}-{digest}.csv"


def archive(store: ArtifactStore, data: bytes, digest: str) -> str:
    """Keep ``data`` under its sha256 (written once; the same bytes are never uploaded twice)."""
    key = archive_key(store, digest)
    known = (store.data_bucket, key)
    if known in store.written_once:  # archived before, by this process: write-once
        return key
    if store.head(store.data_bucket, key) is None:
        with contextlib.suppress(AlreadyExistsError):  # a concurrent upload of the same bytes
            store.put_bytes(store.data_bucket, key, data, "text/csv", once=True)
    store.written_once.add(known)
    return key


def _archive_current(store: ArtifactStore) -> str | None:
    """Make sure the current dataset is archived; returns its archive key (None: no dataset)."""
    head = store.head(store.data_bucket, store.dataset_key)
    if head is None:
        return None
    digest = head.metadata.get("sha256")
    if digest is not None and store.exists(store.data_bucket, archive_key(store, digest)):
        return archive_key(store, digest)
    data = store.get_dataset()  # put there by another tool, or never archived
    return archive(store, data, sha256(data))


def check(data: bytes, *, max_bytes: int, max_rows: int) -> int:
    """The number of rows of a housing CSV a run can train on; DatasetValidationError lists
    every problem otherwise."""
    clean = dataset.load_dataset(data, max_bytes=max_bytes, max_rows=max_rows)
    problems = dataset.trainable_problems(clean)
    if problems:
        raise DatasetValidationError(problems)
    return len(clean)


def accept(store: ArtifactStore, data: bytes, *, max_bytes: int, max_rows: int) -> Accepted:
    """Validate an uploaded CSV, archive it (and the dataset it replaces), then make it current.

    Every accepted upload is archived before ``housing.csv`` moves, so concurrent uploads are
    all kept (the last one written is current).
    """
    rows = check(data, max_bytes=max_bytes, max_rows=max_rows)
    digest = sha256(data)
    archive(store, data, digest)
    previous = _archive_current(store)
    store.put_bytes(store.data_bucket, store.dataset_key, data, "text/csv")
    return Accepted(rows, digest, previous)


def use(
    store: ArtifactStore, data: bytes, *, source: str, max_bytes: int, max_rows: int
) -> tuple[str, bool]:
    """Make a dataset file the user named the current one, unless it already is (``accept``:
    validated, archived, the one it replaces archived too); one line saying what was done,
    and whether the current dataset changed.

    A refused file changes nothing: DatasetValidationError says why and what stays current.
    """
    digest = sha256(data)
    where = f"s3://{store.data_bucket}/{store.dataset_key}"
    head = store.head(store.data_bucket, store.dataset_key)
    stored = head.metadata.get("sha256") if head is not None else None
    if stored == digest:
        return f"dataset {source} is the current {where} already (sha256 {digest[:12]})", False
    try:
        accepted = accept(store, data, max_bytes=max_bytes, max_rows=max_rows)
    except DatasetValidationError as exc:
        staying = (
            f"{where} (sha256 {(stored or 'unknown')[:12]}) stays current"
            if head is not None
            else "nothing was stored"
        )
        exc.message = (
            f"dataset {source} was refused and {staying}: {exc.message}. Fix the file, or"
            " start without --dataset to use what is stored"
        )
        raise
    note = f"dataset {source} ({accepted.row_count} rows, sha256 {digest[:12]}) is now {where}"
    if accepted.previous_version_key is not None:
        note += f"; the one it replaced is kept at s3://{store.data_bucket}/"
        note += accepted.previous_version_key
    return note, True


@dataclass(frozen=True)
class Archived:
    """A dataset kept in the archive."""

    key: str
    sha256: str | None
    size: int
    archived_at: str
    current: bool


def history(store: ArtifactStore) -> list[Archived]:
    """Every archived dataset, newest first; ``current`` marks the one in use. Registered
    datasets keep their own files under ``datasets/<name>/``: they are not this history."""
    head = store.head(store.data_bucket, store.dataset_key)
    current = head.metadata.get("sha256") if head is not None else None
    found = []
    for obj in store.list_objects(store.data_bucket, VERSIONS_PREFIX):
        if "/" in obj.key[len(VERSIONS_PREFIX) :]:
            continue
        match = _ARCHIVED.search(obj.key)
        digest = match.group(1) if match else None
        found.append(
            Archived(
                obj.key,
                digest,
                obj.size,
                obj.last_modified,
                digest is not None and digest == current,
            )
        )
    found.sort(key=lambda a: (a.archived_at, a.key), reverse=True)
    return found
