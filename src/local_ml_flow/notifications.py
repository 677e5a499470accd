"""Retrain when data lands: an S3 upload notification on the data bucket, mapped to the
dataset version it brought, becomes a run (the ingestion handler runs it: ``handlers.py``).

Which uploads count (``LMF_RETRAIN_ON_UPLOAD`` embedded, ``retrain_on_upload`` in Terraform):

- housing's dataset key (``housing.csv``): a new current dataset, however it was written (the
  API, the CLI, ``aws s3 cp``); a file that is not a valid dataset makes a failed run saying
  why, and the current model keeps serving;
- a registered dataset's version key, ``datasets/<name>/versions/<sha256>.csv``: written once,
  after the upload was validated, before the dataset's document moves to it (the run waits a
  moment for that move).

The notification's filters (``FILTERS``, and the same in terraform/main.tf) also let through
the pipeline's own archive of housing (``datasets/housing-<sha256>.csv``): that and any other
key is ignored, with nothing written. The pipeline never writes either kind of key a run is
made for, so a run never starts another. S3 delivers an event at least once (and retries a
failed invocation): the run id is derived from the event, so a repeated delivery finds its
run already queued and does nothing.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from local_ml_flow import registry
from local_ml_flow.errors import AlreadyExistsError, InvalidRequestError
from local_ml_flow.events import HOUSING, valid_dataset_name
from local_ml_flow.runlog import RunLog
from local_ml_flow.settings import Settings

# The notification configuration's filters (one Lambda configuration each; S3 filters are a
# prefix and a suffix). ``{dataset_key}``: the settings' housing key.
FILTERS = (
    {"id": "retrain-housing", "prefix": "{dataset_key}", "suffix": None},
    {"id": "retrain-datasets", "prefix": "datasets/", "suffix": ".csv"},
)
EVENTS = ["s3:ObjectCreated:*"]
# How long a registered version's run waits for the dataset's document to name the version
# (it is archived a moment before the document moves to it).
SETTLE_S = 10.0
_VERSION_KEY = re.compile(r"datasets/([a-z0-9_-]{1,64})/versions/([0-9a-f]{64})\.csv")
_MAX_RECORDS = 100


def is_s3_event(event: Any) -> bool:
    """Whether a function's event is an S3 notification (``{"Records": [...]}``)."""
    return isinstance(event, Mapping) and "Records" in event


def configuration(function_arn: str, dataset_key: str) -> dict[str, Any]:
    """The data bucket's notification configuration (boto3's shape) invoking ``function_arn``."""
    configs = []
    for spec in FILTERS:
        rules = [{"Name": "prefix", "Value": str(spec["prefix"]).format(dataset_key=dataset_key)}]
        if spec["suffix"] is not None:
            rules.append({"Name": "suffix", "Value": str(spec["suffix"])})
        configs.append(
            {
                "Id": spec["id"],
                "LambdaFunctionArn": function_arn,
                "Events": EVENTS,
                "Filter": {"Key": {"FilterRules": rules}},
            }
        )
    return {"LambdaFunctionConfigurations": configs}


@dataclass(frozen=True)
class Upload:
    """One record of an S3 notification: an object written."""

    bucket: str
    key: str  # decoded (S3 sends it URL-encoded)
    event_name: str
    event_time: datetime
    etag: str | None
    version_id: str | None
    sequencer: str | None

    @property
    def where(self) -> str:
        """The object, for messages (escaped: a key may hold any character)."""
        return repr(f"s3://{self.bucket}/{self.key}"[:300])

    def run_id(self) -> str:
        """The run this upload starts: time-sortable like any run id, the same for every
        delivery of this event (``-s3-`` says where it came from)."""
        stamp = self.event_time.strftime("%Y%m%dT%H%M%S%fZ")
        parts = (self.bucket, self.key, self.version_id, self.sequencer, self.etag, stamp)
        digest = hashlib.sha256("\n".join(p or "" for p in parts).encode()).hexdigest()
        return f"{stamp}-s3-{digest[:8]}"


def _text(record: Mapping[str, Any], *path: str) -> str | None:
    value: Any = record
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value if isinstance(value, str) else None


