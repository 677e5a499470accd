"""Any tabular CSV: its schema inferred from the data, new versions validated against it (every
problem with its lines), the values cleaned, the encoding learned on the training split only,
and the classification metrics. Pure: no I/O.

One schema document (``DatasetSchema``) drives validation, cleaning, the features, the predict
request and the dashboard's forms. The housing dataset keeps its own declared rules
(``dataset.py``); this module is for every other dataset.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from local_ml_flow.errors import DatasetTooLargeError, DatasetValidationError
from local_ml_flow.ml.dataset import (
    RecordLines,
    _check_bytes,
    _first_wide_record,
    _lines,
    _names,
    header_fields,
)
from local_ml_flow.ml.documents import (
    ClassScores,
    Column,
    DatasetSchema,
    Encoded,
    Encoding,
    Label,
)
from local_ml_flow.ml.kinds import CLASSIFICATION, REGRESSION
from local_ml_flow.ml.schema import MIN_ROWS

# The yes/no-like pairs a boolean column may hold (compared stripped and lower-cased).
BOOLEAN_PAIRS: tuple[tuple[str, str], ...] = (
    ("yes", "no"),
    ("true", "false"),
    ("y", "n"),
    ("t", "f"),
)
MAX_COLUMNS = 500
MAX_COLUMN_NAME = 200
MAX_LEVELS = 50  # a text column with more distinct values is free text, not a category
MAX_CLASSES = 100
MAX_REGRESSION_CLASSES = 20  # a whole-number target with more distinct values is regression
MAX_MAGNITUDE = 1e150  # a number whose square overflows cannot be trained on nor scored
MAX_INPUTS = 1000  # model inputs of a run (a category counts one per level)
MAX_CELLS = 60_000_000  # rows x model inputs of a run (480 MB of float64)
_MAX_LEVEL_LENGTH = 200
_ROC_POINTS = 200


# -- reading ------------------------------------------------------------------------------
def parse(data: bytes, *, max_bytes: int, max_rows: int) -> tuple[pd.DataFrame, list[str]]:
    """A CSV's bytes as a frame (pandas' own type inference) and its raw header; raises
    DatasetValidationError for what prevents reading it at all (encoding, empty or duplicated
    column names, malformed records)."""
    _check_bytes(data, max_bytes)
    header = header_fields(data)
    problems = _header_shape(header)
    if problems:
        raise DatasetValidationError(problems)
    try:
        # pandas' missing-value markers (empty, NA, N/A, NaN, null, None, #N/A, ...) are
        # missing cells, as most tools write them
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DatasetValidationError(["dataset is empty"]) from None
    except pd.errors.ParserError as exc:
        wide = _first_wide_record(data, len(header))
        raise DatasetValidationError([wide or f"malformed CSV: {exc}".strip()]) from None
    if not isinstance(frame.index, pd.RangeIndex):
        line = RecordLines(data).line(0)
        raise DatasetValidationError(
            [f"malformed CSV: line {line} has more fields than the header's {len(frame.columns)}"]
        )
    frame.columns = header
    for name in header:  # text once per column: stripped categories (every later step is
        column = frame[name]  # then per distinct value, never per row)
        if not pd.api.types.is_numeric_dtype(column) and column.dtype != bool:
            frame[name] = _texts(column)
    if len(frame) > max_rows:
        raise DatasetTooLargeError(
            [f"dataset has {len(frame)} rows, above the limit of {max_rows} rows"]
        )
    return frame, header


def _header_shape(header: Sequence[str]) -> list[str]:
    problems: list[str] = []
    if len(header) > MAX_COLUMNS:
        problems.append(f"dataset has {len(header)} columns, above the limit of {MAX_COLUMNS}")
        return problems
    unnamed = [str(i + 1) for i, name in enumerate(header) if not name]
    if unnamed:
        problems.append(f"columns without a name in the header: column {', '.join(unnamed)}")
    long = [name[:40] + "…" for name in header if len(name) > MAX_COLUMN_NAME]
    if long:
        problems.append(f"column names longer than {MAX_COLUMN_NAME} characters: {_names(long)}")
    seen: dict[str, int] = {}
    for name in header:
        seen[name] = seen.get(name, 0) + 1
    duplicated = [name for name, n in seen.items() if n > 1 and name]
    if duplicated:
        problems.append(f"duplicated columns: {_names(duplicated)}")
    return problems


# -- a column's values ------------------------------------------------------------------
def _texts(column: pd.Series[Any]) -> pd.Series[Any]:
    """A column as a categorical of its stripped text (NaN for empty or blank cells): the
    per-value work is done once per distinct value."""
    if column.dtype == bool:
        return column.map({True: "true", False: "false"}).astype("category")
    raw = column.astype("category")
    stripped = [str(c).strip() for c in raw.cat.categories]
    mapping = dict(zip(raw.cat.categories, stripped, strict=True))
    out = (
        raw.cat.rename_categories(lambda c: mapping[c])
        if len(set(stripped)) == len(stripped)
        else raw.map(mapping).astype("category")
    )
    if "" in out.cat.categories:
        out = out.cat.remove_categories([""])
    return out


def _numbers(column: pd.Series[Any]) -> np.ndarray:
    """A column as float64, NaN where a cell is empty or not a number."""
    if column.dtype == bool:
        return np.full(len(column), np.nan)
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype="float64", na_value=np.nan)
    texts = _texts(column)
    parsed = pd.to_numeric(pd.Series(texts.cat.categories, dtype=object), errors="coerce")
    table = np.append(parsed.to_numpy(dtype="float64"), np.nan)
    return table[texts.cat.codes.to_numpy()]  # code -1 (empty) takes the last entry


def _present(column: pd.Series[Any]) -> np.ndarray:
    """Whether each cell holds a value (not empty, not blank)."""
    if pd.api.types.is_numeric_dtype(column) or column.dtype == bool:
        return ~column.isna().to_numpy()
    return np.asarray(_texts(column).cat.codes.to_numpy() >= 0)


def _boolean_pair(words: set[str]) -> tuple[str, str] | None:
    for pair in BOOLEAN_PAIRS:
        if words and words <= set(pair):
            return pair
    return None


def _infer_column(name: str, column: pd.Series[Any]) -> Column:
    """A column's kind and what was observed in it (not yet whether it is a feature)."""
    present = _present(column)
    missing = int(len(column) - present.sum())
    if not present.any():
        return Column(
            name=name, kind="text", missing=missing, feature=False, reason="every cell is empty"
        )
    numbers = _numbers(column)
    parsed = ~np.isnan(numbers)
    if column.dtype != bool and (parsed == present).all():
        values = numbers[present]
        finite = values[np.isfinite(values)]
        if not len(finite):
            finite = np.zeros(1)
        with np.errstate(invalid="ignore"):
            whole = bool((finite % 1 == 0).all())
        integer = pd.api.types.is_integer_dtype(column) or (whole and missing > 0)
        return Column(
            name=name,
            kind="integer" if integer else "number",
            missing=missing,
            minimum=float(finite.min()),
            maximum=float(finite.max()),
            feature=True,
        )
    texts = _texts(column)
    words = {str(c).lower() for c in texts.cat.categories[np.unique(texts.cat.codes[present])]}
    pair = _boolean_pair(words)
    if pair is not None:
        return Column(
            name=name,
            kind="boolean",
            missing=missing,
            true_value=pair[0],
            false_value=pair[1],
            feature=True,
        )
    used = np.unique(texts.cat.codes.to_numpy()[present])
    levels = sorted(str(texts.cat.categories[i]) for i in used)
    n_present = int(present.sum())
    if len(levels) > MAX_LEVELS or len(levels) > max(2, n_present // 2):
        return Column(
            name=name,
            kind="text",
            missing=missing,
            feature=False,
            reason=f"free text: {len(levels)} distinct values in {n_present} rows"
            f" (a category has at most {MAX_LEVELS}, and at most one per two rows)",
        )
    if any(len(level) > _MAX_LEVEL_LENGTH for level in levels):
        return Column(
            name=name,
            kind="text",
            missing=missing,
            feature=False,
            reason=f"free text: values longer than {_MAX_LEVEL_LENGTH} characters",
        )
    return Column(name=name, kind="categorical", missing=missing, levels=levels, feature=True)


# -- the schema -------------------------------------------------------------------------
def infer_schema(frame: pd.DataFrame, target: str, task: str | None = None) -> DatasetSchema:
    """The schema of a parsed frame with ``target`` as what to predict; ``task`` None infers
    it (a numeric target with many distinct values is regression, anything else
    classification). Raises DatasetValidationError when the data cannot be trained on (too
    few rows, a degenerate target, no feature)."""
    if target not in frame.columns:
        known = _names(list(frame.columns))
        raise DatasetValidationError([f"target column {target!r} is not in the file ({known})"])
    if len(frame) == 0:
        raise DatasetValidationError(["dataset has a header but no data rows"])
    columns = [_infer_column(str(name), frame[name]) for name in frame.columns]
    by_name = {c.name: c for c in columns}
    goal = by_name[target]
    if task is None and goal.kind in ("categorical", "text"):
        mostly_numbers = _mostly_numbers(target, frame[target])
        if mostly_numbers:
            raise DatasetValidationError([mostly_numbers])
    chosen = task or _infer_task(goal, frame[target])
    if chosen not in (REGRESSION, CLASSIFICATION):
        raise DatasetValidationError([f"task {chosen!r} is unknown: regression or classification"])
    labels = _labels(goal, frame[target]) if chosen == CLASSIFICATION else None
    if labels is not None and len(labels) < 2:
        shown = f" ({labels[0]!r})" if labels else ""
        raise DatasetValidationError(
            [f"target column {target!r} has a single class{shown}: there is nothing to learn"]
        )
    columns = [
        c.model_copy(update={"feature": False, "reason": "the target"}) if c.name == target else c
        for c in columns
    ]
    schema = DatasetSchema(target=target, task=chosen, columns=columns, labels=labels)
    problems = trainable_problems(frame, schema)
    if problems:
        raise DatasetValidationError(problems)
    return schema


def _mostly_numbers(name: str, values: pd.Series[Any]) -> str | None:
    """A problem when a text target is numbers but for a few cells (a typo would otherwise
    turn a regression into a classification of every distinct value)."""
    present = _present(values)
    numbers = _numbers(values)
    bad = present & np.isnan(numbers)
    if present.sum() < 10 or bad.sum() > 0.1 * present.sum():
        return None
    return (
        f"target column {name!r} holds numbers except at {_lines(bad)}"
        f" (found {_examples(values, bad)}): fix those cells, or say task=classification"
    )


def _infer_task(goal: Column, values: pd.Series[Any]) -> str:
    if goal.kind == "number":
        return REGRESSION
    if goal.kind == "integer":
        distinct = np.unique(_numbers(values)[_present(values)])
        return REGRESSION if len(distinct) > MAX_REGRESSION_CLASSES else CLASSIFICATION
    return CLASSIFICATION


def _labels(goal: Column, values: pd.Series[Any]) -> list[Label]:
    """The classes of a classification target, sorted: numbers as numbers (whole ones as
    int), anything else as the stripped text."""
    present = _present(values)
    if goal.kind in ("number", "integer"):
        distinct = np.unique(_numbers(values)[present])
        return [int(v) if float(v).is_integer() else float(v) for v in distinct]
    texts = _texts(values)
    used = np.unique(texts.cat.codes.to_numpy()[present])
    return sorted(str(texts.cat.categories[i]) for i in used)


def trainable_problems(frame: pd.DataFrame, schema: DatasetSchema) -> list[str]:
    """Why a frame that fits its schema still cannot be trained on (empty: it can): too few
    rows, a degenerate or incomplete target, no feature."""
    problems: list[str] = []
    if len(frame) < MIN_ROWS:
        problems.append(
            f"dataset has {len(frame)} rows; at least {MIN_ROWS} are needed to train and test"
        )
    goal = schema.column(schema.target)
    values = frame[schema.target]
    present = _present(values)
    if not present.all():
        where = _lines(~present)
        problems.append(f"target column {schema.target!r}: empty cells at {where}")
    if schema.task == REGRESSION:
        if goal.kind not in ("number", "integer"):
            problems.append(
                f"target column {schema.target!r} is {goal.kind}, not numeric: a regression"
                " needs numbers (use task=classification to predict its values as classes)"
            )
        else:
            distinct = np.unique(_numbers(values)[present])
            if len(distinct) < 2:
                shown = f" ({distinct[0]:g})" if len(distinct) else ""
                problems.append(
                    f"target column {schema.target!r} has a single value{shown}:"
                    " there is nothing to learn"
                )
    else:
        codes = target_codes(values, schema)
        counts = np.bincount(codes[codes >= 0], minlength=len(schema.labels or []))
        labels = schema.labels or []
        if len(labels) > MAX_CLASSES:
            problems.append(
                f"target column {schema.target!r} has {len(labels)} classes, above the limit"
                f" of {MAX_CLASSES} (use task=regression for a numeric target)"
            )
        elif len(labels) < 2:
            problems.append(
                f"target column {schema.target!r} has a single class"
                f"{f' ({labels[0]!r})' if labels else ''}: there is nothing to learn"
            )
        else:
            rare = [f"{labels[i]!r} ({n} row)" for i, n in enumerate(counts) if n < 2]
            if rare:
                problems.append(
                    f"target column {schema.target!r}: classes with fewer than two rows cannot be"
                    f" split into training and test: {', '.join(rare[:10])}"
                )
    for column in schema.columns:
        if column.kind in ("number", "integer") and column.name in frame.columns:
            numbers = _numbers(frame[column.name])
            huge = ~np.isnan(numbers) & ~(np.abs(numbers) <= MAX_MAGNITUDE)
            if huge.any():
                problems.append(
                    f"column {column.name!r}: infinite or too large values (beyond"
                    f" {MAX_MAGNITUDE:g}) at {_lines(huge)}"
                )
    if not schema.features:
        problems.append(
            "no column can be a feature: "
            + "; ".join(f"{c.name!r}: {c.reason}" for c in schema.columns)
        )
    return problems


def input_width(schema: DatasetSchema, features: Sequence[str]) -> int:
    """How many model inputs ``features`` make at most (a category: one per known level)."""
    width = 0
    for name in features:
        column = schema.column(name)
        width += len(column.levels or []) if column.kind == "categorical" else 1
    return width


# -- a new version against the stored schema -------------------------------------------
def validate(
    frame: pd.DataFrame, header: Sequence[str], schema: DatasetSchema, lines: RecordLines | None
) -> list[str]:
    """Every problem of a new version against ``schema`` (empty: it fits): missing or extra
    columns, wrong types, unseen levels or classes, each with its lines."""
    known = [c.name for c in schema.columns]
    missing = [name for name in known if name not in header]
    extra = [name for name in header if name not in set(known)]
    problems: list[str] = []
    if missing:
        problems.append(f"missing columns: {_names(missing)}")
    if extra:
        problems.append(f"unknown columns: {_names(extra)}")
    if len(frame) == 0:
        problems.append("dataset has a header but no data rows")
        return problems
    for column in schema.columns:
        if column.name in frame.columns:
            problems.extend(_column_problems(column, frame[column.name], lines, schema))
    return problems


def _column_problems(
    column: Column, values: pd.Series[Any], lines: RecordLines | None, schema: DatasetSchema
) -> list[str]:
    where = f"column {column.name!r}"
    present = _present(values)
    if column.name == schema.target and not present.all():
        return [f"{where} (the target): empty cells at {_lines(~present, lines)}"]
    if column.kind in ("number", "integer"):
        numbers = _numbers(values)
        bad = present & ~np.isfinite(numbers)
        problems: list[str] = []
        if bad.any():
            problems.append(
                f"{where}: expected {'whole numbers' if column.kind == 'integer' else 'numbers'}"
                f" at {_lines(bad, lines)} (found {_examples(values, bad)})"
            )
        if column.kind == "integer":
            with np.errstate(invalid="ignore"):
                fractional = present & ~bad & (numbers % 1 != 0)
            if fractional.any():
                problems.append(
                    f"{where}: expected whole numbers at {_lines(fractional, lines)}"
                    f" (found {_examples(values, fractional)})"
                )
        return problems
    elif column.kind == "boolean":
        pair = (column.true_value or "", column.false_value or "")
        texts = _texts(values)
        ok = np.array([str(c).lower() in pair for c in texts.cat.categories] + [True])
        bad = ~ok[texts.cat.codes.to_numpy()]
        if bad.any():
            return [
                f"{where}: expected {pair[0]} or {pair[1]} at {_lines(bad, lines)}"
                f" (found {_examples(values, bad)})"
            ]
    elif column.kind == "categorical" or (
        column.name == schema.target and schema.task == CLASSIFICATION
    ):
        if column.name == schema.target:
            codes = target_codes(values, schema)
            unseen = codes < 0
            kind, known = "classes", [str(v) for v in schema.labels or []]
        else:
            allowed = set(column.levels or [])
            texts = _texts(values)
            ok = np.array([str(c) in allowed for c in texts.cat.categories] + [True])
            unseen = ~ok[texts.cat.codes.to_numpy()]
            kind, known = "levels", list(column.levels or [])
        if unseen.any():
            return [
                f"{where}: unseen {kind} at {_lines(unseen, lines)}"
                f" (found {_examples(values, unseen)}; known: {_names(known)})"
            ]
    return []


def _examples(values: pd.Series[Any], mask: np.ndarray) -> str:
    shown = values[mask].head(50).astype(str).str.strip().tolist()
    return ", ".join(repr(v) for v in list(dict.fromkeys(shown))[:3])


def observe(frame: pd.DataFrame, schema: DatasetSchema) -> DatasetSchema:
    """``schema`` with what a new version shows (missing cells, ranges): the structure is
    unchanged (a version that fits it was validated)."""
    updated = []
    for column in schema.columns:
        values = frame[column.name]
        present = _present(values)
        change: dict[str, Any] = {"missing": int(len(values) - present.sum())}
        if column.kind in ("number", "integer") and present.any():
            numbers = _numbers(values)[present]
            change.update(minimum=float(numbers.min()), maximum=float(numbers.max()))
        updated.append(column.model_copy(update=change))
    return schema.model_copy(update={"columns": updated})


# -- the target -------------------------------------------------------------------------
def target_values(values: pd.Series[Any]) -> np.ndarray:
    """A regression target as float64."""
    return _numbers(values)


def target_codes(values: pd.Series[Any], schema: DatasetSchema) -> np.ndarray:
    """A classification target as the index of each row's label in ``schema.labels`` (-1:
    not a known label, or empty)."""
    labels = schema.labels or []
    goal = schema.column(schema.target)
    if goal.kind in ("number", "integer") and all(
        isinstance(label, int | float) for label in labels
    ):
        numbers = _numbers(values)
        by_number = {float(label): i for i, label in enumerate(labels)}
        return np.array([by_number.get(v, -1) for v in numbers.tolist()], dtype=np.int64)
    texts = _texts(values)
    index = {str(label): i for i, label in enumerate(labels)}
    table = np.array([index.get(str(c), -1) for c in texts.cat.categories] + [-1], dtype=np.int64)
    return table[texts.cat.codes.to_numpy()]


# -- the encoding, learned on the training split ------------------------------------------
def _booleans(values: pd.Series[Any], true_value: str) -> np.ndarray:
    """1.0 for true, 0.0 for false, NaN for empty."""
    texts = _texts(values)
    table = np.array(
        [1.0 if str(c).lower() == true_value else 0.0 for c in texts.cat.categories] + [np.nan]
    )
    return table[texts.cat.codes.to_numpy()]


def fit_encoding(frame: pd.DataFrame, schema: DatasetSchema, features: Sequence[str]) -> Encoding:
    """The encoding of ``features`` learned on ``frame`` (the training split only)."""
    out: list[Encoded] = []
    for name in features:
        column = schema.column(name)
        values = frame[name]
        if column.kind in ("number", "integer"):
            numbers = _numbers(values)
            known = numbers[~np.isnan(numbers)]
            fill = float(np.median(known)) if len(known) else 0.0
            filled = np.where(np.isnan(numbers), fill, numbers)
            scale = float(np.std(filled)) if len(filled) else 1.0
            out.append(
                Encoded(
                    name=name,
                    kind=column.kind,
                    fill=fill,
                    mean=float(np.mean(filled)) if len(filled) else 0.0,
                    scale=scale if scale > 0 and math.isfinite(scale) else 1.0,
                )
            )
        elif column.kind == "boolean":
            flags = _booleans(values, column.true_value or "")
            known = flags[~np.isnan(flags)]
            fill = 1.0 if len(known) and known.mean() > 0.5 else 0.0
            out.append(Encoded(name=name, kind="boolean", fill=fill, true_value=column.true_value))
        else:
            texts = _texts(values)
            counts = texts.value_counts(sort=False)
            counts = counts[counts > 0]
            levels = sorted(str(level) for level in counts.index)
            fill_level = str(counts.idxmax()) if len(counts) else (column.levels or [""])[0]
            if fill_level not in levels:
                levels = sorted([*levels, fill_level])
            out.append(Encoded(name=name, kind="categorical", fill=fill_level, levels=levels))
    return Encoding(columns=out)


def encode(frame: pd.DataFrame, encoding: Encoding) -> np.ndarray:
    """The model inputs of a frame (one float64 block, column-major)."""
    width = len(encoding.names())
    matrix = np.empty((len(frame), width), dtype="float64", order="F")
    j = 0
    for column in encoding.columns:
        values = frame[column.name]
        if column.kind == "categorical":
            texts = _texts(values)
            index = {level: i for i, level in enumerate(column.levels or [])}
            fill = index[str(column.fill)]
            table = np.array(
                [index.get(str(c), -1) for c in texts.cat.categories] + [fill], dtype=np.int64
            )
            codes = table[texts.cat.codes.to_numpy()]
            for i in range(len(index)):
                matrix[:, j + i] = codes == i
            j += len(index)
            continue
        if column.kind == "boolean":
            raw = _booleans(values, column.true_value or "")
        else:
            raw = _numbers(values)
        filled = np.where(np.isnan(raw), float(column.fill), raw)
        matrix[:, j] = (filled - column.mean) / column.scale if column.kind != "boolean" else filled
        j += 1
    return matrix


# -- rows of a predict request -------------------------------------------------------------
_ROW_LIMIT = 1000


def encode_rows(
    rows: Sequence[Mapping[str, Any]], schema: DatasetSchema, encoding: Encoding
) -> np.ndarray:
    """Model inputs for rows given as JSON objects (a predict request): every field of the
    model must be there (``null`` fills it as training did), values of the schema's kinds,
    known levels only. DatasetValidationError names the row and the field of each problem."""
    if not rows:
        raise DatasetValidationError(["no rows given"])
    if len(rows) > _ROW_LIMIT:
        raise DatasetValidationError([f"{len(rows)} rows given; at most {_ROW_LIMIT} at once"])
    known = {c.name for c in schema.columns}
    wanted = [c.name for c in encoding.columns]
    problems: list[str] = []
    table: dict[str, list[Any]] = {name: [] for name in wanted}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            problems.append(f"row {index}: must be an object of column: value")
            continue
        for name in row:
            if name == schema.target:
                problems.append(f"row {index}: {name!r} is the target: leave it out")
            elif name not in known:
                problems.append(
                    f"row {index}: unknown field {str(name)[:80]!r}; the fields are"
                    f" {_names(wanted)}"
                )
        for encoded in encoding.columns:
            name = encoded.name
            if name not in row:
                problems.append(f"row {index}: field {name!r} is missing")
                table[name].append(None)
                continue
            value, problem = _row_value(schema.column(name), row[name])
            if problem:
                problems.append(f"row {index}: field {name!r} {problem}")
            table[name].append(value)
    if problems:
        raise DatasetValidationError(problems)
    return _encode_values(table, encoding, len(rows))


def _encode_values(table: Mapping[str, list[Any]], encoding: Encoding, n: int) -> np.ndarray:
    """The model inputs of checked values (``_row_value``'s), as ``encode`` makes them from
    a frame, filled row by row: a request of a few rows pays no per-column pandas cost."""
    matrix = np.zeros((n, len(encoding.names())), dtype="float64")
    j = 0
    for column in encoding.columns:
        values = table[column.name]
        if column.kind == "categorical":
            index = {level: i for i, level in enumerate(column.levels or [])}
            for row, value in enumerate(values):
                k = index.get(str(column.fill) if value is None else value)
                if k is not None:  # a level known to the schema, unseen in training: zeros
                    matrix[row, j + k] = 1.0
            j += len(index)
            continue
        for row, value in enumerate(values):
            if column.kind == "boolean":
                flag = float(column.fill) if value is None else float(value == column.true_value)
                matrix[row, j] = flag
            else:
                number = float(column.fill) if value is None else float(value)
                matrix[row, j] = (number - column.mean) / column.scale
        j += 1
    return matrix


def _row_value(column: Column, value: Any) -> tuple[Any, str | None]:
    """A JSON value checked against its column: (the value for the frame, the problem)."""
    if value is None:
        return None, None
    if column.kind in ("number", "integer"):
        number_ok = isinstance(value, int | float) and not isinstance(value, bool)
        try:
            number_ok = number_ok and math.isfinite(float(value))
        except OverflowError:  # an integer beyond a float (10**400)
            number_ok = False
        if not number_ok:
            word = "a whole number" if column.kind == "integer" else "a number"
            return None, f"must be {word}, got {_shown(value)}"
        if column.kind == "integer" and not float(value).is_integer():
            return None, f"must be a whole number, got {_shown(value)}"
        return float(value), None
    if column.kind == "boolean":
        pair = (column.true_value or "", column.false_value or "")
        if isinstance(value, bool):
            return pair[0] if value else pair[1], None
        if isinstance(value, str) and value.strip().lower() in pair:
            return value.strip().lower(), None
        return None, f"must be {pair[0]} or {pair[1]} (or true/false), got {_shown(value)}"
    if column.kind == "categorical":
        levels = column.levels or []
        if isinstance(value, str) and value.strip() in levels:
            return value.strip(), None
        return None, f"must be one of {_names(levels)}, got {_shown(value)}"
    return None, None  # a text column is not a feature: never asked for


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- classification scores ---------------------------------------------------------------
def class_scores(codes: np.ndarray, proba: np.ndarray, n_classes: int) -> ClassScores:
    """Accuracy, balanced accuracy, macro F1, log loss and ROC AUC (binary: of the second
    class; above two classes: one-vs-rest, macro) of class ``codes`` against predicted
    probabilities (one column per class)."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        f1_score,
        log_loss,
        roc_auc_score,
    )

    if not np.isfinite(proba).all():
        nan = math.nan
        return ClassScores.model_construct(
            accuracy=nan, balanced_accuracy=nan, f1_macro=nan, log_loss=nan, roc_auc=nan, n=0
        )
    predicted = proba.argmax(axis=1)
    labels = list(range(n_classes))
    present = np.unique(codes)
    roc: float | None = None
    if len(present) == n_classes:
        if n_classes == 2:
            roc = float(roc_auc_score(codes, proba[:, 1]))
        else:
            roc = float(roc_auc_score(codes, proba, multi_class="ovr", average="macro"))
    return ClassScores(
        accuracy=float(accuracy_score(codes, predicted)),
        balanced_accuracy=float(balanced_accuracy_score(codes, predicted)),
        f1_macro=float(f1_score(codes, predicted, average="macro", labels=labels, zero_division=0)),
        log_loss=float(log_loss(codes, proba, labels=labels)),
        roc_auc=roc,
        n=len(codes),
    )


def confusion(codes: np.ndarray, predicted: np.ndarray, n_classes: int) -> list[list[int]]:
    """Counts of (actual i, predicted j)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (codes, predicted), 1)
    counts: list[list[int]] = matrix.tolist()
    return counts


def roc_curves(
    codes: np.ndarray, proba: np.ndarray, labels: Sequence[Label]
) -> list[dict[str, Any]]:
    """ROC curves: binary, one for the second class; above two classes, one per class against
    the rest. At most about 200 points each."""
    from sklearn.metrics import auc, roc_curve

    classes = [1] if len(labels) == 2 else list(range(len(labels)))
    curves = []
    for k in classes:
        truth = codes == k
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, proba[:, k])
        if len(fpr) > _ROC_POINTS:
            keep = np.unique(np.linspace(0, len(fpr) - 1, _ROC_POINTS).round().astype(int))
            fpr, tpr = fpr[keep], tpr[keep]
        curves.append(
            {
                "label": labels[k],
                "fpr": [float(v) for v in fpr],
                "tpr": [float(v) for v in tpr],
                "auc": float(auc(fpr, tpr)),
            }
        )
    return curves


def stratified_rows(
    codes: np.ndarray, test_size: float, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions of a split that keeps each class's share (scikit-learn's
    ``train_test_split(..., stratify=codes)``)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(codes))
    train, test = train_test_split(
        rows, test_size=test_size, random_state=random_state, stratify=codes
    )
    return np.asarray(train), np.asarray(test)
