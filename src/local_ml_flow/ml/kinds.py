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


@dataclass(frozen=True)
class ModelSpec:
    """How to make a model kind, and which types its stored form may contain.

    ``trusted``: the types, beyond those skops trusts by default, that loading a stored model
    of this kind may create. Fixed here, in code: never read from the artifact.
    """

    factory: Callable[[int], Any]  # random_state -> an unfitted scikit-learn regressor
    trusted: tuple[str, ...] = ()


# The model kinds by name. Every list of model kinds (events, settings, API, CLI) derives
# from this; adding one is one entry here.
MODELS: dict[str, ModelSpec] = {
    "linear": ModelSpec(_linear),
    "gradient_boosting": ModelSpec(_gradient_boosting, ("sklearn.tree._tree.Tree",)),
}
MODEL_KINDS: tuple[str, ...] = tuple(MODELS)
