"""The housing schema: validation (every problem, with column and lines), cleaning, features."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from local_ml_flow.errors import DatasetTooLargeError, DatasetValidationError
from local_ml_flow.ml.documents import Column, DatasetSchema

# The columns and feature sets live in schema.py, without pandas (the settings, the events
# and the CLI read them); re-exported here for this module's users.
from local_ml_flow.ml.schema import COLUMNS as COLUMNS
from local_ml_flow.ml.schema import FEATURE_SETS as FEATURE_SETS
from local_ml_flow.ml.schema import FURNISHING as FURNISHING
from local_ml_flow.ml.schema import FURNISHING_DUMMIES as FURNISHING_DUMMIES
from local_ml_flow.ml.schema import FURNISHING_DUMMY_OF as FURNISHING_DUMMY_OF
from local_ml_flow.ml.schema import FURNISHING_VALUES as FURNISHING_VALUES
from local_ml_flow.ml.schema import MIN_ROWS as MIN_ROWS
from local_ml_flow.ml.schema import NUMERIC_FEATURES as NUMERIC_FEATURES
from local_ml_flow.ml.schema import TARGET as TARGET
from local_ml_flow.ml.schema import YES_NO_COLUMNS as YES_NO_COLUMNS

_MAX_LINES_SHOWN = 5
_MAX_NAMES_SHOWN = 10


@dataclass(frozen=True)
class NumberRule:
    """Type and bounds of a numeric column: one rule for the CSV and for /predict."""

    integer: bool
    minimum: int | float
    maximum: int | float

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        return f"{kind} from {self.minimum:g} to {self.maximum:g}"


# The input rules, defined once: the CSV validation, /predict's House model (api/schemas.py)
# and encode_houses all read them. Integers where the reference data has integers.
NUMBER_RULES: dict[str, NumberRule] = {
    TARGET: NumberRule(integer=False, minimum=0, maximum=1e12),
    "area": NumberRule(integer=True, minimum=0, maximum=10**9),
    "bedrooms": NumberRule(integer=True, minimum=0, maximum=1000),
    "bathrooms": NumberRule(integer=True, minimum=0, maximum=1000),
    "stories": NumberRule(integer=True, minimum=0, maximum=1000),
    "parking": NumberRule(integer=True, minimum=0, maximum=1000),
}
# Text columns: the allowed words (compared stripped and lower-cased).
CHOICES: dict[str, tuple[str, ...]] = {
    **{column: ("yes", "no") for column in YES_NO_COLUMNS},
    FURNISHING: FURNISHING_VALUES,
}
# What a house is made of (/predict): every column but the target, in the file's order.
HOUSE_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c != TARGET)


def number_problem(value: Any, rule: NumberRule) -> str | None:
    """Why a decoded JSON value breaks ``rule`` (None: it does not).

    Booleans and strings are not numbers; a whole float (``2.0``) is an integer, as in JSON
    Schema and as ``2.0`` in the CSV.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be {rule.describe()}"
    if not math.isfinite(value) or not rule.minimum <= value <= rule.maximum:
        return f"must be {rule.describe()}"
    if rule.integer and isinstance(value, float) and not value.is_integer():
        return f"must be {rule.describe()}"
    return None


def feature_names(feature_set: str) -> list[str]:
    """Model input columns of a feature set (``all`` or ``seed``)."""
    try:
        return list(FEATURE_SETS[feature_set])
    except KeyError:
        raise ValueError(
            f"unknown feature_set {feature_set!r}; expected one of {sorted(FEATURE_SETS)}"
        ) from None


