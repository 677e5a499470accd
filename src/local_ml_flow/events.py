"""The Lambda events as pydantic models; run ids and run parameters with their bounds, once.

Ingestion: ``{"run_id"?, "model"?, "feature_set"?, "test_size"?, "random_state"?, "promote"?}``;
inference: ``{"run_id"?}``; ``{}`` means defaults. The API's request models, the CLI and the
settings reuse these types, so every entry point accepts the same values.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import ErrorDetails

from local_ml_flow.errors import InvalidRequestError
from local_ml_flow.ml.kinds import MODEL_KINDS
from local_ml_flow.ml.schema import FEATURE_SETS

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
RANDOM_STATE_MAX = 2**32 - 1  # numpy seeds are 32-bit unsigned integers
_RUN_ID_RE = re.compile(RUN_ID_PATTERN)


def _valid_run_id(value: str) -> str:
    if not _RUN_ID_RE.match(value) or ".." in value:
        raise ValueError(
            f"run_id {value!r} is invalid: use 1-100 letters, digits, '_', '-' or '.',"
            " starting with a letter or digit"
        )
    return value


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
FeatureSetName = Annotated[
    str,
    AfterValidator(_one_of("feature_set", sorted(FEATURE_SETS))),
    WithJsonSchema({"type": "string", "enum": list(FEATURE_SETS)}),
]
TestSize = Annotated[float, Field(gt=0, lt=1)]
RandomState = Annotated[int, Field(ge=0, le=RANDOM_STATE_MAX)]

# What each field accepts, for error messages.
_RULES = {
    "run_id": "a string",
    "model": f"one of {list(MODEL_KINDS)}",
    "feature_set": f"one of {list(FEATURE_SETS)}",
    "test_size": "a number with 0 < x < 1",
    "random_state": f"a non-negative integer (at most {RANDOM_STATE_MAX})",
    "promote": "true or false",
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


class RunOptions(BaseModel):
    """Run parameters a caller may choose; an absent (or null) one takes the defaults."""

    model_config = _STRICT

    model: ModelKind | None = None
    feature_set: FeatureSetName | None = None
    test_size: TestSize | None = None
    random_state: RandomState | None = None

    def over(self, defaults: RunParameters) -> RunParameters:
        """These options over ``defaults``."""
        chosen = self.model_dump(include=set(RunParameters.model_fields), exclude_none=True)
        return defaults.model_copy(update=chosen)


class IngestEvent(RunOptions):
    """The ingestion function's event."""

    run_id: RunId | None = None
    promote: bool = True  # False: the caller promotes once the whole run succeeded


class EvaluateEvent(BaseModel):
    """The inference function's event (no run id: the latest run)."""

    model_config = _STRICT

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
