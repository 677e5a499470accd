"""The Lambda events as pydantic models; run ids and run parameters with their bounds, once.

Ingestion: ``{"dataset"?, "run_id"?, "model"?, "feature_set"?, "features"?, "test_size"?,
"random_state"?, "promote"?, "promotion"?}``; inference: ``{"dataset"?, "run_id"?}``; ``{}``
means defaults (and ``dataset`` absent means the built-in ``housing``). The API's request
models, the CLI and the settings reuse these types, so every entry point accepts the same values.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import ErrorDetails

from local_ml_flow.errors import InvalidRequestError
from local_ml_flow.ml.kinds import ALL_MODEL_KINDS, MODEL_KINDS
from local_ml_flow.ml.schema import FEATURE_SETS

# Ids and names: matched whole in Python (``fullmatch``); the anchored forms are for JSON
# Schema and OpenAPI, whose (ECMA) ``$`` is the very end.
_RUN_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
_DATASET_NAME = r"[a-z0-9_-]{1,64}"
RUN_ID_PATTERN = f"^{_RUN_ID}$"
DATASET_NAME_PATTERN = f"^{_DATASET_NAME}$"
HOUSING = "housing"  # the built-in dataset: its keys are the original project's
MAX_FEATURES = 500
RANDOM_STATE_MAX = 2**32 - 1  # numpy seeds are 32-bit unsigned integers
_RUN_ID_RE = re.compile(_RUN_ID)
_DATASET_NAME_RE = re.compile(_DATASET_NAME)


def valid_run_id(value: str) -> bool:
    """Whether ``value`` is a run id (matched whole; no ``..``)."""
    return _RUN_ID_RE.fullmatch(value) is not None and ".." not in value


def _valid_run_id(value: str) -> str:
    if not valid_run_id(value):
        raise ValueError(
            f"run_id {value[:120]!r} is invalid: use 1-100 letters, digits, '_', '-' or '.',"
            " starting with a letter or digit"
        )
    return value


def _valid_dataset_name(value: str) -> str:
    if not _DATASET_NAME_RE.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ValueError(
            f"dataset name {shown!r} is invalid: use 1-64 characters of a-z, 0-9, '_' and '-'"
        )
    return value


def valid_dataset_name(value: str) -> bool:
    """Whether ``value`` is a dataset name (matched whole)."""
    return _DATASET_NAME_RE.fullmatch(value) is not None


def _one_of(field: str, choices: Sequence[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{field} {value!r} is unknown; expected one of {choices}")
        return value

    return check


RunId = Annotated[
    str,
    AfterValidator(_valid_run_id),
    WithJsonSchema({"type": "string", "pattern": RUN_ID_PATTERN, "maxLength": 100}),
]
ModelKind = Annotated[
    str,
    AfterValidator(_one_of("model", MODEL_KINDS)),
    WithJsonSchema({"type": "string", "enum": list(MODEL_KINDS)}),
]
AnyModelKind = Annotated[
    str,
    AfterValidator(_one_of("model", ALL_MODEL_KINDS)),
    WithJsonSchema({"type": "string", "enum": list(ALL_MODEL_KINDS)}),
]
DatasetName = Annotated[
    str,
    AfterValidator(_valid_dataset_name),
    WithJsonSchema({"type": "string", "pattern": DATASET_NAME_PATTERN, "maxLength": 64}),
]
FeatureList = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200)]],
    Field(min_length=1, max_length=MAX_FEATURES),
]
FeatureSetName = Annotated[
    str,
    AfterValidator(_one_of("feature_set", sorted(FEATURE_SETS))),
    WithJsonSchema({"type": "string", "enum": list(FEATURE_SETS)}),
]
TestSize = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
# better: a new run becomes current only if it scores at least as well as the current one;
# always: every succeeded run becomes current (the original project's way)
Promotion = Literal["better", "always"]
RandomState = Annotated[int, Field(ge=0, le=RANDOM_STATE_MAX)]

# What each field accepts, for error messages.
_RULES = {
    "run_id": "a string",
    "model": f"one of {list(MODEL_KINDS)}",
    "feature_set": f"one of {list(FEATURE_SETS)}",
    "test_size": "a number with 0 < x < 1",
    "random_state": f"a non-negative integer (at most {RANDOM_STATE_MAX})",
    "promote": "true or false",
    "promotion": "'better' or 'always'",
    "dataset": "a dataset name (1-64 characters of a-z, 0-9, '_' and '-')",
    "features": "a non-empty list of column names",
}
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def new_run_id() -> str:
    """Time-sortable and unique: ``20261126T054012123456Z-3f9a1c``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{secrets.token_hex(3)}"