class RecordLines:
    """The physical line (1-based, the header's first line is 1) where each data record
    starts: a quoted cell holding line breaks, or a blank line pandas skipped, shifts them.

    Computed on demand, only as far as the records asked for (problems are rare).
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._starts: list[int] = []
        self._reader: Any = None
        self._last_line = 0

    def line(self, record: int) -> int:
        if self._reader is None:
            text = self._data.decode("utf-8-sig", errors="replace")
            self._reader = csv.reader(io.StringIO(text, newline=""))
            next(self._reader, None)  # the header
            self._last_line = self._reader.line_num
        while len(self._starts) <= record:
            start = self._last_line + 1
            row = next(self._reader, None)
            if row is None:
                return record + 2  # past the end (cannot happen for a parsed frame)
            self._last_line = self._reader.line_num
            if any(cell.strip() for cell in row) or len(row) > 1:
                self._starts.append(start)  # pandas skips blank and whitespace-only lines
        return self._starts[record]


def _lines(mask: Any, lines: RecordLines | None = None) -> str:
    """'lines 2, 5, 9 (+3 more)': CSV line numbers (the header is line 1) where ``mask`` (a
    bool array) is true."""
    idx = np.flatnonzero(mask)
    where = (lambda i: lines.line(i)) if lines is not None else (lambda i: i + 2)
    shown = ", ".join(str(where(int(i))) for i in idx[:_MAX_LINES_SHOWN])
    more = f" (+{len(idx) - _MAX_LINES_SHOWN} more)" if len(idx) > _MAX_LINES_SHOWN else ""
    word = "line" if len(idx) == 1 else "lines"
    return f"{word} {shown}{more}"


def _check_bytes(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise DatasetTooLargeError(
            [f"dataset is {len(data)} bytes, above the limit of {max_bytes} bytes"]
        )
    if not data or data.isspace():  # (strip() would copy a large dataset to find out)
        raise DatasetValidationError(["dataset is empty"])
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetValidationError(
            [f"dataset is not valid UTF-8: byte 0x{data[exc.start]:02x} at line {line}"]
        ) from None


def header_fields(data: bytes) -> list[str]:
    """The header's column names as written (stripped), read from the raw bytes: pandas
    would rename a duplicate ``area`` to ``area.1``. Linear in the header's length."""
    text = data[: data.find(b"\n") + 1 or len(data)].decode("utf-8-sig", errors="replace")
    if text.count('"') % 2:  # a quoted name holding a line break: read the whole record
        text = data.decode("utf-8-sig", errors="replace")
    row = next(csv.reader(io.StringIO(text, newline="")), [])
    return [name.strip() for name in row]


def _names(names: Sequence[str]) -> str:
    more = f" (+{len(names) - _MAX_NAMES_SHOWN} more)" if len(names) > _MAX_NAMES_SHOWN else ""
    return ", ".join(names[:_MAX_NAMES_SHOWN]) + more


def header_problems(header: Sequence[str], required: Sequence[str] = COLUMNS) -> list[str]:
    """Missing, unknown and duplicated columns of a header (sets and one count: linear)."""
    names = set(header)
    known = set(COLUMNS)
    counts = Counter(header)
    problems: list[str] = []
    missing = [c for c in required if c not in names]
    unknown = [c for c in dict.fromkeys(header) if c not in known]
    duplicated = [c for c, n in counts.items() if n > 1]
    if missing:
        problems.append(f"missing columns: {_names(missing)}")
    if unknown:
        problems.append(f"unknown columns: {_names(unknown)}")
    if duplicated:
        problems.append(f"duplicated columns: {_names(duplicated)}")
    return problems


def parse_csv(data: bytes, *, max_bytes: int, max_rows: int) -> pd.DataFrame:
    """Bytes to a frame; raises on problems that prevent reading it at all.

    The header is checked first, on the raw bytes: duplicated columns, or a header far wider
    than the schema, are refused before pandas reads anything. Numbers are parsed by pandas
    where they can be (a column with a bad value stays text and is examined by validation);
    empty cells are NaN; text columns are categorical, so a million rows stay small.
    """
    _check_bytes(data, max_bytes)
    header = header_fields(data)
    problems = header_problems(header)
    if any(p.startswith("duplicated") for p in problems) or len(header) > 2 * len(COLUMNS):
        raise DatasetValidationError(problems)
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
        wide = _first_wide_record(data, len(header))
        problem = wide or f"malformed CSV: {exc}".strip()
        raise DatasetValidationError([problem]) from None
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas turns surplus fields of the first data line into an index: refuse that.
        line = RecordLines(data).line(0)
        raise DatasetValidationError(
            [f"malformed CSV: line {line} has more fields than the header's {len(frame.columns)}"]
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) > max_rows:
        raise DatasetTooLargeError(
            [f"dataset has {len(frame)} rows, above the limit of {max_rows} rows"]
        )
    return frame


