"""Registered datasets: a name, a schema, every accepted version, and a run log of its own.

Key layout in the data bucket (the built-in ``housing`` keeps the original project's keys
and is not stored here):

- ``datasets/<name>/dataset.json``: the dataset's document (target, task, schema, current
  version, history). Its one commit point: a new version or a replaced schema is one
  compare-and-swap of this object on its ETag, after the version's bytes were archived.
- ``datasets/<name>/versions/<sha256>.csv``: every accepted version, written once.
- ``datasets/<name>/runs/<run_id>/...`` and ``datasets/<name>/runs/latest.json``: its runs and
  its pointer (``runlog.py``); the models bucket has ``datasets/<name>/runs/<run_id>/model.skops``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from local_ml_flow.errors import (
    AlreadyExistsError,
    ConcurrentUpdateError,
    CorruptStateError,
    DatasetTooLargeError,
    DatasetValidationError,
    IntegrityError,
    InvalidRequestError,
    KeyNotFoundError,
    NotFoundError,
)
from local_ml_flow.events import HOUSING, valid_dataset_name
from local_ml_flow.ml import tabular
from local_ml_flow.ml.dataset import RecordLines
from local_ml_flow.ml.documents import DatasetSchema
from local_ml_flow.runlog import DATASETS_PREFIX, dataset_prefix
from local_ml_flow.storage import (
    ArtifactStore,
    gather,
    parse_document,
    sha256,
    utc_now,
    verified,
)

_SWAP_ATTEMPTS = 5
_HEX64 = re.compile(r"[0-9a-f]{64}")


class DatasetNotFoundError(NotFoundError):
    """No dataset is registered under this name."""


class Version(BaseModel):
    """An accepted version of a dataset."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sha256: str
    rows: int = Field(ge=0)
    size: int = Field(ge=0)
    accepted_at: str
    schema_sha256: str
    # its bytes were deleted with the last run trained on it (the history stays)
    deleted_at: str | None = None


class DatasetDocument(BaseModel):
    """A registered dataset: its current version and schema, and every version accepted."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    target: str
    task: str
    schema_: DatasetSchema = Field(alias="schema")
    schema_sha256: str
    sha256: str
    rows: int
    versions: list[Version]
    created_at: str
    updated_at: str

    @property
    def schema(self) -> DatasetSchema:  # type: ignore[override]
        return self.schema_

    @model_validator(mode="after")
    def _consistent(self) -> DatasetDocument:
        """What a stored document must hold before anything of it reaches a key or a model:
        a valid name, hex digests, the current version among the versions, and the same
        target and task as its schema (else the document is corrupt)."""
        if not valid_dataset_name(self.name) or self.name == HOUSING:
            raise ValueError("the name is not a dataset name")
        digests = [self.sha256, self.schema_sha256]
        digests += [d for v in self.versions for d in (v.sha256, v.schema_sha256)]
        if not all(_HEX64.fullmatch(d) for d in digests):
            raise ValueError("a sha256 is not 64 lowercase hex digits")
        if not self.versions or self.versions[-1].sha256 != self.sha256:
            raise ValueError("the current version is not the last one accepted")
        if (self.target, self.task) != (self.schema.target, self.schema.task):
            raise ValueError("the target or task differs from the schema's")
        return self


@dataclass(frozen=True)
class Registered:
    """What an upload did: the dataset as it now is, and whether it was new."""

    document: DatasetDocument
    created: bool


def document_key(name: str) -> str:
    return f"{dataset_prefix(name)}dataset.json"


def version_key(name: str, digest: str) -> str:
    return f"{dataset_prefix(name)}versions/{digest}.csv"


def check_name(name: str) -> str:
    """``name`` if it is a registrable dataset name; InvalidRequestError otherwise."""
    if not valid_dataset_name(name):
        raise InvalidRequestError(
            f"dataset name {name[:80]!r} is invalid: use 1-64 characters of a-z, 0-9, '_' and '-'"
        )
    if name == HOUSING:
        raise InvalidRequestError(
            "housing is the built-in dataset: upload a new version of it with PUT /bucket/dataset"
        )
    return name


def _read(store: ArtifactStore, name: str) -> tuple[DatasetDocument | None, str | None]:
    key = document_key(name)
    try:
        blob = store.read(store.data_bucket, key)
    except KeyNotFoundError:
        return None, None
    where = f"s3://{store.data_bucket}/{key}"
    document = parse_document(blob.data, DatasetDocument, where)
    if document.name != name:
        raise CorruptStateError(f"{where} names another dataset ({document.name!r})")
    return document, blob.etag


def get(store: ArtifactStore, name: str) -> DatasetDocument:
    """A registered dataset's document; DatasetNotFoundError if there is none."""
    if not valid_dataset_name(name):
        raise InvalidRequestError(f"dataset name {name[:80]!r} is invalid")
    document, _ = _read(store, name)
    if document is None:
        raise DatasetNotFoundError(
            f"no dataset named {name!r}: register it with PUT /datasets/{name}"
        )
    return document