class RunParameters(BaseModel):
    """What a training run is made of; the field defaults are the project's defaults."""

    model_config = _STRICT

    model: ModelKind = "linear"
    feature_set: FeatureSetName = "all"
    test_size: TestSize = 0.2
    random_state: RandomState = 42


class TabularParameters(BaseModel):
    """What a training run on a registered dataset is made of (``features`` None: every
    column its schema allows)."""

    model_config = _STRICT

    model: AnyModelKind
    test_size: TestSize = 0.2
    random_state: RandomState = 42
    features: FeatureList | None = None


class RunOptions(BaseModel):
    """Run parameters a caller may choose; an absent (or null) one takes the defaults."""

    model_config = _STRICT

    model: ModelKind | None = None
    feature_set: FeatureSetName | None = None
    test_size: TestSize | None = None
    random_state: RandomState | None = None
    promotion: Promotion | None = None

    def over(self, defaults: RunParameters) -> RunParameters:
        """These options over ``defaults``."""
        chosen = self.model_dump(include=set(RunParameters.model_fields), exclude_none=True)
        return defaults.model_copy(update=chosen)


class TabularOptions(BaseModel):
    """Run parameters a caller may choose for a registered dataset; absent ones take the
    defaults (the task's default model)."""

    model_config = _STRICT

    model: AnyModelKind | None = None
    test_size: TestSize | None = None
    random_state: RandomState | None = None
    features: FeatureList | None = None
    promotion: Promotion | None = None


class IngestEvent(BaseModel):
    """The ingestion function's event (``model`` of any task: the dataset decides which
    apply; ``feature_set`` is housing's, ``features`` a registered dataset's)."""

    model_config = _STRICT

    dataset: DatasetName | None = None
    run_id: RunId | None = None
    model: AnyModelKind | None = None
    feature_set: FeatureSetName | None = None
    features: FeatureList | None = None
    test_size: TestSize | None = None
    random_state: RandomState | None = None
    promote: bool = True  # False: the caller promotes once the whole run succeeded
    promotion: Promotion | None = None  # the policy when it promotes (None: the setting)

    @property
    def housing(self) -> bool:
        return self.dataset in (None, HOUSING)

    def options(self) -> RunOptions:
        """The housing run's options; InvalidRequestError for a field it does not take."""
        if self.features is not None:
            raise InvalidRequestError(
                "features applies to registered datasets; housing takes feature_set"
                f" ({' or '.join(FEATURE_SETS)})"
            )
        if self.model is not None and self.model not in MODEL_KINDS:
            raise InvalidRequestError(
                f"model {self.model!r} is not a regression model; housing takes one of"
                f" {list(MODEL_KINDS)}"
            )
        return RunOptions(
            model=self.model,
            feature_set=self.feature_set,
            test_size=self.test_size,
            random_state=self.random_state,
        )

    def tabular_options(self) -> TabularOptions:
        """A registered dataset's run options; InvalidRequestError for housing's feature_set."""
        if self.feature_set is not None:
            raise InvalidRequestError(
                f"feature_set is housing's; dataset {self.dataset!r} takes features"
                " (a list of its columns)"
            )
        return TabularOptions(
            model=self.model,
            test_size=self.test_size,
            random_state=self.random_state,
            features=self.features,
        )


class EvaluateEvent(BaseModel):
    """The inference function's event (no run id: the dataset's current run)."""

    model_config = _STRICT

    dataset: DatasetName | None = None
    run_id: RunId | None = None


Event = TypeVar("Event", bound=BaseModel)


def _message(error: ErrorDetails) -> str:
    field = str(error["loc"][0]) if error["loc"] else "event"
    if error["type"] == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return f"{field} must be {_RULES.get(field, 'valid')}, got {error['input']!r}"


def parse_event(kind: type[Event], event: Any) -> Event:
    """Validate a Lambda event (None counts as ``{}``); InvalidRequestError says what is wrong."""
    if event is None:
        event = {}
    if not isinstance(event, Mapping):
        raise InvalidRequestError(f"event must be a JSON object, got {type(event).__name__}")
    allowed = set(kind.model_fields)
    unknown = sorted(str(name) for name in set(event) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"unknown event fields: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    try:
        return kind.model_validate(dict(event))
    except ValidationError as exc:
        raise InvalidRequestError("; ".join(_message(e) for e in exc.errors())) from None
