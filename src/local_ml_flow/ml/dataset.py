"""The housing schema: validation (every problem, with column and lines), cleaning, features."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from local_ml_flow.errors import DatasetTooLargeError, DatasetValidationError

TARGET = "price"
NUMERIC_FEATURES: tuple[str, ...] = ("area", "bedrooms", "bathrooms", "stories", "parking")
YES_NO_COLUMNS: tuple[str, ...] = (
    "mainroad",
    "guestroom",
    "basement",
    "hotwaterheating",
    "airconditioning",
    "prefarea",
)
FURNISHING = "furnishingstatus"
FURNISHING_VALUES: tuple[str, ...] = ("furnished", "semi-furnished", "unfurnished")
COLUMNS: tuple[str, ...] = (
    TARGET,
    "area",
    "bedrooms",
    "bathrooms",
    "stories",
    "mainroad",
    "guestroom",
    "basement",
    "hotwaterheating",
    "airconditioning",
    "parking",
    "prefarea",
    FURNISHING,
)
# One-hot of furnishing, "furnished" being the reference level (as get_dummies(drop_first)):
# column name -> the status it marks.
FURNISHING_DUMMY_OF: dict[str, str] = {
    f"furnishing_{status}": status for status in FURNISHING_VALUES[1:]
}
FURNISHING_DUMMIES: tuple[str, ...] = tuple(FURNISHING_DUMMY_OF)

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "seed": YES_NO_COLUMNS,
    "all": (*NUMERIC_FEATURES, *YES_NO_COLUMNS, *FURNISHING_DUMMIES),
}

_MAX_LINES_SHOWN = 5


def feature_names(feature_set: str) -> list[str]:
    """Model input columns of a feature set (``all`` or ``seed``)."""
    try:
        return list(FEATURE_SETS[feature_set])
    except KeyError:
        raise ValueError(
            f"unknown feature_set {feature_set!r}; expected one of {sorted(FEATURE_SETS)}"
        ) from None


def _lines(mask: pd.Series[bool]) -> str:
    """'lines 2, 5, 9 (+3 more)': CSV line numbers (the header is line 1) where mask is true."""
    idx = np.flatnonzero(mask.to_numpy())
    shown = ", ".join(str(int(i) + 2) for i in idx[:_MAX_LINES_SHOWN])
    more = f" (+{len(idx) - _MAX_LINES_SHOWN} more)" if len(idx) > _MAX_LINES_SHOWN else ""
    word = "line" if len(idx) == 1 else "lines"
    return f"{word} {shown}{more}"


def _check_bytes(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise DatasetTooLargeError(
            [f"dataset is {len(data)} bytes, above the limit of {max_bytes} bytes"]
        )
    if not data.strip():
        raise DatasetValidationError(["dataset is empty"])
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetValidationError(
            [f"dataset is not valid UTF-8: byte 0x{data[exc.start]:02x} at line {line}"]
        ) from None


def parse_csv(data: bytes, *, max_bytes: int, max_rows: int) -> pd.DataFrame:
    """Bytes to a frame; raises on problems that prevent reading it at all.

    Numbers are parsed by pandas where they can be (a column with a bad value stays text
    and is examined by validation); empty cells are NaN; text columns are categorical, so a
    million rows stay small.
    """
    _check_bytes(data, max_bytes)
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            encoding="utf-8-sig",
            dtype={c: "category" for c in (*YES_NO_COLUMNS, FURNISHING)},
            keep_default_na=False,
            na_values=[""],
        )
    except pd.errors.EmptyDataError:
        raise DatasetValidationError(["dataset is empty"]) from None
    except pd.errors.ParserError as exc:
        raise DatasetValidationError([f"malformed CSV: {exc}".strip()]) from None
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas turns surplus fields of the first data line into an index: refuse that.
        raise DatasetValidationError(
            [f"malformed CSV: line 2 has more fields than the header's {len(frame.columns)}"]
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) > max_rows:
        raise DatasetTooLargeError(
            [f"dataset has {len(frame)} rows, above the limit of {max_rows} rows"]
        )
    return frame


def _column_problems(frame: pd.DataFrame, required: Sequence[str]) -> list[str]:
    problems: list[str] = []
    missing = [c for c in required if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in COLUMNS]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown columns: {', '.join(unknown)}")
    if duplicated:
        problems.append(f"duplicated columns: {', '.join(duplicated)}")
    return problems


def _numbers(column: pd.Series[Any]) -> pd.Series[float]:
    """A column as floats, NaN where a cell is empty or not a number."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    return pd.to_numeric(column.astype("string").str.strip(), errors="coerce").astype("float64")


