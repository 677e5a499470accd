"""Typed request and response bodies (they make /docs show real schemas)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from local_ml_flow.events import FeatureSetName, RunOptions, TabularOptions
from local_ml_flow.ml import dataset
from local_ml_flow.ml.documents import DatasetSchema, Label
from local_ml_flow.reproduce import Reproduction


def _normalise(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _no_bool_or_text(value: Any) -> Any:
    """JSON numbers only: pydantic's lax mode would take ``true`` or ``"7420"``."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number, not a boolean or a string")
    return value


YesNo = Annotated[Literal["yes", "no"], BeforeValidator(_normalise)]
Furnishing = Annotated[
    Literal["furnished", "semi-furnished", "unfurnished"], BeforeValidator(_normalise)
]


class ErrorBody(BaseModel):
    type: str = Field(examples=["NotFoundError"])
    message: str = Field(examples=["run 'x' does not exist"])
    details: Any | None = None


class ErrorResponse(BaseModel):
    """Every error response: ``{"error": {"type", "message", "details"?}}``."""

    error: ErrorBody


class Link(BaseModel):
    method: str
    path: str
    description: str


class RootResponse(BaseModel):
    app: str
    version: str
    mode: Literal["embedded", "localstack", "aws"]
    docs: str
    dashboard: str = Field("/ui", description="the dashboard (runs, charts, rollback)")
    endpoints: list[Link]


class BucketsResponse(BaseModel):
    buckets: list[str] = Field(examples=[["local-ml-flow-data", "local-ml-flow-models"]])


class ModelObject(BaseModel):
    bucket: str
    model: str
    size: int
    last_modified: str


class ModelsResponse(BaseModel):
    models: list[ModelObject]


class DatasetResponse(BaseModel):
    dataset_name: str
    bucket: str
    key: str
    row_count: int = Field(description="rows in the whole dataset")
    offset: int
    limit: int
    values: list[dict[str, str]] = Field(description="rows offset..offset+limit, as strings")


class DatasetUploadResponse(BaseModel):
    bucket: str
    key: str
    row_count: int
    sha256: str
    previous_version_key: str | None = Field(
        description="where the replaced dataset was kept (None if there was none)"
    )


class DatasetVersion(BaseModel):
    key: str = Field(
        examples=[
            "datasets/housing-53c664e09e63570198f4197daa9d6e96b5fea6488d4a1b9259d192df2ce51ccf.csv"
        ]
    )
    sha256: str | None
    size: int
    archived_at: str
    current: bool = Field(description="this is the dataset in use (housing.csv)")


class DatasetsResponse(BaseModel):
    datasets: list[DatasetVersion] = Field(description="every accepted dataset, newest first")


class LambdasResponse(BaseModel):
    lambdas: list[str] = Field(examples=[["local-ml-flow-ingestion", "local-ml-flow-inference"]])


class ResultResponse(BaseModel):
    content: str = Field(examples=["65.29%"])


class RunRequest(RunOptions):
    """Optional parameters of a pipeline run; absent fields take the configured defaults."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"model": "linear", "feature_set": "all", "test_size": 0.2}]
        }
    )


RUN_REQUEST_EXAMPLES: dict[str, Any] = {
    "linear": {
        "summary": "linear regression on every feature",
        "value": {"model": "linear", "feature_set": "all", "test_size": 0.2, "random_state": 42},
    },
    "boosting": {
        "summary": "gradient boosting on the seed's yes/no features",
        "value": {"model": "gradient_boosting", "feature_set": "seed", "test_size": 0.25},
    },
    "defaults": {"summary": "the configured defaults", "value": {}},
}


class RunMetrics(BaseModel):
    """Test metrics: regression's r2, mae, rmse, or classification's accuracy and friends;
    ``score`` is the main one as a percentage (R², or accuracy)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "r2": 0.6529,
                    "mae": 970043.4,
                    "rmse": 1324506.96,
                    "n_train": 436,
                    "n_test": 109,
                    "score": "65.29%",
                }
            ]
        }
    )

    r2: float | None = None
    mae: float | None = None
    rmse: float | None = None
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    f1_macro: float | None = None
    log_loss: float | None = None
    roc_auc: float | None = Field(None, description="None when undefined")
    n_train: int | None
    n_test: int
    score: str


