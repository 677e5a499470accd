"""The current dataset as users see it: a page of its rows, and replacing it by an upload."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from local_ml_flow.errors import DatasetValidationError, KeyNotFoundError
from local_ml_flow.ml import dataset
from local_ml_flow.storage import ArtifactStore, sha256, utc_now

VERSIONS_PREFIX = "datasets/"


@dataclass(frozen=True)
class Page:
    """Rows ``offset..offset+limit`` of a CSV, its header and its number of rows."""

    header: list[str]
    rows: list[list[str]]
    row_count: int


@dataclass(frozen=True)
class Accepted:
    """An upload that became the current dataset."""

    row_count: int
    sha256: str
    previous_version_key: str | None


def page(raw: bytes, offset: int, limit: int) -> Page:
    """Header, rows offset..offset+limit and the number of rows, in one streaming pass."""
    try:
        reader = csv.reader(io.StringIO(raw.decode("utf-8-sig")))
        header = next(reader, [])
        rows: list[list[str]] = []
        count = 0
        for row in reader:
            if not row:
                continue  # blank line, as csv.DictReader skips it
            if offset <= count < offset + limit:
                rows.append(row)
            count += 1
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetValidationError([f"stored dataset cannot be read: {exc}"]) from None
    return Page(header, rows, count)


def accept(store: ArtifactStore, data: bytes, *, max_bytes: int, max_rows: int) -> Accepted:
    """Validate an uploaded CSV, keep the current dataset under a versioned key, replace it."""
    clean = dataset.load_dataset(data, max_bytes=max_bytes, max_rows=max_rows)
    previous: str | None = None
    try:
        old: bytes | None = store.get_dataset()
    except KeyNotFoundError:
        old = None
    if old is not None:
        stamp = utc_now().replace(":", "").replace("-", "")
        stem = store.dataset_key.rsplit(".", 1)[0]
        previous = f"{VERSIONS_PREFIX}{stem}-{stamp}-{sha256(old)[:12]}.csv"
        store.put_bytes(store.data_bucket, previous, old, "text/csv")
    digest = store.put_bytes(store.data_bucket, store.dataset_key, data, "text/csv")
    return Accepted(len(clean), digest, previous)