def _first_wide_record(data: bytes, width: int) -> str | None:
    """'malformed CSV: line 7 has 14 fields, more than the header's 13' for the first such
    record, by physical line (pandas' own message counts lines its own way)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=""))
    next(reader, None)
    last = reader.line_num
    for row in reader:
        if len(row) > width:
            return (
                f"malformed CSV: line {last + 1} has {len(row)} fields,"
                f" more than the header's {width}"
            )
        last = reader.line_num
    return None


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


def _per_category(column: pd.Series[Any], test: Callable[[str], bool], missing: bool) -> Any:
    """``test`` of each cell of a categorical column as a bool array, computed once per
    category and spread by the codes (``missing`` for an empty cell): linear, no strings
    made per row."""
    table = np.array([test(str(c)) for c in column.cat.categories] + [missing], dtype=bool)
    return table[column.cat.codes.to_numpy()]  # code -1 (NaN) picks the last entry


def _word_in(column: pd.Series[Any], allowed: Sequence[str]) -> Any:
    """Whether each cell, stripped and lower-cased, is one of ``allowed`` (a bool array)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return _per_category(column, lambda c: c.strip().lower() in allowed, False)
    return _words(column).isin(allowed).to_numpy(dtype=bool)


def _empty(column: pd.Series[Any]) -> Any:
    """Whether each cell is empty or blank (a bool array)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return _per_category(column, lambda c: not c.strip(), True)
    if column.dtype == object:
        blank = (column.astype("string").str.strip() == "").fillna(False)
        return (column.isna() | blank).to_numpy(dtype=bool)
    return column.isna().to_numpy(dtype=bool)


def _number_problems(
    column: str, raw: pd.Series[Any], present: Any, lines: RecordLines | None
) -> list[str]:
    """``present``: a bool array, the cells that are not empty."""
    rule = NUMBER_RULES[column]
    numbers = _numbers(raw).to_numpy()
    problems: list[str] = []
    bad = present & ~np.isfinite(numbers)
    if bad.any():
        problems.append(f"column {column!r}: non-numeric values at {_lines(bad, lines)}")
    ok = present & ~bad
    negative = ok & (numbers < rule.minimum)
    if negative.any():
        what = "negative values" if rule.minimum == 0 else f"values below {rule.minimum:g}"
        problems.append(f"column {column!r}: {what} at {_lines(negative, lines)}")
    above = ok & (numbers > rule.maximum)
    if above.any():
        problems.append(
            f"column {column!r}: values above {rule.maximum:g} at {_lines(above, lines)}"
        )
    if rule.integer and raw.dtype.kind not in "iu":  # integers parsed as such are whole
        with np.errstate(invalid="ignore"):
            fractional = ok & ~negative & ~above & (numbers % 1 != 0)
        if fractional.any():
            problems.append(
                f"column {column!r}: expected whole numbers at {_lines(fractional, lines)}"
                f" (found {_examples(raw[fractional])})"
            )
    return problems


def _value_problems(
    frame: pd.DataFrame, columns: Iterable[str], lines: RecordLines | None = None
) -> list[str]:
    problems: list[str] = []
    for column in columns:
        raw = frame[column]
        empty = _empty(raw)
        if empty.any():
            problems.append(f"column {column!r}: empty cells at {_lines(empty, lines)}")
        present = ~empty
        if column in NUMBER_RULES:
            problems.extend(_number_problems(column, raw, present, lines))
        else:
            allowed = CHOICES[column]
            bad = present & ~_word_in(raw, allowed)
            if bad.any():
                what = (
                    "expected yes or no"
                    if column in YES_NO_COLUMNS
                    else "unknown furnishing status"
                )
                hint = "" if column in YES_NO_COLUMNS else f"; expected one of {', '.join(allowed)}"
                problems.append(
                    f"column {column!r}: {what} at {_lines(bad, lines)}"
                    f" (found {_examples(raw[bad])}{hint})"
                )
    return problems


def _examples(values: pd.Series[Any]) -> str:
    uniq = list(dict.fromkeys(str(v).strip() for v in values.head(50).tolist()))[:3]
    return ", ".join(repr(v) for v in uniq)


def validate_frame(
    frame: pd.DataFrame,
    *,
    header: Sequence[str] | None = None,
    lines: RecordLines | None = None,
) -> list[str]:
    """Every problem of a parsed frame against the housing schema (empty list: valid).

    ``header``: the raw header (``header_fields``), so duplicates are named as such;
    ``lines``: physical line numbers of the records (else record number + 2).
    """
    problems = header_problems(list(frame.columns) if header is None else header)
    if len(frame) == 0:
        problems.append("dataset has a header but no data rows")
        return problems
    if any(p.startswith("duplicated") for p in problems):
        return problems
    present = [c for c in COLUMNS if c in frame.columns]
    problems.extend(_value_problems(frame, present, lines))
    return problems


def trainable_problems(clean_frame: pd.DataFrame) -> list[str]:
    """Why a valid, cleaned housing frame still cannot be trained on (empty: it can): too few
    rows, or a price with a single value (nothing to learn, an undefined R²)."""
    problems: list[str] = []
    if len(clean_frame) < MIN_ROWS:
        problems.append(
            f"dataset has {len(clean_frame)} rows; at least {MIN_ROWS} are needed to train and test"
        )
    prices = np.unique(clean_frame[TARGET].to_numpy())
    if len(prices) == 1:
        problems.append(
            f"column {TARGET!r} has a single value ({prices[0]:,.0f}): there is nothing to"
            " learn, and R² would be undefined"
        )
    return problems


def load_dataset(data: bytes, *, max_bytes: int, max_rows: int) -> pd.DataFrame:
    """Parse, validate and clean a housing CSV; raises DatasetValidationError listing problems."""
    frame = parse_csv(data, max_bytes=max_bytes, max_rows=max_rows)
    problems = validate_frame(frame, header=header_fields(data), lines=RecordLines(data))
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
        raw = frame[column]
        if isinstance(raw.dtype, pd.CategoricalDtype):
            yes = _per_category(raw, lambda c: c.strip().lower() == "yes", False)
        else:
            yes = (_words(raw) == "yes").to_numpy()
        out[column] = yes.astype("int64")
    out[FURNISHING] = _furnishing(frame[FURNISHING])
    return out


_FURNISHING_DTYPE = pd.CategoricalDtype(list(FURNISHING_VALUES))


def _furnishing(column: pd.Series[Any]) -> pd.Categorical[object]:
    """The furnishing column as a categorical of ``FURNISHING_VALUES`` (codes mapped once
    per category when it is already categorical)."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return pd.Categorical(_words(column), dtype=_FURNISHING_DTYPE)
    index = {value: i for i, value in enumerate(FURNISHING_VALUES)}
    table = np.array(
        [index.get(str(c).strip().lower(), -1) for c in column.cat.categories] + [-1],
        dtype=np.int8,
    )
    codes = table[column.cat.codes.to_numpy()]
    return pd.Categorical.from_codes(codes, dtype=_FURNISHING_DTYPE)


