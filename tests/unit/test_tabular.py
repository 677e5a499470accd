"""Any CSV's schema and encoding: a predict row is encoded exactly as its training rows were."""

from __future__ import annotations

from typing import Any

import numpy as np

from local_ml_flow.ml import tabular
from tests import datasets


def test_rows_of_a_request_are_encoded_as_the_frame_is():
    frame = datasets.mixed()
    data = datasets.csv(frame)
    parsed, _ = tabular.parse(data, max_bytes=10**8, max_rows=10**6)
    schema = tabular.infer_schema(parsed, "price")
    encoding = tabular.fit_encoding(parsed.iloc[:150], schema, schema.features)
    expected = tabular.encode(parsed.iloc[150:], encoding)
    rows: list[dict[str, Any]] = []
    for record in frame.iloc[150:].drop(columns=["price", "note"]).to_dict("records"):
        rows.append({str(k): (None if v is None or v != v else v) for k, v in record.items()})
    for row in rows:
        row["rooms"] = None if row["rooms"] is None else int(row["rooms"])
    encoded = tabular.encode_rows(rows, schema, encoding)
    assert encoded.shape == expected.shape
    np.testing.assert_allclose(encoded, expected, rtol=0, atol=1e-12)
    assert any(row["rooms"] is None for row in rows)  # fills are exercised
    assert any(row["city"] is None for row in rows)


def test_text_columns_are_parsed_once_into_categories():
    parsed, _ = tabular.parse(datasets.csv(datasets.mixed()), max_bytes=10**8, max_rows=10**6)
    assert str(parsed["city"].dtype) == "category"
    assert str(parsed["size"].dtype) == "float64"