def _words(column: pd.Series[Any]) -> pd.Series[Any]:
    """A text column stripped and lower-cased (cheaply: per category when categorical)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        mapping = {c: str(c).strip().lower() for c in column.cat.categories}
        return column.map(mapping).astype(object)
    return column.astype(object).map(lambda v: str(v).strip().lower(), na_action="ignore")


def _empty(column: pd.Series[Any]) -> pd.Series[bool]:
    if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
        return column.isna() | (column.astype("string").str.strip() == "").fillna(False)
    return column.isna()


def _value_problems(frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    problems: list[str] = []
    for column in columns:
        raw = frame[column]
        empty = _empty(raw)
        if empty.any():
            problems.append(f"column {column!r}: empty cells at {_lines(empty)}")
        present = ~empty
        if column == TARGET or column in NUMERIC_FEATURES:
            numbers = _numbers(raw)
            bad = present & ~np.isfinite(numbers)
            if bad.any():
                problems.append(f"column {column!r}: non-numeric values at {_lines(bad)}")
            negative = present & ~bad & (numbers < 0)
            if negative.any():
                problems.append(f"column {column!r}: negative values at {_lines(negative)}")
        else:
            allowed = ("yes", "no") if column in YES_NO_COLUMNS else FURNISHING_VALUES
            words = _words(raw)
            bad = present & ~words.isin(allowed)
            if bad.any():
                what = (
                    "expected yes or no"
                    if column in YES_NO_COLUMNS
                    else "unknown furnishing status"
                )
                hint = "" if column in YES_NO_COLUMNS else f"; expected one of {', '.join(allowed)}"
                problems.append(
                    f"column {column!r}: {what} at {_lines(bad)}"
                    f" (found {_examples(raw[bad])}{hint})"
                )
    return problems


def _examples(values: pd.Series[Any]) -> str:
    uniq = list(dict.fromkeys(str(v).strip() for v in values.head(50).tolist()))[:3]
    return ", ".join(repr(v) for v in uniq)


def validate_frame(frame: pd.DataFrame) -> list[str]:
    """Every problem of a parsed frame against the housing schema (empty list: valid)."""
    problems = _column_problems(frame, COLUMNS)
    if len(frame) == 0:
        problems.append("dataset has a header but no data rows")
        return problems
    if any("duplicated" in p for p in problems):
        return problems
    present = [c for c in COLUMNS if c in frame.columns]
    problems.extend(_value_problems(frame, present))
    return problems


def load_dataset(data: bytes, *, max_bytes: int, max_rows: int) -> pd.DataFrame:
    """Parse, validate and clean a housing CSV; raises DatasetValidationError listing problems."""
    frame = parse_csv(data, max_bytes=max_bytes, max_rows=max_rows)
    problems = validate_frame(frame)
    if problems:
        raise DatasetValidationError(problems)
    return clean(frame)


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """The original's step (yes/no to 1/0) plus numbers parsed and furnishing normalised.

    Expects a frame that passed validation; returns a new frame.
    """
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in (TARGET, *NUMERIC_FEATURES):
        if column in frame.columns:
            out[column] = _numbers(frame[column]).to_numpy()
    for column in YES_NO_COLUMNS:
        out[column] = (_words(frame[column]) == "yes").astype("int64").to_numpy()
    out[FURNISHING] = pd.Categorical(_words(frame[FURNISHING]), categories=FURNISHING_VALUES)
    return out


def features(clean_frame: pd.DataFrame, feature_set: str) -> pd.DataFrame:
    """Model inputs of a cleaned frame: the feature set's columns, furnishing one-hot."""
    names = feature_names(feature_set)
    out = clean_frame.copy()
    status = out[FURNISHING]
    for name, value in FURNISHING_DUMMY_OF.items():
        out[name] = (status == value).astype("int64")
    return out[names].astype("float64")


def target(clean_frame: pd.DataFrame) -> pd.Series[float]:
    return clean_frame[TARGET].astype("float64")


def encode_houses(houses: Sequence[Mapping[str, Any]], feature_set: str) -> np.ndarray:
    """Model inputs for houses given as mappings (the /predict body, no price needed).

    The same encoding as ``features(clean(...))`` (columns in ``feature_names(feature_set)``
    order), row by row in plain Python: a request of
    a few houses must not pay for a column-wise pandas pipeline. Raises
    DatasetValidationError naming the house and field of a bad value.
    """
    names = feature_names(feature_set)
    if not houses:
        raise DatasetValidationError(["no houses given"])
    rows: list[list[float]] = []
    problems: list[str] = []
    for index, house in enumerate(houses):
        encoded: dict[str, float] = {}
        for column in NUMERIC_FEATURES:
            value = house.get(column)
            number = _as_number(value)
            if number is None or number < 0:
                problems.append(f"house {index}: {column} must be a non-negative number")
            else:
                encoded[column] = number
        for column in YES_NO_COLUMNS:
            word = str(house.get(column, "")).strip().lower()
            if word not in ("yes", "no"):
                problems.append(f"house {index}: {column} must be yes or no")
            encoded[column] = 1.0 if word == "yes" else 0.0
        status = str(house.get(FURNISHING, "")).strip().lower()
        if status not in FURNISHING_VALUES:
            problems.append(f"house {index}: {FURNISHING} must be one of {FURNISHING_VALUES}")
        for name, value in FURNISHING_DUMMY_OF.items():
            encoded[name] = float(status == value)
        rows.append([encoded.get(name, 0.0) for name in names])
    if problems:
        raise DatasetValidationError(problems)
    return np.asarray(rows, dtype="float64")


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
