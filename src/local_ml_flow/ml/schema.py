"""The housing columns and feature sets by name: plain data, no numpy or pandas (the settings,
the events and the CLI read them before anything heavy is imported)."""

from __future__ import annotations

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

# Fewer rows cannot be split into a training and a test set worth scoring (every dataset).
MIN_ROWS = 10
