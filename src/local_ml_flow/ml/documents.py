"""The documents of a registered dataset: its schema (columns, target, task, labels), the
encoding a run learned, classification scores. Plain pydantic, no numpy or pandas: the run
log, the events and the API read them before anything heavy is imported."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Kind = Literal["number", "integer", "boolean", "categorical", "text"]
Task = Literal["regression", "classification"]
# A class label as written in the CSV: a string stays a string, a whole number an int.
Label = str | int | float
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Doc):
    """One column of a dataset: its kind, whether it is a feature (and why not), and what was
    observed (missing cells, range or levels)."""

    name: str
    kind: Kind
    missing: int = Field(ge=0)
    minimum: Finite | None = None
    maximum: Finite | None = None
    levels: list[str] | None = None  # categorical: the known levels, as written (stripped)
    true_value: str | None = None  # boolean: the words for true and false (lower-case)
    false_value: str | None = None
    feature: bool
    reason: str | None = None  # why it is not a feature

    @model_validator(mode="after")
    def _complete(self) -> Column:
        """A category has its levels, a boolean its two words (a stored document that does
        not is corrupt)."""
        if self.kind == "categorical" and not self.levels:
            raise ValueError(f"categorical column {self.name!r} has no levels")
        if self.kind == "boolean" and not (self.true_value and self.false_value):
            raise ValueError(f"boolean column {self.name!r} lacks its true or false word")
        return self


class DatasetSchema(_Doc):
    """The schema of a dataset: its columns, target and task (and class labels)."""

    target: str
    task: Task
    columns: list[Column]
    labels: list[Label] | None = None  # classification: the classes, sorted

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSchema:
        """Unique, named columns; the target one of them and no feature; classes for a
        classification only (a stored document that breaks this is corrupt)."""
        names = [c.name for c in self.columns]
        if not all(names) or len(set(names)) != len(names):
            raise ValueError("column names must be unique and not empty")
        if self.target not in names:
            raise ValueError(f"the target {self.target!r} is not one of the columns")
        if self.column(self.target).feature:
            raise ValueError("the target cannot be a feature")
        if self.task == "classification" and len(self.labels or []) < 2:
            raise ValueError("a classification has at least two labels")
        if self.task == "regression" and self.labels is not None:
            raise ValueError("a regression has no labels")
        return self

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def features(self) -> list[str]:
        """The columns a model may take, in the file's order."""
        return [c.name for c in self.columns if c.feature]

    def structure_sha256(self) -> str:
        """The sha256 of what a new version must match (names, kinds, levels, target, task,
        labels), not of what was observed: the schema's version."""
        shape = {
            "target": self.target,
            "task": self.task,
            "labels": self.labels,
            "columns": [
                c.model_dump(include={"name", "kind", "levels", "true_value", "feature"})
                for c in self.columns
            ],
        }
        text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class Encoded(_Doc):
    """How one feature column becomes model inputs: the value that fills its empty cells
    (median of a number, most frequent otherwise), its standardisation, its one-hot levels."""

    name: str
    kind: Kind
    fill: Finite | str
    mean: Finite = 0.0
    scale: Finite = 1.0
    true_value: str | None = None
    levels: list[str] | None = None  # categorical: the levels of the training split


class Encoding(_Doc):
    """The encoding of every feature of a run, in model input order."""

    columns: list[Encoded]

    @model_validator(mode="after")
    def _consistent(self) -> Encoding:
        """Each column once; a category's fill value is one of its levels."""
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("a column is encoded twice")
        for column in self.columns:
            if column.kind == "categorical" and column.fill not in (column.levels or []):
                raise ValueError(f"column {column.name!r}: its fill value is not a level")
        return self

    def names(self) -> list[str]:
        """The model's input columns: a number or boolean is one, a category one per level."""
        out: list[str] = []
        for column in self.columns:
            if column.kind == "categorical":
                out.extend(f"{column.name}={level}" for level in column.levels or [])
            else:
                out.append(column.name)
        return out


class ClassScores(_Doc):
    """Classification quality on a set of rows (``roc_auc``: None when undefined)."""

    accuracy: Finite
    balanced_accuracy: Finite
    f1_macro: Finite
    log_loss: Finite
    roc_auc: Finite | None
    n: int

    @property
    def score(self) -> str:
        """Accuracy as a percentage, like the regression's R² text (``93.33%``)."""
        return f"{self.accuracy * 100:.2f}%"
