"""Pages of the stored dataset without reading the whole object per request.

One streaming pass builds an index of the CSV (header, row count, the byte offset of every
``STRIDE``-th row), kept in memory under the object's ETag; a page is then one range read
guarded by ``If-Match`` (a replaced dataset is re-indexed once, never served half-old). The
last few ranges read are kept too: asking for them again costs one HEAD (the ETag check).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from local_ml_flow.errors import DatasetValidationError, StorageError
from local_ml_flow.storage import ArtifactStore

STRIDE = 1000
_RANGES_KEPT = 16  # about 16 x 2 x STRIDE rows: a few MB at most for housing-like rows
_HEADER_MAX_BYTES = 16 << 20
_TOKENS = re.compile(rb'[\r\n"]')


@dataclass(frozen=True)
class DatasetIndex:
    """Where the rows of one version (ETag) of the dataset start."""

    etag: str
    header: list[str]
    rows: int
    size: int
    offsets: list[int]  # offsets[k]: byte where row k * STRIDE starts
    sha256: str = ""  # of the whole file (the same pass)


def build_index(etag: str, chunks: Iterable[bytes]) -> DatasetIndex:
    """Scan a CSV once: records end at a line break outside quotes (``\\r\\n``, ``\\n`` or
    ``\\r``); empty lines are not rows (as ``csv.reader`` yields ``[]`` for them)."""
    base = 0  # offset of the current chunk
    in_quotes = False
    start = 0  # where the current record starts
    last_cr = -2
    header_end: int | None = None
    head = bytearray()
    rows = 0
    offsets: list[int] = []
    digest = hashlib.sha256()

    def record(begin: int, end: int) -> None:
        nonlocal header_end, rows
        if end <= begin:
            return  # an empty line
        if header_end is None:
            header_end = end
        else:
            if rows % STRIDE == 0:
                offsets.append(begin)
            rows += 1

    for chunk in chunks:
        digest.update(chunk)
        if header_end is None and len(head) < _HEADER_MAX_BYTES:
            head += chunk
        for match in _TOKENS.finditer(chunk):
            at = base + match.start()
            token = match.group()
            if token == b'"':
                in_quotes = not in_quotes
            elif not in_quotes:
                if token == b"\n" and last_cr == at - 1:
                    start = at + 1  # the \n of a \r\n: the record ended at the \r
                    continue
                record(start, at)
                if token == b"\r":
                    last_cr = at
                start = at + 1
        base += len(chunk)
    record(start, base)
    header: list[str] = []
    if header_end is not None:
        text = bytes(head[:header_end]).decode("utf-8-sig", errors="replace")
        header = next(csv.reader(io.StringIO(text, newline="")), [])
    return DatasetIndex(etag, header, rows, base, offsets, digest.hexdigest())


class DatasetPages:
    """The index of a store's current dataset, rebuilt when its ETag changes."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._index: DatasetIndex | None = None
        self._lock = threading.Lock()
        self._ranges: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self.builds = 0

    def _rebuild(self, stale: DatasetIndex | None) -> DatasetIndex:
        with self._lock:  # one pass at a time; the others use its result
            current = self._index
            if current is not None and current is not stale:
                return current
            etag, chunks = self.store.stream(self.store.data_bucket, self.store.dataset_key)
            index = build_index(etag, chunks)
            self._index = index
            self.builds += 1
            return index

    def page(self, offset: int, limit: int) -> tuple[DatasetIndex, list[list[str]]]:
        """The current index and rows ``offset..offset+limit``."""
        index = self._index or self._rebuild(None)
        for _ in range(3):
            rows = self._read(index, offset, limit)
            if rows is not None:
                return index, rows
            index = self._rebuild(index)
        raise StorageError("the dataset kept changing while a page was read: retry")

    def _read(self, index: DatasetIndex, offset: int, limit: int) -> list[list[str]] | None:
        """The rows, or None if the object is no longer the indexed one."""
        bucket, key = self.store.data_bucket, self.store.dataset_key
        if limit == 0 or offset >= index.rows:
            current = self.store.etag(bucket, key)
            return [] if current == index.etag else None
        first = offset // STRIDE
        last = -(-(offset + limit) // STRIDE)  # the checkpoint at or after the page's end
        end = index.offsets[last] - 1 if last < len(index.offsets) else index.size - 1
        start = index.offsets[first]
        data = self._ranges.get((index.etag, start, end))
        if data is not None:
            if self.store.etag(bucket, key) != index.etag:
                return None
        else:
            data = self.store.get_range(bucket, key, start, end, etag=index.etag)
            if data is None:
                return None
            with self._lock:
                self._ranges[(index.etag, start, end)] = data
                while len(self._ranges) > _RANGES_KEPT:
                    self._ranges.popitem(last=False)
        try:
            reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
            rows = [row for row in reader if row]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DatasetValidationError([f"stored dataset cannot be read: {exc}"]) from None
        skip = offset - first * STRIDE
        return rows[skip : skip + limit]
