"""The model kinds by name: how to make each, which types its stored form may hold. No numpy
or pandas here, and scikit-learn only where a model is made: the settings, the events and the
CLI read the names before anything heavy is imported (a Lambda cold start and the CLI feel it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _linear(random_state: int) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


def _gradient_boosting(random_state: int) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor  # imported when used: slow

    return GradientBoostingRegressor(random_state=random_state)


def _ridge(random_state: int) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0)


def _logistic(random_state: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    # features arrive standardised (ml/tabular.py): lbfgs converges well within the bound
    return LogisticRegression(max_iter=1000)


def _gradient_boosting_classifier(random_state: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(random_state=random_state)


@dataclass(frozen=True)
class ModelSpec:
    """How to make a model kind, and which types its stored form may contain.

    ``trusted``: the types, beyond those skops trusts by default, that loading a stored model
    of this kind may create. Fixed here, in code: never read from the artifact.
    """

    factory: Callable[[int], Any]  # random_state -> an unfitted scikit-learn estimator
    trusted: tuple[str, ...] = ()


REGRESSION = "regression"
CLASSIFICATION = "classification"
TASKS: tuple[str, ...] = (REGRESSION, CLASSIFICATION)
_TREES = ("sklearn.tree._tree.Tree",)

# The model kinds by task and name. Every list of model kinds (events, settings, API, CLI)
# derives from these; adding one is one entry here.
MODELS_BY_TASK: dict[str, dict[str, ModelSpec]] = {
    REGRESSION: {
        "linear": ModelSpec(_linear),
        "ridge": ModelSpec(_ridge),
        "gradient_boosting": ModelSpec(_gradient_boosting, _TREES),
    },
    CLASSIFICATION: {
        "logistic": ModelSpec(_logistic),
        "gradient_boosting": ModelSpec(_gradient_boosting_classifier, _TREES),
    },
}
DEFAULT_MODEL: dict[str, str] = {REGRESSION: "linear", CLASSIFICATION: "logistic"}
# The regression kinds (the housing dataset's), and every kind name of any task.
MODELS: dict[str, ModelSpec] = MODELS_BY_TASK[REGRESSION]
MODEL_KINDS: tuple[str, ...] = tuple(MODELS)
ALL_MODEL_KINDS: tuple[str, ...] = tuple(
    dict.fromkeys(name for models in MODELS_BY_TASK.values() for name in models)
)


def model_spec(task: str, kind: str) -> ModelSpec:
    """The spec of a model kind for a task; ValueError naming the task's kinds otherwise."""
    models = MODELS_BY_TASK[task]
    if kind not in models:
        raise ValueError(f"model {kind!r} is not a {task} model; expected one of {list(models)}")
    return models[kind]
