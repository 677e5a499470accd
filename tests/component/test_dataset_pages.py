"""Dataset pages: an index built once per ETag, then range reads that match csv.reader."""

from __future__ import annotations

import csv
import io

import pytest

from local_ml_flow.api import dataset_pages
from local_ml_flow.api.dataset_pages import DatasetPages, build_index


def _rows(data: bytes) -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header = next(reader)
    return header, [row for row in reader if row]


def _awkward(n: int, newline: str = "\n") -> bytes:
    """Quoted cells with line breaks and quotes, blank lines, a final line without a break."""
    lines = ["id,note"]
    for i in range(n):
        note = f'"line {i}{newline}next ""quoted"""' if i % 7 == 0 else f"plain {i}"
        lines.append(f"{i},{note}")
        if i % 11 == 0:
            lines.append("")
    return ("\ufeff" + newline.join(lines)).encode()


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_index_matches_csv_reader(newline, chunk):
    data = _awkward(2500, newline)
    header, rows = _rows(data)
    index = build_index("e", (data[i : i + chunk] for i in range(0, len(data), chunk)))
    assert index.header == header == ["id", "note"]
    assert index.rows == len(rows) == 2500
    for k, offset in enumerate(index.offsets):
        first = next(csv.reader(io.StringIO(data[offset:].decode(), newline="")))
        assert first == rows[k * dataset_pages.STRIDE]


def test_pages_read_ranges_and_follow_a_replaced_object(store, dataset_bytes):
    data = _awkward(2500)
    bucket = store.data_bucket
    store.put_bytes(bucket, store.dataset_key, data, "text/csv")
    _, rows = _rows(data)
    pages = DatasetPages(store)
    for offset, limit in [
        (0, 1),
        (0, 20),
        (995, 10),
        (1999, 1000),
        (2490, 1000),
        (3000, 5),
        (7, 0),
    ]:
        index, page = pages.page(offset, limit)
        assert index.rows == 2500
        assert page == rows[offset : offset + limit]
    assert pages.builds == 1  # one pass over the object, then range reads only

    store.put_bytes(bucket, store.dataset_key, dataset_bytes, "text/csv")
    index, page = pages.page(0, 1)
    assert index.rows == 545
    assert page == [_rows(dataset_bytes)[1][0]]
    assert pages.builds == 2
    store.put_bytes(bucket, store.dataset_key, data, "text/csv")
    index, page = pages.page(3000, 5)  # no rows to read: the ETag is still checked
    assert (index.rows, page) == (2500, [])
