"""A run as one file: export a succeeded run to a zip, import it into another stack.

The zip holds ``bundle.json`` (the index: format, run id, dataset, the exporting stack's
library versions, and every other member's path, size and sha256), the run's own files
(``data/<name>``: its request, manifest, metrics, predictions, test split (``test_split.npz``,
or ``.npy`` for a run stored before it);
``models/<name>``: ``model.skops``) and the dataset version it trained on
(``dataset/<sha256>.csv``). Pickles are never put in one: the original project's
``*.joblib`` copies of a housing run are made again on import from the safe formats.

Import reads nothing it has not checked: member names matched whole (no folders, no ``..``,
no links), counts and sizes bounded before and while reading, every member's sha256 against
the index, the index against the run's manifest (model, test split, dataset version), the
run's documents parsed through their types. A refusal is one ``BundleError`` (422) naming the
member; nothing is written before every check passed. The run is then written once under
its own prefix (its request last: a run half imported is never listed) and appears as a
succeeded run, not current: promoting it (the usual path) checks that it can be served.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from local_ml_flow import datasets, pipeline, registry
from local_ml_flow.errors import (
    AlreadyExistsError,
    CorruptStateError,
    InvalidRequestError,
    LocalMlFlowError,
)
from local_ml_flow.events import HOUSING, RunId, valid_dataset_name
from local_ml_flow.ml.kinds import model_spec
from local_ml_flow.ml.schema import TARGET
from local_ml_flow.runlog import (
    DELETED,
    ERROR,
    KEPT,
    MANIFEST,
    METRICS,
    MODEL_FILE,
    MODEL_KEY,
    PINNED,
    QUEUED,
    REPRODUCTION_PREFIX,
    REQUEST,
    TEST_SPLIT_FILE,
    X_TEST_FILE,
    X_TEST_KEY,
    Y_TEST_FILE,
    Y_TEST_KEY,
    Manifest,
    Metrics,
    Request,
    RunLog,
)
from local_ml_flow.storage import (
    array_from_bytes,
    gather,
    model_from_bytes,
    parse_document,
    sha256,
    split_from_bytes,
    utc_now,
)

FORMAT: Literal["local-ml-flow-run-bundle"] = "local-ml-flow-run-bundle"
INDEX = "bundle.json"
MAX_MEMBERS = 64
MEDIA_TYPE = "application/zip"
_FILE = r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*"  # one name: no folder, no '..'
_MEMBER = re.compile(rf"(data|models)/{_FILE}|dataset/[0-9a-f]{{64}}\.csv")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# A run's files a bundle leaves out: pickles (made again on import), and the source stack's
# decisions about it: why its policy kept another of its runs current (that run is not in the
# bundle), its pin, its deletion; and its reproductions (attempts on the source stack: as
# many as were made, and the importing stack reproduces the run itself).
_LEFT_OUT = (".joblib",)
_LEFT_OUT_NAMES = {KEPT, PINNED, DELETED}
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # members' time: the same run exports the same bytes


class BundleError(InvalidRequestError):
    """A bundle that cannot be imported: what is wrong, and which member."""


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: str = Field(max_length=200)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Index(BaseModel):
    """``bundle.json``: what the bundle holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal["local-ml-flow-run-bundle"]
    version: Literal[1]
    run_id: RunId
    dataset: str = Field(max_length=64)
    exported_at: str = Field(max_length=40)
    # the libraries of the stack that exported it (the run's own are in its manifest)
    environment: dict[str, str]
    members: list[Member] = Field(max_length=MAX_MEMBERS)


def file_name(run_id: str) -> str:
    """The bundle's file name for downloads: ``run-<run_id>.zip``."""
    return f"run-{run_id}.zip"


# -- export ------------------------------------------------------------------------------