def parse(event: Any) -> list[Upload]:
    """The uploads of an S3 notification; InvalidRequestError says what is malformed."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not 0 < len(records) <= _MAX_RECORDS:
        raise InvalidRequestError(
            f"an S3 notification has Records, a list of 1 to {_MAX_RECORDS} records"
        )
    uploads = []
    for n, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InvalidRequestError(f"Records[{n}] is not an object")
        bucket = _text(record, "s3", "bucket", "name")
        raw_key = _text(record, "s3", "object", "key")
        name, when = _text(record, "eventName"), _text(record, "eventTime")
        if not (bucket and raw_key and name and when):
            raise InvalidRequestError(
                f"Records[{n}] lacks s3.bucket.name, s3.object.key, eventName or eventTime"
            )
        try:
            stamp = datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            raise InvalidRequestError(
                f"Records[{n}].eventTime {when[:40]!r} is not an ISO-8601 time"
            ) from None
        uploads.append(
            Upload(
                bucket=bucket,
                key=unquote_plus(raw_key),
                event_name=name,
                event_time=stamp,
                etag=(_text(record, "s3", "object", "eTag") or "").strip('"') or None,
                version_id=_text(record, "s3", "object", "versionId"),
                sequencer=_text(record, "s3", "object", "sequencer"),
            )
        )
    return uploads


@dataclass(frozen=True)
class Retrain:
    """A run to make for an upload: queued under ``run_id`` in ``dataset``'s run log."""

    upload: Upload
    run_id: str
    dataset: str

    def ingest_event(self) -> dict[str, Any]:
        """The ingestion event of the run (default parameters; promoted once scored)."""
        named = {} if self.dataset == HOUSING else {"dataset": self.dataset}
        return {**named, "run_id": self.run_id, "promote": False}

    def evaluate_event(self) -> dict[str, Any]:
        named = {} if self.dataset == HOUSING else {"dataset": self.dataset}
        return {**named, "run_id": self.run_id}


@dataclass(frozen=True)
class Ignored:
    """An upload that starts no run, and why."""

    upload: Upload
    reason: str

    def said(self) -> dict[str, Any]:
        return {"object": self.upload.where, "run_id": None, "ignored": self.reason}


def plan(
    upload: Upload,
    runs: RunLog,
    settings: Settings,
    *,
    settle_s: float = SETTLE_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrain | Ignored:
    """What an upload makes: a run, queued here (its id claimed once: a repeated delivery is
    ignored), or nothing, with the reason. Writes nothing for an ignored upload."""
    if not upload.event_name.startswith("ObjectCreated:"):
        return Ignored(upload, f"{upload.event_name[:80]!r} is not an upload")
    if upload.bucket != settings.data_bucket:
        return Ignored(upload, f"{upload.where} is not in the data bucket {settings.data_bucket}")
    if upload.key == settings.dataset_key:
        reason = _superseded_housing(upload, runs)
        dataset = HOUSING
    else:
        match = _VERSION_KEY.fullmatch(upload.key)
        if match is None or not valid_dataset_name(match.group(1)) or match.group(1) == HOUSING:
            return Ignored(upload, f"{upload.where} is not a dataset version this stack trains on")
        dataset = match.group(1)
        reason = _unsettled_version(upload, runs, dataset, match.group(2), settle_s, sleep)
    if reason is not None:
        return Ignored(upload, reason)
    run_id = upload.run_id()
    try:
        runs.of_dataset(dataset).queue(run_id, {"trigger": f"s3://{upload.bucket}/{upload.key}"})
    except AlreadyExistsError:
        return Ignored(upload, f"run {run_id} was started by an earlier delivery of this event")
    return Retrain(upload, run_id, dataset)


def _superseded_housing(upload: Upload, runs: RunLog) -> str | None:
    """Why housing's upload starts no run (another upload replaced it since), or None."""
    head = runs.store.head(upload.bucket, upload.key)
    if head is None:
        return f"{upload.where} was deleted since"
    if upload.etag is not None and head.etag.strip('"') != upload.etag:
        return f"{upload.where} was replaced since: the newer upload's event trains on it"
    return None


def _unsettled_version(
    upload: Upload,
    runs: RunLog,
    dataset: str,
    digest: str,
    settle_s: float,
    sleep: Callable[[float], None],
) -> str | None:
    """Why a registered version's upload starts no run, or None once the dataset's current
    version is this one (waiting up to ``settle_s`` for its document to move to it)."""
    deadline = time.monotonic() + settle_s
    while True:
        try:
            document = registry.get(runs.store, dataset)
        except registry.DatasetNotFoundError:
            document = None
        if document is not None and document.sha256 == digest:
            return None
        if document is not None and any(v.sha256 == digest for v in document.versions):
            return f"version {digest[:12]} of dataset {dataset!r} is no longer its current one"
        if time.monotonic() >= deadline:
            return (
                f"{upload.where} is not an accepted version of dataset {dataset!r} (its"
                " document did not name it): versions are accepted through PUT /datasets/"
                f"{dataset} or `dataset upload`"
            )
        sleep(0.2)
