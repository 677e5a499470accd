"""Model figures on the reference file: the original's 35% and ours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from local_ml_flow.ml import dataset, model


@pytest.fixture(scope="module")
def clean(dataset_bytes) -> pd.DataFrame:
    return dataset.load_dataset(dataset_bytes, max_bytes=10**9, max_rows=10**7)


def fit(clean: pd.DataFrame, feature_set: str, kind: str = "linear") -> model.Metrics:
    parts = model.split(dataset.features(clean, feature_set), dataset.target(clean))
    fitted = model.train(kind, parts.x_train, parts.y_train)
    return model.evaluate(fitted, parts.x_test, parts.y_test)


def test_seed_features_reproduce_the_original_35_percent(clean):
    metrics = fit(clean, "seed")
    assert metrics.r2 == pytest.approx(0.3562, abs=0.0005)
    assert metrics.score == "35.62%"
    assert metrics.n == 109


def test_all_features_reach_65_percent(clean):
    metrics = fit(clean, "all")
    assert metrics.r2 >= 0.65
    assert metrics.score == "65.29%"
    assert 0 < metrics.mae < metrics.rmse


def test_gradient_boosting_trains_and_is_deterministic(clean):
    first, second = fit(clean, "all", "gradient_boosting"), fit(clean, "all", "gradient_boosting")
    assert first == second
    assert first.r2 > 0.5


def test_split_is_80_20_and_reproducible(clean):
    x, y = dataset.features(clean, "all"), dataset.target(clean)
    a, b = model.split(x, y), model.split(x, y)
    assert (len(a.x_train), len(a.x_test)) == (436, 109)
    assert a.x_test.index.tolist() == b.x_test.index.tolist()
    assert model.split(x, y, random_state=1).x_test.index.tolist() != a.x_test.index.tolist()


def test_split_refuses_bad_sizes(clean):
    x, y = dataset.features(clean, "all"), dataset.target(clean)
    with pytest.raises(ValueError, match="between 0 and 1"):
        model.split(x, y, test_size=1.0)
    with pytest.raises(ValueError, match="too few"):
        model.split(x.head(3), y.head(3))


def test_unknown_model_kind(clean):
    with pytest.raises(ValueError, match="unknown model 'forest'"):
        model.train("forest", dataset.features(clean, "all"), dataset.target(clean))


@pytest.mark.parametrize(
    ("feature_set", "kind"), [("all", "linear"), ("seed", "gradient_boosting")]
)
def test_array_predictor_predicts_like_the_model(clean, feature_set, kind):
    parts = model.split(dataset.features(clean, feature_set), dataset.target(clean))
    fitted = model.train(kind, parts.x_train, parts.y_train)
    fast = model.array_predictor(fitted, dataset.feature_names(feature_set))
    assert fast.predict(parts.x_test.to_numpy()) == pytest.approx(fitted.predict(parts.x_test))
    with pytest.raises(ValueError, match="model was fitted on"):
        model.array_predictor(fitted, list(reversed(dataset.feature_names(feature_set))))


@pytest.mark.parametrize(
    ("n_rows", "test_size", "random_state"),
    [(545, 0.2, 42), (545, 0.2, 0), (10, 0.5, 7), (1001, 0.33, 2**32 - 1), (8, 0.25, 3)],
)
def test_split_takes_the_rows_scikit_learn_takes(n_rows, test_size, random_state):
    from sklearn.model_selection import train_test_split

    x = pd.DataFrame({"a": np.arange(n_rows, dtype="float64")})
    y = pd.Series(np.arange(n_rows, dtype="float64") * 2, name="price")
    ours = model.split(x, y, test_size=test_size, random_state=random_state)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=random_state
    )
    pd.testing.assert_frame_equal(ours.x_train, x_train)
    pd.testing.assert_frame_equal(ours.x_test, x_test)
    pd.testing.assert_series_equal(ours.y_train, y_train)
    pd.testing.assert_series_equal(ours.y_test, y_test)


@pytest.mark.parametrize(
    "case", ["reference", "noisy", "constant target", "constant and right", "perfect"]
)
def test_scores_are_scikit_learns_figures(clean, case):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(1)
    y = dataset.target(clean).to_numpy()
    predicted = {
        "reference": y * 0.9 + 1e5,
        "noisy": y + rng.normal(0, 1e6, len(y)),
        "constant target": np.full(len(y), 3.0),
        "constant and right": np.full(len(y), 5.0),
        "perfect": y.copy(),
    }[case]
    if case.startswith("constant"):  # no variance: scikit-learn's force_finite figures
        y = np.full(len(y), 5.0)
    ours = model.scores(y, predicted)
    assert ours.r2 == pytest.approx(r2_score(y, predicted), rel=1e-12, abs=1e-12)
    assert ours.mae == pytest.approx(mean_absolute_error(y, predicted), rel=1e-12)
    assert ours.rmse == pytest.approx(np.sqrt(mean_squared_error(y, predicted)), rel=1e-12)
    assert ours.n == len(y)
