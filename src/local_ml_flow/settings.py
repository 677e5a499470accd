"""Settings: environment variables prefixed ``LMF_`` (and a ``.env`` file).

AWS endpoint, region and credentials come from the standard ``AWS_*`` variables,
which boto3 reads itself; they are never settings of ours.
"""

from __future__ import annotations

import os
import re
import tempfile
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from local_ml_flow.events import (
    FeatureSetName,
    ModelKind,
    Promotion,
    RandomState,
    RunParameters,
    TestSize,
)

_DEFAULTS = RunParameters()

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # matched whole


class InvokerKind(StrEnum):
    """How functions are invoked: in-process or through the Lambda API."""

    LOCAL = "local"
    LAMBDA = "lambda"


class Mode(StrEnum):
    """Where the AWS side runs."""

    EMBEDDED = "embedded"
    LOCALSTACK = "localstack"
    AWS = "aws"


class Settings(BaseSettings):
    """All configuration of local-ml-flow; invalid values fail at startup."""

    model_config = SettingsConfigDict(
        env_prefix="LMF_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_bucket: str = "local-ml-flow-data"
    models_bucket: str = "local-ml-flow-models"
    dataset_key: str = "housing.csv"
    ingestion_function: str = "local-ml-flow-ingestion"
    inference_function: str = "local-ml-flow-inference"

    # defaults of a run's parameters (each event or request may choose its own)
    model: ModelKind = _DEFAULTS.model
    feature_set: FeatureSetName = _DEFAULTS.feature_set
    test_size: TestSize = _DEFAULTS.test_size
    random_state: RandomState = _DEFAULTS.random_state

    # promotion gate: a run whose test R² is below this never becomes current (unset: none)
    min_r2: Annotated[float, Field(allow_inf_nan=False)] | None = None
    # promotion policy: better (keep the current run when the new one scores worse) or
    # always (every succeeded run becomes current, as in the original project)
    promotion: Promotion = "better"
    # retention: after each run, delete the finished runs of its dataset beyond the newest N
    # (the current run and pinned runs are never deleted; unset: every run is kept)
    keep_runs: Annotated[int, Field(ge=1)] | None = None
    # retrain when data lands: an upload of housing's dataset key or of a registered
    # dataset's version starts a run (embedded mode: S3 notifications of the emulator;
    # LocalStack and AWS: Terraform's retrain_on_upload)
    retrain_on_upload: bool = False

    max_dataset_bytes: Annotated[int, Field(gt=0)] = 200 * 1024 * 1024
    max_dataset_rows: Annotated[int, Field(gt=0)] = 2_000_000

    invoker: InvokerKind | None = None
    mode: Mode | None = None
    function_timeout_s: Annotated[int, Field(gt=0, le=900)] = 300

    embedded_host: str = "127.0.0.1"
    embedded_port: Annotated[int, Field(gt=0, lt=65536)] = 4566
    dataset_path: Path | None = None
    dataset_url: str = "https://raw.githubusercontent.com/MathieuAudibert/local-ml-flow/main/src/config/housing.csv"
    dataset_sha256: str = "53c664e09e63570198f4197daa9d6e96b5fea6488d4a1b9259d192df2ce51ccf"
    cache_dir: Path = Field(default_factory=lambda: _default_cache_dir())
    # Embedded mode: where the emulator keeps S3 objects, functions and settings.
    state_dir: Path = Field(default_factory=lambda: default_state_dir())

    api_host: str = "127.0.0.1"
    api_port: Annotated[int, Field(gt=0, lt=65536)] = 8000
    max_upload_bytes: Annotated[int, Field(gt=0)] = 50 * 1024 * 1024
    max_predict_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    body_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 30.0
    # a whole request body must arrive within this (a trickle of bytes never stalls)
    body_deadline_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 120.0
    header_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # 0: /predict and /result check the pointer on every request; N > 0: trust it N seconds
    model_refresh_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    # server logs: level, and one JSON object per line instead of text
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False

    def run_defaults(self) -> RunParameters:
        """The configured defaults of a run's parameters."""
        return RunParameters(
            model=self.model,
            feature_set=self.feature_set,
            test_size=self.test_size,
            random_state=self.random_state,
        )

    @field_validator("data_bucket", "models_bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid S3 bucket name")
        return value

    @field_validator("dataset_key", "ingestion_function", "inference_function")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("state_dir", mode="before")
    @classmethod
    def _state_dir(cls, value: object) -> object:
        """An empty value would be the current directory: refused, not guessed."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty: unset it for the default, or name a directory")
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        """A comma-separated list (``api.local,my-host``) or a list; names compared lower-case."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return [str(v).strip().lower().strip("[]") for v in value if str(v).strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("dataset_sha256")
    @classmethod
    def _sha256(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be 64 lowercase hex digits")
        return value

    @model_validator(mode="after")
    def _distinct_buckets(self) -> Settings:
        if self.data_bucket == self.models_bucket:
            raise ValueError("data_bucket and models_bucket must differ")
        return self


def _default_cache_dir() -> Path:
    """~/.cache/local-ml-flow; a temporary folder where there is no home (AWS Lambda)."""
    try:
        return Path.home() / ".cache" / "local-ml-flow"
    except RuntimeError:
        return Path(tempfile.gettempdir()) / "local-ml-flow"


def checkout() -> Path | None:
    """The git checkout this package runs from (an editable install: ``start_all.sh``,
    ``./bin/local-ml-flow``, ``.venv/bin/local-ml-flow``), or None when it is installed."""
    root = Path(__file__).resolve().parents[2]
    if (root / "bin" / "start_all.sh").is_file() and (root / "pyproject.toml").is_file():
        return root
    return None


def command() -> str:
    """How users run this CLI: ``./bin/local-ml-flow`` in a checkout, else ``local-ml-flow``."""
    return "./bin/local-ml-flow" if checkout() is not None else "local-ml-flow"


def default_state_dir() -> Path:
    """``.lmf/state`` of the checkout it runs from, whatever the entry point; installed,
    $XDG_DATA_HOME/local-ml-flow/state (default ~/.local/share/local-ml-flow/state)."""
    root = checkout()
    if root is not None:
        return root / ".lmf" / "state"
    base = os.environ.get("XDG_DATA_HOME")
    if base:
        return Path(base) / "local-ml-flow" / "state"
    try:
        return Path.home() / ".local" / "share" / "local-ml-flow" / "state"
    except RuntimeError:
        return Path(tempfile.gettempdir()) / "local-ml-flow" / "state"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process."""
    return Settings()