def export(runs: RunLog, run_id: str, *, max_dataset_bytes: int) -> bytes:
    """A succeeded run of ``runs``' dataset as a zip; RunNotFoundError for an unknown run,
    InvalidRequestError for one that did not succeed, IntegrityError if what is stored does
    not match its manifest."""
    record = runs.record(run_id)
    if record["status"] != "succeeded":
        raise InvalidRequestError(
            f"run {run_id!r} is {record['status']}: only a succeeded run is exported"
        )
    store = runs.store
    manifest = runs.manifest(run_id)
    prefix = runs.key(run_id, "")
    found = gather(
        lambda: store.list_objects(store.data_bucket, prefix),
        lambda: store.list_objects(store.models_bucket, prefix),
    )
    wanted: list[tuple[str, str, str]] = []  # (member path, bucket, key)
    for folder, bucket, listed in zip(
        ("data", "models"), (store.data_bucket, store.models_bucket), found, strict=True
    ):
        for obj in listed:
            name = obj.key[len(prefix) :]
            if (
                "/" in name
                or name.endswith(_LEFT_OUT)
                or name in _LEFT_OUT_NAMES
                or name.startswith(REPRODUCTION_PREFIX)
            ):
                continue
            wanted.append((f"{folder}/{name}", bucket, obj.key))

    def reader(bucket: str, key: str) -> Callable[[], bytes]:
        return lambda: store.get_bytes(bucket, key)

    blobs = gather(
        *(reader(b, k) for _, b, k in wanted),
        lambda: _dataset_version(runs, manifest, max_dataset_bytes),
    )
    files = dict(zip([path for path, _, _ in wanted], blobs, strict=False))
    files[f"dataset/{manifest.dataset_sha256}.csv"] = blobs[-1]
    _check_against_manifest(files, manifest, "stored")
    index = Index(
        format=FORMAT,
        version=1,
        run_id=run_id,
        dataset=runs.dataset,
        exported_at=utc_now(),
        environment=pipeline.environment(),
        members=[Member(path=p, size=len(d), sha256=sha256(d)) for p, d in sorted(files.items())],
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in [
            (INDEX, index.model_dump_json(indent=2).encode()),
            *sorted(files.items()),
        ]:
            info = zipfile.ZipInfo(path, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _dataset_version(runs: RunLog, manifest: Manifest, max_bytes: int) -> bytes:
    """The bytes of the dataset version a run trained on (checked against its sha256)."""
    digest, store = manifest.dataset_sha256, runs.store
    if runs.dataset != HOUSING:
        return registry.read_version(store, runs.dataset, digest, max_bytes)
    key = datasets.archive_key(store, digest)
    data = store.get_bytes(store.data_bucket, key)
    if sha256(data) != digest:
        raise CorruptStateError(f"s3://{store.data_bucket}/{key} does not hold its sha256's bytes")
    return data


def _check_against_manifest(files: dict[str, bytes], manifest: Manifest, what: str) -> None:
    """The model, test split and dataset version are the ones the manifest names."""
    expected = {
        f"models/{MODEL_FILE}": manifest.model_sha256,
        f"dataset/{manifest.dataset_sha256}.csv": manifest.dataset_sha256,
    }
    if manifest.test_split_sha256 is not None:  # one file (since test_split.npz)
        expected[f"data/{TEST_SPLIT_FILE}"] = manifest.test_split_sha256
    else:
        expected[f"data/{X_TEST_FILE}"] = manifest.x_test_sha256
        expected[f"data/{Y_TEST_FILE}"] = manifest.y_test_sha256
    for path, digest in expected.items():
        data = files.get(path)
        if data is None:
            raise BundleError(f"the bundle has no {path}, which the run's manifest names")
        if sha256(data) != digest:
            raise BundleError(f"{path}: its {what} bytes are not the ones the run's manifest names")
    x, y = _split(files, manifest)
    if (sha256(x), sha256(y)) != (manifest.x_test_sha256, manifest.y_test_sha256):
        raise BundleError("the test split's arrays are not the ones the run's manifest names")


def _split(files: dict[str, bytes], manifest: Manifest) -> tuple[bytes, bytes]:
    """The .npy bytes of the run's test split, from whichever layout its manifest names."""
    if manifest.test_split_sha256 is None:
        return files[f"data/{X_TEST_FILE}"], files[f"data/{Y_TEST_FILE}"]
    path = f"data/{TEST_SPLIT_FILE}"
    try:
        return split_from_bytes(files[path], path)
    except CorruptStateError as exc:
        raise BundleError(exc.message) from None


# -- import ------------------------------------------------------------------------------


def read(blob: bytes, *, max_bytes: int) -> tuple[Index, dict[str, bytes]]:
    """A bundle's index and members, every one checked (names, sizes, sha256s); BundleError
    names what is wrong. ``max_bytes``: the most its members may hold, all together."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, ValueError):
        raise BundleError("the bundle is not a zip file") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS + 1:
            raise BundleError(f"the bundle has {len(infos)} members, above {MAX_MEMBERS + 1}")
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise BundleError("the bundle names a member twice")
        total = sum(info.file_size for info in infos)
        if total > max_bytes:
            raise BundleError(f"the bundle's members hold {total} bytes, above {max_bytes}")
        for info in infos:
            if info.filename != INDEX and not _MEMBER.fullmatch(info.filename):
                raise BundleError(f"member {info.filename[:200]!r} is not a bundle's member")
            name = info.filename.rsplit("/", 1)[-1]
            if name.endswith(_LEFT_OUT) or name in _LEFT_OUT_NAMES:
                raise BundleError(
                    f"member {info.filename!r} is refused: a bundle never holds pickles (they"
                    " are made again here from the safe formats) nor another stack's decisions"
                )
            if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000) or info.is_dir():
                raise BundleError(f"member {info.filename!r} is not a regular file")
        if INDEX not in names:
            raise BundleError(f"the bundle has no {INDEX}")
        index_blob = _member(archive, INDEX, max_bytes)
        try:
            index = Index.model_validate_json(index_blob)
        except ValueError as exc:
            raise BundleError(f"{INDEX} is not a bundle's index: {str(exc)[:300]}") from None
        listed = {m.path: m for m in index.members}
        unlisted = sorted(set(names) - set(listed) - {INDEX})
        if unlisted:
            raise BundleError(f"member {unlisted[0]!r} is not in {INDEX}")
        missing = sorted(set(listed) - set(names))
        if missing:
            raise BundleError(f"member {missing[0]!r} of {INDEX} is not in the bundle")
        members = {}
        for path, entry in listed.items():
            data = _member(archive, path, entry.size)
            if len(data) != entry.size or sha256(data) != entry.sha256:
                raise BundleError(f"member {path!r} does not match its sha256 in {INDEX}")
            members[path] = data
    return index, members


def _member(archive: zipfile.ZipFile, path: str, limit: int) -> bytes:
    """A member's bytes, reading at most ``limit`` + 1 (its recorded size is not trusted)."""
    try:
        with archive.open(path) as handle:
            data = handle.read(limit + 1)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise BundleError(f"member {path!r} cannot be read: {exc}") from None
    if len(data) > limit:
        raise BundleError(f"member {path!r} holds more bytes than recorded")
    return data


def _document(members: dict[str, bytes], name: str, kind: type[Any]) -> Any:
    path = f"data/{name}"
    if path not in members:
        raise BundleError(f"the bundle has no {path}: only a succeeded run is imported")
    try:
        return parse_document(members[path], kind, f"bundle member {path}")
    except CorruptStateError as exc:
        raise BundleError(exc.message) from None


def import_bundle(runs: RunLog, blob: bytes, *, max_bytes: int) -> dict[str, Any]:
    """Import a bundle's run into its dataset's run log (``runs``: housing's, whose store it
    uses); returns the run's record. AlreadyExistsError (409) if the run id exists here,
    DatasetNotFoundError (404) for a dataset not registered here, BundleError otherwise."""
    index, members = read(blob, max_bytes=max_bytes)
    if index.dataset != HOUSING and not valid_dataset_name(index.dataset):
        raise BundleError(f"{INDEX} names no valid dataset")
    manifest: Manifest = _document(members, MANIFEST, Manifest)
    request: Request = _document(members, REQUEST, Request)
    metrics: Metrics = _document(members, METRICS, Metrics)
    if f"data/{ERROR}" in members:
        raise BundleError(f"the bundle holds data/{ERROR}: only a succeeded run is imported")
    for what, named in (("manifest", manifest), ("request", request), ("metrics", metrics)):
        if named.run_id != index.run_id:
            raise BundleError(f"data/{what}.json is of run {named.run_id!r}, not {index.run_id!r}")
    if manifest.dataset != index.dataset:
        raise BundleError(f"data/{MANIFEST} is a run of dataset {manifest.dataset!r}")
    _check_against_manifest(members, manifest, "bundled")
    store = runs.store
    log = runs.of_dataset(index.dataset)
    if index.dataset != HOUSING:
        registry.get(store, index.dataset)  # DatasetNotFoundError: register it first
    run_id = index.run_id
    if any(store.exists(store.data_bucket, log.key(run_id, n)) for n in (REQUEST, QUEUED)):
        raise AlreadyExistsError(f"run {run_id!r} exists here already")
    dataset = members[f"dataset/{manifest.dataset_sha256}.csv"]
    writes: list[Callable[[], Any]] = [lambda: _archive_version(log, manifest, dataset)]
    last: list[Callable[[], Any]] = []
    for path, data in members.items():
        folder, _, name = path.partition("/")
        if folder == "dataset":
            continue
        bucket = store.data_bucket if folder == "data" else store.models_bucket
        write = _writer(log, bucket, log.key(run_id, name), data)
        (last if name in (REQUEST, QUEUED) else writes).append(write)
    if log.roots:
        writes += _pickled_copies(log, manifest, members)
    gather(*writes)
    log.index.mark(run_id)  # before the document that creates it: the run index reads it
    gather(*last)  # the run is listed once everything else is there
    return log.record(run_id)


def _writer(log: RunLog, bucket: str, key: str, data: bytes) -> Callable[[], None]:
    def write() -> None:
        store = log.store
        try:
            store.put_bytes(bucket, key, data, _media_type(key), once=True)
        except AlreadyExistsError:  # an import of this bundle broke off: the same bytes only
            head = store.head(bucket, key)
            if head is None or head.metadata.get("sha256") != sha256(data):
                raise AlreadyExistsError(f"s3://{bucket}/{key} exists with other bytes") from None

    return write


def _media_type(key: str) -> str:
    if key.endswith(".json"):
        return "application/json"
    if key.endswith(".skops"):
        return "application/zip"
    return "application/octet-stream"


def _archive_version(log: RunLog, manifest: Manifest, data: bytes) -> None:
    """Keep the dataset version the run trained on, as this stack keeps accepted ones."""
    store, digest = log.store, manifest.dataset_sha256
    if log.dataset == HOUSING:
        datasets.archive(store, data, digest)
    else:
        key = registry.version_key(log.dataset, digest)
        _writer(log, store.data_bucket, key, data)()


def _pickled_copies(
    log: RunLog, manifest: Manifest, members: dict[str, bytes]
) -> list[Callable[[], Any]]:
    """A housing run's ``*.joblib`` copies (what its promotion copies to the original keys),
    made from its safe formats: the model loaded with its kind's trusted types only, the test
    split from ``.npy``. A model this scikit-learn cannot load gets none: such a run cannot
    be served here, and its promotion says so."""
    store, run_id = log.store, manifest.run_id
    try:
        x_bytes, y_bytes = _split(members, manifest)
        x = array_from_bytes(x_bytes, "the bundled test split's x")
        y = array_from_bytes(y_bytes, "the bundled test split's y")
        x_frame = pd.DataFrame(np.asarray(x), columns=manifest.features)
        y_series = pd.Series(np.asarray(y).reshape(-1), name=TARGET)
    except (LocalMlFlowError, ValueError) as exc:
        raise BundleError(f"the bundled test split does not fit the run: {exc}") from None
    writes: list[Callable[[], Any]] = [
        lambda: store.put_joblib(store.data_bucket, log.key(run_id, X_TEST_KEY), x_frame),
        lambda: store.put_joblib(store.data_bucket, log.key(run_id, Y_TEST_KEY), y_series),
    ]
    try:
        trusted = model_spec(manifest.task, manifest.parameters.model).trusted
        fitted = model_from_bytes(members[f"models/{MODEL_FILE}"], "the bundled model", trusted)
    except (LocalMlFlowError, KeyError, ValueError):
        return writes
    writes.append(lambda: store.put_joblib(store.models_bucket, log.key(run_id, MODEL_KEY), fitted))
    return writes