class RunError(BaseModel):
    stage: str | None
    type: str | None
    message: str | None
    details: Any | None = None


class NotPromoted(BaseModel):
    """Why a succeeded run did not become current when it finished."""

    reason: str
    current_run_id: str = Field(description="the run that stayed current")
    policy: str = Field(description="the promotion policy that decided (LMF_PROMOTION)")
    decided_at: str


class Run(BaseModel):
    run_id: str
    status: Literal["queued", "running", "succeeded", "failed", "corrupt"] = Field(
        description="queued: recorded, no function ran yet; running: ingestion or inference"
        " under way; failed: an error (or no result after the function timeout: abandoned);"
        " corrupt: its stored documents are not what this project writes"
    )
    current: bool = Field(False, description="this run is the one served (the latest pointer)")
    parameters: dict[str, Any]
    metrics: RunMetrics | None
    created_at: str | None
    finished_at: str | None
    error: RunError | None
    model_sha256: str | None = None
    dataset_sha256: str | None = None
    features: list[str] | None = None
    dataset: str = Field("housing", description="the dataset the run trains on")
    not_promoted: NotPromoted | None = Field(
        None,
        description="set when the promotion policy kept the current run instead of this one"
        " (it scored worse); promote it explicitly to serve it",
    )
    pinned: bool = Field(
        False, description="pinned by its user: no deletion (asked or by retention) removes it"
    )


class RunsResponse(BaseModel):
    runs: list[Run]
    next_cursor: str | None = Field(
        None,
        description="pass it as `cursor` for the next page (older runs); null on the last page",
    )


class DeletedResponse(BaseModel):
    """What a deletion freed."""

    deleted: list[str] = Field(
        description="the runs deleted (this one, and any deletion cut before)"
    )
    objects: int = Field(description="objects removed from both buckets")
    bytes: int = Field(description="bytes freed")
    dataset_versions: list[str] = Field(
        description="sha256 of the dataset versions deleted with them: no remaining run was"
        " trained on them and none is the dataset's current version"
    )


class Promotion(BaseModel):
    """One promotion: ``run_id`` became the served run at ``at``, replacing
    ``previous_run_id`` (None: the first)."""

    run_id: str
    previous_run_id: str | None
    at: str
    by: str = Field(
        description="who or what promoted it, as the caller said: api, dashboard, cli, lambda"
        " (the ingestion function's policy, invoked directly), library (Python code)"
    )
    reason: str = Field(description="the promotion policy's comparison, or a rollback")
    dataset: str
    recorded: bool = Field(
        True,
        description="false: rebuilt from the latest pointer, its own log entry not written yet"
        " (the next promotion writes it)",
    )


class PromotionsResponse(BaseModel):
    promotions: list[Promotion]


class ReproductionsResponse(BaseModel):
    """A run's reproductions, newest first."""

    reproductions: list[Reproduction]


class PredictionsResponse(BaseModel):
    """A scored run's test split: actual and predicted price of each row, in the same order
    (with ``max_points``, evenly spaced rows of it, the first and the last included)."""

    run_id: str
    y_true: list[float]
    y_pred: list[float]
    n_test: int = Field(description="rows in the test split (more than returned if sampled)")
    evaluated_at: str


# The first house of housing.csv, without its price (13,300,000).
EXAMPLE_HOUSE: dict[str, Any] = {
    "area": 7420,
    "bedrooms": 4,
    "bathrooms": 2,
    "stories": 3,
    "mainroad": "yes",
    "guestroom": "no",
    "basement": "no",
    "hotwaterheating": "no",
    "airconditioning": "yes",
    "parking": 2,
    "prefarea": "yes",
    "furnishingstatus": "furnished",
}


