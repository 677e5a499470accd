"""Model figures on the reference file: the original's 35% and ours."""

from __future__ import annotations

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