def names(store: ArtifactStore) -> list[str]:
    """The names of every registered dataset, sorted (a folder without a valid document is
    not a dataset)."""
    found = []
    for prefix in store.list_prefixes(store.data_bucket, DATASETS_PREFIX):
        name = prefix[len(DATASETS_PREFIX) :].rstrip("/")
        if valid_dataset_name(name) and name != HOUSING:
            found.append(name)
    return sorted(found)


def documents(store: ArtifactStore) -> list[DatasetDocument | Unreadable]:
    """Every registered dataset's document, by name; one that cannot be read is listed as
    ``Unreadable`` with the reason (the others are still listed). Folders without a document
    are skipped."""

    def read(name: str) -> DatasetDocument | Unreadable | None:
        try:
            return _read(store, name)[0]
        except CorruptStateError as exc:
            return Unreadable(name, exc.message)

    found = gather(*(lambda n=n: read(n) for n in names(store)))
    return [d for d in found if d is not None]


@dataclass(frozen=True)
class Unreadable:
    """A dataset whose document is not what this project writes (tampered, or junk)."""

    name: str
    error: str


def read_version(store: ArtifactStore, name: str, digest: str, max_bytes: int) -> bytes:
    """The bytes of an accepted version, checked against its sha256."""
    key = version_key(name, digest)
    head = store.head(store.data_bucket, key)
    if head is None:
        raise DatasetNotFoundError(f"dataset {name!r} has no version {digest}")
    if head.size > max_bytes:
        raise DatasetTooLargeError(
            [f"dataset {name!r} is {head.size} bytes, above the limit of {max_bytes} bytes"]
        )
    data = store.get_bytes(store.data_bucket, key)
    return verified(data, f"s3://{store.data_bucket}/{key}", digest)


def add(
    store: ArtifactStore,
    name: str,
    data: bytes,
    *,
    target: str | None = None,
    task: str | None = None,
    replace_schema: bool = False,
    max_bytes: int,
    max_rows: int,
) -> Registered:
    """Register a dataset from a CSV, or accept a new version of it.

    A new dataset needs its ``target``; its schema is inferred (``task`` None: inferred too).
    A new version is validated against the stored schema (every problem listed, nothing
    changed) unless ``replace_schema``: then its schema is inferred again, on purpose. The
    version's bytes are archived (write-once, by sha256) before the dataset's document moves
    to it by one compare-and-swap."""
    check_name(name)
    frame, header = tabular.parse(data, max_bytes=max_bytes, max_rows=max_rows)
    digest = sha256(data)
    for _ in range(_SWAP_ATTEMPTS):
        current, etag = _read_for_update(store, name, replace_schema)
        schema = _schema_for(frame, header, data, current, target, task, replace_schema)
        _archive(store, version_key(name, digest), data, digest)
        now = utc_now()
        version = Version(
            sha256=digest,
            rows=len(frame),
            size=len(data),
            accepted_at=now,
            schema_sha256=schema.structure_sha256(),
        )
        document = DatasetDocument(
            name=name,
            target=schema.target,
            task=schema.task,
            schema=schema,
            schema_sha256=version.schema_sha256,
            sha256=digest,
            rows=len(frame),
            versions=[*(current.versions if current else []), version],
            created_at=current.created_at if current else now,
            updated_at=now,
        )
        try:
            store.put_json(
                store.data_bucket,
                document_key(name),
                document.model_dump(mode="json", by_alias=True),
                once=etag is None,
                if_match=etag,
            )
        except (ConcurrentUpdateError, AlreadyExistsError):
            continue  # another upload moved it meanwhile: validate against what it wrote
        return Registered(document, created=current is None)
    raise ConcurrentUpdateError(f"dataset {name!r} kept changing while this upload was stored")