def _number(rule: dataset.NumberRule) -> Any:
    kind = int if rule.integer else float
    low, high = rule.minimum, rule.maximum
    if rule.integer:
        low, high = int(low), int(high)
    return Annotated[kind, Field(ge=low, le=high), BeforeValidator(_no_bool_or_text)]


def _choice(words: tuple[str, ...]) -> Any:
    return Annotated[Literal[words], BeforeValidator(_normalise)]


def _house_fields() -> dict[str, Any]:
    """House's fields from the dataset's rules (``dataset.NUMBER_RULES`` / ``CHOICES``)."""
    return {
        column: (
            _number(dataset.NUMBER_RULES[column])
            if column in dataset.NUMBER_RULES
            else _choice(dataset.CHOICES[column]),
            ...,
        )
        for column in dataset.HOUSE_COLUMNS
    }


if TYPE_CHECKING:
    House = BaseModel
else:
    House = create_model(
        "House",
        __doc__="One house, as in housing.csv without the price (same types and bounds).",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_HOUSE]}),
        **_house_fields(),
    )


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    houses: Annotated[list[House], Field(min_length=1, max_length=1000)]


class PredictResponse(BaseModel):
    run_id: str
    predictions: list[float]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    mode: str
    checks: dict[str, bool]
    missing: list[str]


# -- registered datasets ---------------------------------------------------------------------
class MainMetric(BaseModel):
    name: str = Field(description="r2 (regression) or accuracy (classification)")
    value: float | None


class CurrentRun(BaseModel):
    run_id: str
    metric: MainMetric | None
    features: list[str] | None = Field(
        None, description="the columns the current model takes (a predict row's fields)"
    )


class DatasetSummary(BaseModel):
    name: str
    task: Literal["regression", "classification"] | None = Field(
        description="None only for a dataset whose document cannot be read (see `error`)"
    )
    target: str | None
    sha256: str | None = Field(description="of the current version")
    rows: int | None
    builtin: bool = Field(description="the built-in housing dataset (its original endpoints)")
    current_run: CurrentRun | None
    error: str | None = Field(
        None, description="why the dataset's stored document cannot be read (tampered or junk)"
    )


class DatasetList(BaseModel):
    datasets: list[DatasetSummary]


class DatasetVersionInfo(BaseModel):
    sha256: str | None
    rows: int | None
    accepted_at: str
    schema_sha256: str | None
    current: bool
    deleted_at: str | None = Field(
        None, description="its bytes were deleted with the last run trained on it"
    )


class DatasetDetail(DatasetSummary):
    model_config = ConfigDict(populate_by_name=True)

    schema_: DatasetSchema = Field(alias="schema")
    versions: list[DatasetVersionInfo] = Field(description="newest first")
    model_kinds: list[str]
    default_model: str


class DatasetRegistered(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    sha256: str
    rows: int
    task: Literal["regression", "classification"]
    target: str
    schema_: DatasetSchema = Field(alias="schema")
    created: bool = Field(description="the dataset is new (else: a new version of it)")


class DatasetRunRequest(TabularOptions):
    """Optional parameters of a run on a dataset; absent fields take the defaults (the task's
    default model, every usable column). ``feature_set`` is the housing dataset's only."""

    feature_set: FeatureSetName | None = None


class DatasetPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=1000)]


class DatasetPredictResponse(BaseModel):
    run_id: str
    predictions: list[Any] = Field(description="numbers (regression) or class labels as in the CSV")
    probabilities: list[dict[str, float]] | None = Field(
        None, description="classification: each row's probability per class label"
    )


class DatasetPredictions(BaseModel):
    """A scored run's test split; for classification with its labels, confusion matrix
    (rows: actual, columns: predicted, in ``labels`` order) and ROC curves."""

    run_id: str
    task: Literal["regression", "classification"]
    y_true: list[Any]
    y_pred: list[Any]
    n_test: int
    evaluated_at: str
    labels: list[Label] | None = None
    confusion: list[list[int]] | None = None
    roc: list[dict[str, Any]] | None = None
