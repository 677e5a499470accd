"""Split, train, evaluate: pure functions, no I/O."""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

# scikit-learn is imported where it is used. The model kinds live in kinds.py, without numpy
# (the settings, the events and the CLI read them); re-exported here for this module's users.
from local_ml_flow.ml.kinds import MODEL_KINDS as MODEL_KINDS
from local_ml_flow.ml.kinds import MODELS as MODELS
from local_ml_flow.ml.kinds import ModelSpec as ModelSpec


class Regressor(Protocol):
    """What a trained model offers: scikit-learn's predict."""

    def predict(self, x: pd.DataFrame | np.ndarray) -> np.ndarray: ...  # pragma: no cover


@dataclass(frozen=True)
class Split:
    """A train/test split of features and target."""

    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series[float]
    y_test: pd.Series[float]


@dataclass(frozen=True)
class Metrics:
    """Regression quality on a test set."""

    r2: float
    mae: float
    rmse: float
    n: int

    @property
    def score(self) -> str:
        """R² as the original project's text, e.g. ``65.29%``."""
        return f"{self.r2 * 100:.2f}%"

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.r2, self.mae, self.rmse))

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def split(
    x: pd.DataFrame, y: pd.Series[float], *, test_size: float = 0.2, random_state: int = 42
) -> Split:
    """scikit-learn's train_test_split, 80/20 and random_state 42 by default."""
    n_test = held_out(len(x), test_size)
    train_rows, test_rows = split_rows(len(x), n_test, random_state)
    degenerate(np.asarray(y, dtype="float64"), train_rows, test_rows)
    return Split(x.take(train_rows), x.take(test_rows), y.take(train_rows), y.take(test_rows))


def held_out(n_rows: int, test_size: float, n_classes: int = 0) -> int:
    """How many of ``n_rows`` a split with ``test_size`` holds out for testing (``ceil``,
    as scikit-learn); ValueError when a side would hold fewer than 2 rows, or fewer than
    ``n_classes`` (a stratified split holds every class on each side)."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
    n_test = math.ceil(n_rows * test_size)
    if n_test < 2 or n_rows - n_test < 2:
        raise ValueError(
            f"{n_rows} rows are too few for test_size {test_size}:"
            " need at least 2 rows in each of train and test"
        )
    if n_test < n_classes or n_rows - n_test < n_classes:
        raise ValueError(
            f"a test split of {n_test} rows and a training split of {n_rows - n_test} cannot"
            f" both hold all {n_classes} classes: use a test_size nearer 0.5, or more rows"
        )
    return n_test


def degenerate(y: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray) -> None:
    """ValueError when a split's target has a single value: nothing to learn (training), or
    an undefined R² (test; scikit-learn would score it 1 or 0 by convention)."""
    if np.ptp(y[train_rows]) == 0:
        raise ValueError(
            f"the training split's target has a single value ({y[train_rows][0]:g}):"
            " there is nothing to learn"
        )
    if np.ptp(y[test_rows]) == 0:
        raise ValueError(
            f"the test split's target has a single value ({y[test_rows][0]:g}): R² would be"
            " undefined; use a larger test_size or more varied data"
        )


def split_rows(n_rows: int, n_test: int, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """The train and test row positions scikit-learn's ``train_test_split(..., test_size,
    random_state=random_state)`` picks (``n_test = ceil(n_rows * test_size)``): one
    permutation by NumPy's legacy generator seeded with ``random_state``, its first
    ``n_test`` rows for test, the rest for training (ShuffleSplit's rule).

    Done here because ``sklearn.model_selection`` costs a second to import on a first run;
    ``tests/unit/test_model.py`` checks the rows are scikit-learn's, so a change of that rule
    fails a test.
    """
    permutation = np.random.RandomState(random_state).permutation(n_rows)
    return permutation[n_test:], permutation[:n_test]


def train(kind: str, x: pd.DataFrame, y: pd.Series[float], *, random_state: int = 42) -> Regressor:
    """Fit a regressor of a kind in ``MODELS``."""
    spec = MODELS.get(kind)
    if spec is None:
        raise ValueError(f"unknown model {kind!r}; expected one of {list(MODEL_KINDS)}")
    model = spec.factory(random_state)
    model.fit(x, y)
    fitted: Regressor = model
    return fitted


def array_predictor(model: Regressor, feature_names: list[str]) -> Regressor:
    """A shallow copy of a fitted model that predicts from plain arrays whose columns are
    ``feature_names``, in that order.

    scikit-learn checks a DataFrame's column names on every predict (most of the time of a
    one-row prediction); here they are checked once, against the names the model was
    fitted with.
    """
    fitted_names = getattr(model, "feature_names_in_", None)
    if fitted_names is not None and list(fitted_names) != list(feature_names):
        raise ValueError(f"model was fitted on {list(fitted_names)}, not on {list(feature_names)}")
    from sklearn.linear_model import LinearRegression

    if isinstance(model, LinearRegression):
        return _LinearArrayPredictor(np.asarray(model.coef_), float(model.intercept_))
    clone = copy.copy(model)
    if fitted_names is not None:
        del clone.feature_names_in_  # type: ignore[attr-defined]
    return clone


@dataclass(frozen=True)
class _LinearArrayPredictor:
    """A fitted linear regression reduced to its arithmetic (no per-call input checks)."""

    coef: np.ndarray
    intercept: float

    def predict(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        result: np.ndarray = np.asarray(x, dtype="float64") @ self.coef + self.intercept
        return result


def evaluate(model: Regressor, x: pd.DataFrame, y: pd.Series[float]) -> Metrics:
    """R², MAE, RMSE and the number of rows scored (NaN or infinite when the numbers are
    too large for the arithmetic: see ``Metrics.finite``)."""
    return scores(np.asarray(y, dtype="float64").reshape(-1), predict(model, x))


def predict(model: Regressor, x: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The model's predictions as a flat float64 array (overflow gives inf, not a warning)."""
    with np.errstate(all="ignore"):
        predicted: np.ndarray = np.asarray(model.predict(x), dtype="float64").reshape(-1)
    return predicted


def scores(y: np.ndarray, predicted: np.ndarray) -> Metrics:
    """scikit-learn's r2_score, mean_absolute_error and root of mean_squared_error, computed
    as they compute them (the same figures) without their per-call input checks; NaN when a
    prediction is not finite."""
    if not np.isfinite(predicted).all():
        return Metrics(r2=math.nan, mae=math.nan, rmse=math.nan, n=len(y))
    with np.errstate(all="ignore"):
        squared = (y - predicted) ** 2
        residual = float(np.sum(squared))
        total = float(np.sum((y - np.mean(y)) ** 2))
        # a constant target scores 1 or 0 (scikit-learn's force_finite convention)
        constant = 1.0 if residual == 0 else 0.0
        r2 = 1 - residual / total if total != 0 else constant
        return Metrics(
            r2=float(r2),
            mae=float(np.mean(np.abs(predicted - y))),
            rmse=float(np.sqrt(np.mean(squared))),
            n=len(y),
        )


def weights(fitted: Any) -> tuple[str, list[float]] | None:
    """A fitted model's weight per feature: ("coefficient", coef_) for linear models,
    ("importance", feature_importances_) for trees; None when it has neither."""
    for kind, attribute in (("coefficient", "coef_"), ("importance", "feature_importances_")):
        values = getattr(fitted, attribute, None)
        if values is not None:
            return kind, [float(v) for v in np.ravel(values)]
    return None