def _read_for_update(
    store: ArtifactStore, name: str, replace_schema: bool
) -> tuple[DatasetDocument | None, str | None]:
    """The document an upload updates, and its ETag. A corrupt one is an error, unless the
    schema is being replaced: the upload then starts the document again (its history is
    lost with it; the archived versions stay)."""
    try:
        return _read(store, name)
    except CorruptStateError:
        if not replace_schema:
            raise
        head = store.head(store.data_bucket, document_key(name))
        return None, head.etag if head is not None else None


def _archive(store: ArtifactStore, key: str, data: bytes, digest: str) -> None:
    """Keep a version's bytes under its sha256 (write-once). One already there must be these
    bytes (its recorded sha256); one that went missing is written again."""
    head = store.head(store.data_bucket, key)
    if head is None:
        try:
            store.put_bytes(store.data_bucket, key, data, "text/csv", once=True)
        except AlreadyExistsError:  # the same bytes, stored meanwhile by another upload
            head = store.head(store.data_bucket, key)
    if head is not None and head.metadata.get("sha256") != digest:
        raise IntegrityError(
            f"s3://{store.data_bucket}/{key} holds other bytes than its name says: refusing to"
            " accept this version over it"
        )


def _schema_for(
    frame: pd.DataFrame,
    header: list[str],
    data: bytes,
    current: DatasetDocument | None,
    target: str | None,
    task: str | None,
    replace_schema: bool,
) -> DatasetSchema:
    """The schema the upload is stored with: inferred for a new dataset or a replaced schema,
    the stored one (with what this version shows) otherwise."""
    if current is None or replace_schema:
        if current is None and not target:
            raise InvalidRequestError("target is required to register a new dataset")
        goal = target or (current.target if current else "")
        if task is None and current is not None and goal == current.target:
            task = current.task
        return tabular.infer_schema(frame, goal, task)
    hint = " (to accept a changed schema on purpose: ?schema=replace, or --replace-schema)"
    if target is not None and target != current.target:
        raise InvalidRequestError(
            f"dataset {current.name!r} predicts {current.target!r}, not {target!r}{hint}"
        )
    if task is not None and task != current.task:
        raise InvalidRequestError(f"dataset {current.name!r} is {current.task}, not {task}{hint}")
    problems = tabular.validate(frame, header, current.schema, RecordLines(data))
    if problems:
        raise DatasetValidationError(
            [*problems, f"this version does not fit the stored schema{hint}"]
        )
    problems = tabular.trainable_problems(frame, current.schema)
    if problems:
        raise DatasetValidationError(problems)
    return tabular.observe(frame, current.schema)


def drop_versions(store: ArtifactStore, name: str, unused: set[str]) -> list[str]:
    """Delete the versions in ``unused`` (no run needs them) but the current one: each is
    marked deleted in the dataset's document (compare-and-swapped; the history stays), then
    its bytes go. Returns their sha256s."""
    for _ in range(_SWAP_ATTEMPTS):
        document, etag = _read(store, name)
        if document is None:
            return []
        dropped = sorted(
            v.sha256
            for v in document.versions
            if v.sha256 in unused and v.sha256 != document.sha256 and v.deleted_at is None
        )
        if not dropped:
            return []
        now = utc_now()
        versions = [
            v.model_copy(update={"deleted_at": now}) if v.sha256 in dropped else v
            for v in document.versions
        ]
        updated = document.model_copy(update={"versions": versions})
        try:
            store.put_json(
                store.data_bucket,
                document_key(name),
                updated.model_dump(mode="json", by_alias=True),
                if_match=etag,
            )
        except ConcurrentUpdateError:
            continue  # an upload moved it meanwhile: look again
        for digest in dropped:
            store.purge(store.data_bucket, version_key(name, digest), exact=True)
        return dropped
    return []