def features(clean_frame: pd.DataFrame, feature_set: str) -> pd.DataFrame:
    """Model inputs of a cleaned frame: the feature set's columns, furnishing one-hot."""
    names = feature_names(feature_set)
    # One float64 block, column-major: no intermediate frames, and rows are gathered
    # column by column (contiguous) when the split takes them.
    matrix = np.empty((len(clean_frame), len(names)), dtype="float64", order="F")
    status = clean_frame[FURNISHING]
    for j, name in enumerate(names):
        if name in FURNISHING_DUMMY_OF:
            matrix[:, j] = (status == FURNISHING_DUMMY_OF[name]).to_numpy()
        else:
            matrix[:, j] = clean_frame[name].to_numpy()
    return pd.DataFrame(matrix, columns=names, copy=False)


def target(clean_frame: pd.DataFrame) -> pd.Series[float]:
    return clean_frame[TARGET].astype("float64")


def encode_houses(houses: Sequence[Mapping[str, Any]], feature_set: str) -> np.ndarray:
    """Model inputs for houses given as mappings (the /predict body, no price needed).

    The same encoding as ``features(clean(...))`` (columns in ``feature_names(feature_set)``
    order), row by row in plain Python: a request of
    a few houses must not pay for a column-wise pandas pipeline. Values follow the same
    rules as the CSV (``NUMBER_RULES``, ``CHOICES``); raises DatasetValidationError naming
    the house and field of a bad value.
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
            problem = number_problem(value, NUMBER_RULES[column])
            if problem is None and isinstance(value, int | float):
                encoded[column] = float(value)
            else:
                problems.append(f"house {index}: {column} {problem}")
        for column in YES_NO_COLUMNS:
            word = _word(house.get(column))
            if word not in CHOICES[column]:
                problems.append(f"house {index}: {column} must be yes or no")
            encoded[column] = 1.0 if word == "yes" else 0.0
        status = _word(house.get(FURNISHING))
        if status not in FURNISHING_VALUES:
            problems.append(f"house {index}: {FURNISHING} must be one of {FURNISHING_VALUES}")
        for name, value in FURNISHING_DUMMY_OF.items():
            encoded[name] = float(status == value)
        rows.append([encoded.get(name, 0.0) for name in names])
    if problems:
        raise DatasetValidationError(problems)
    return np.asarray(rows, dtype="float64")


def _word(value: Any) -> str | None:
    """A text value stripped and lower-cased; None for anything that is not text."""
    return value.strip().lower() if isinstance(value, str) else None


def column_summary(frame: pd.DataFrame) -> dict[str, str]:
    """One line per known column: min / mean / max of a number, counts of each choice."""
    out: dict[str, str] = {}
    for column in COLUMNS:
        if column not in frame.columns:
            continue
        if column in NUMBER_RULES:
            values = _numbers(frame[column]).dropna()
            if len(values):
                out[column] = (
                    f"min {values.min():,.0f} · mean {values.mean():,.1f} · max {values.max():,.0f}"
                )
        else:
            counts = _words(frame[column]).value_counts()
            out[column] = " · ".join(f"{word} {n}" for word, n in counts.items())
    return out


def declared_schema() -> DatasetSchema:
    """The housing dataset's rules as a schema document (the form every registered dataset's
    schema has): what ``GET /datasets/housing`` shows; validation stays the rules above."""
    columns: list[Column] = []
    for name in COLUMNS:
        target = name == TARGET
        common: dict[str, Any] = {
            "name": name,
            "missing": 0,
            "feature": not target,
            "reason": "the target" if target else None,
        }
        if name in NUMBER_RULES:
            rule = NUMBER_RULES[name]
            columns.append(
                Column(
                    kind="integer" if rule.integer else "number",
                    minimum=float(rule.minimum),
                    maximum=float(rule.maximum),
                    **common,
                )
            )
        elif name in YES_NO_COLUMNS:
            columns.append(Column(kind="boolean", true_value="yes", false_value="no", **common))
        else:
            columns.append(Column(kind="categorical", levels=list(CHOICES[name]), **common))
    return DatasetSchema(target=TARGET, task="regression", columns=columns)
