"""Datasets for the "bring your own data" tests: ones that ship inside scikit-learn (no
download) written as CSV, and synthetic ones made here (missing values, text categories,
string labels, degenerate targets)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def iris() -> pd.DataFrame:
    """150 flowers, 4 measures, 3 species as strings (``species``)."""
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = frame.pop("target").map(dict(enumerate(bunch.target_names)))
    return frame


def breast_cancer() -> pd.DataFrame:
    """569 tumours, 30 measures, ``diagnosis`` malignant/benign (binary, strings)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["diagnosis"] = frame.pop("target").map(dict(enumerate(bunch.target_names)))
    return frame


def diabetes() -> pd.DataFrame:
    """442 patients, 10 features, ``progression`` a number (regression)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True, scaled=False)
    frame = bunch.frame
    frame["progression"] = frame.pop("target")
    return frame


def wine() -> pd.DataFrame:
    """178 wines, 13 measures, ``cultivar`` 0/1/2 (whole numbers: classes)."""
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    frame = bunch.frame
    frame["cultivar"] = frame.pop("target")
    return frame


def mixed(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """Numbers with missing cells, a yes/no column, a text category with gaps, a free-text
    note, and a numeric target that depends on them (regression)."""
    rng = np.random.default_rng(seed)
    size = rng.normal(100, 20, rows).round(1)
    rooms = rng.integers(1, 6, rows).astype(float)
    rooms[rng.random(rows) < 0.1] = np.nan
    garden = rng.choice(["yes", "no"], rows)
    city = rng.choice(["Paris", "Lyon", "Nantes"], rows).astype(object)
    city[rng.random(rows) < 0.05] = None
    price = (
        size * 3
        + np.nan_to_num(rooms, nan=3) * 10
        + (garden == "yes") * 25
        + np.array([{"Paris": 90, "Lyon": 40, "Nantes": 10}.get(c, 0) for c in city])
        + rng.normal(0, 5, rows)
    )
    return pd.DataFrame(
        {
            "size": size,
            "rooms": pd.array(rooms, dtype="Int64"),
            "garden": garden,
            "city": city,
            "note": [f"listing {i}" for i in range(rows)],
            "price": price.round(2),
        }
    )
