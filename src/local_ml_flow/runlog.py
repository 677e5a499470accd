"""The run log: the ``runs/`` key layout, the latest pointer (the commit point), run records.

A run writes its own files once under ``runs/<run_id>/``: ``queued.json`` (by a caller that
starts it), ``request.json`` (ingestion started), ``manifest.json`` (trained), ``metrics.json``
and ``predictions.json`` (scored: the test split's actual and predicted prices), ``error.json``
(failed). It becomes current by one single-object write, the latest
pointer, compare-and-swapped on its ETag so concurrent promoters cannot interleave. The
seed-compatible root keys (``model.joblib``, ``x_test.joblib``, ``y_test.joblib``,
``score.txt``) are copies, each tagged with the run it came from, written before the pointer
moves and repaired from it (``repair``). Every document read is parsed through a typed model.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from local_ml_flow import promotions
from local_ml_flow.errors import (
    AlreadyExistsError,
    ConcurrentUpdateError,
    CorruptStateError,
    InvalidRequestError,
    KeyNotFoundError,
    LocalMlFlowError,
    NoModelError,
    PromotionRefusedError,
    RunNotFoundError,
)
from local_ml_flow.events import HOUSING, Promotion, RunId, RunParameters, TabularParameters
from local_ml_flow.ml.documents import DatasetSchema, Encoding, Label
from local_ml_flow.promotions import Actor, Promoted
from local_ml_flow.runindex import Cursor, RunIndex
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore, StoredObject, gather, parse_document, utc_now

# Seed-compatible root keys (the original project's users look for them here), which are
# also the names of a run's own copies under its prefix.
MODEL_KEY = "model.joblib"
X_TEST_KEY = "x_test.joblib"
Y_TEST_KEY = "y_test.joblib"
SCORE_KEY = "score.txt"
# A run's artifacts in the formats this project loads (never a pickle).
MODEL_FILE = "model.skops"
TEST_SPLIT_FILE = "test_split.npz"  # x.npy and y.npy in one stored zip (one write, one read)
X_TEST_FILE = "x_test.npy"  # the test split of runs made before test_split.npz
Y_TEST_FILE = "y_test.npy"
RUNS_PREFIX = "runs/"
LATEST_KEY = f"{RUNS_PREFIX}latest.json"
# A run's own documents.
QUEUED = "queued.json"
REQUEST = "request.json"
MANIFEST = "manifest.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.json"
ERROR = "error.json"
KEPT = "kept.json"  # the promotion policy kept another run current (written once)
REPRODUCTION_PREFIX = "reproduction-"  # each reproduction of a run: reproduce.py
# A run being deleted (the deletion's commit point: from then on the run does not exist; its
# files go, this one last) and a run pinned by its user (never deleted while pinned).
DELETED = "deleted.json"
PINNED = "pinned.json"
# The user metadata naming the run a root copy came from.
RUN_TAG = "run-id"
logger = logging.getLogger("local_ml_flow.runs")
_REPAIR_ROUNDS = 8
# Finished runs' records kept in memory (their documents are write-once).
_RECORD_CACHE_SIZE = 10_000
# A run's documents this log read lately, with their ETags (they are written once).
_DOCUMENT_CACHE_SIZE = 1_000

V = TypeVar("V")
Finite = Annotated[float, Field(allow_inf_nan=False)]
Status = Literal["queued", "running", "succeeded", "failed", "corrupt"]


def run_key(run_id: str, name: str) -> str:
    """Key of a housing run's file: ``runs/<run_id>/<name>``."""
    return f"{RUNS_PREFIX}{run_id}/{name}"


DATASETS_PREFIX = "datasets/"


def dataset_prefix(name: str) -> str:
    """Where a registered dataset keeps everything: ``datasets/<name>/``."""
    return f"{DATASETS_PREFIX}{name}/"


def dataset_runs_prefix(name: str) -> str:
    return f"{dataset_prefix(name)}runs/"


# -- the documents ------------------------------------------------------------------------
class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Queued(_Document):
    """A run a caller asked for, before any function ran."""

    run_id: RunId
    options: dict[str, Any]
    created_at: str


Parameters = RunParameters | TabularParameters


class Request(_Document):
    """A run ingestion started (written once: a run id is never reused)."""

    run_id: RunId
    parameters: Parameters
    created_at: str


class _Measured(_Document):
    """The figures of a task: regression's r2, mae, rmse, or classification's accuracy and
    friends (``roc_auc`` None when undefined); the other task's are None."""

    r2: Finite | None = None
    mae: Finite | None = None
    rmse: Finite | None = None
    accuracy: Finite | None = None
    balanced_accuracy: Finite | None = None
    f1_macro: Finite | None = None
    log_loss: Finite | None = None
    roc_auc: Finite | None = None


class Scores(_Measured):
    """Quality on a set of rows."""

    n: int = Field(ge=0)


class Manifest(_Document):
    """A trained run: parameters, features, artifacts and their hashes, environment.

    A registered dataset's run also records its dataset, task, schema version, the encoding
    learned on its training split and, for classification, the class labels."""

    run_id: RunId
    parameters: Parameters
    dataset: str = HOUSING
    task: str = "regression"
    schema_sha256: str | None = None
    dataset_schema: DatasetSchema | None = None  # what a predict request is checked against
    encoding: Encoding | None = None
    labels: list[Label] | None = None
    features: list[str]
    dataset_sha256: str
    model_sha256: str
    x_test_sha256: str  # of the x array's .npy bytes
    y_test_sha256: str
    # test_split.npz's sha256; None: the split is in x_test.npy and y_test.npy (older runs)
    test_split_sha256: str | None = None
    n_train: int
    n_test: int
    train_metrics: Scores
    test_metrics: Scores | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    created_at: str
    trained_at: str


class Metrics(_Measured):
    """A scored run: its test figures; ``score`` is the main one as a percentage (R², or
    accuracy)."""

    run_id: RunId
    n_test: int
    score: str
    evaluated_at: str

    @property
    def main(self) -> tuple[str, float | None]:
        """The metric a dataset's runs are compared by: R², or accuracy."""
        return ("r2", self.r2) if self.accuracy is None else ("accuracy", self.accuracy)


class Predictions(_Document):
    """A scored run's test split: actual and predicted values, row by row (finite only). For
    classification they are class indices into ``labels``, with the confusion matrix and the
    ROC curves."""

    run_id: RunId
    y_true: list[Finite]
    y_pred: list[Finite]
    evaluated_at: str
    labels: list[Label] | None = None
    confusion: list[list[int]] | None = None
    roc: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _paired(self) -> Predictions:
        """Rows are paired: as many predicted prices as actual ones (a stored file that is
        not is corrupt state, and a sample of it would pick unrelated rows)."""
        if len(self.y_true) != len(self.y_pred):
            raise ValueError(
                f"{len(self.y_true)} actual prices (y_true), {len(self.y_pred)} predicted"
            )
        if self.labels is not None:
            n = len(self.labels)
            if not all(v.is_integer() and 0 <= v < n for v in (*self.y_true, *self.y_pred)):
                raise ValueError(f"classes outside the {n} labels")
        return self


class Failure(_Document):
    """A failed run: the stage, the error, where it came from."""

    run_id: RunId
    stage: str
    error_type: str
    message: str
    details: Any = None
    failed_at: str


class Pointer(_Document):
    """The latest pointer: the current run and the hashes it was promoted with."""

    run_id: RunId
    model_sha256: str
    x_test_sha256: str | None = None
    y_test_sha256: str | None = None
    dataset_sha256: str
    score: str | None = None
    promoted_at: str
    previous_run_id: str | None = None
    # the metric runs are compared by (r2 or accuracy) and this run's test value of it
    metric: str | None = None
    value: float | None = None
    # who or what promoted it and why (its promotion log entry is rebuilt from these)
    by: str | None = None
    reason: str | None = None


class Kept(_Document):
    """A run the promotion policy did not make current: why, and which run stayed."""

    run_id: RunId
    policy: str
    current_run_id: RunId
    reason: str
    decided_at: str


class Deleted(_Document):
    """A deletion under way: the run is gone for every reader; its files are being removed."""

    run_id: RunId
    reason: str
    deleted_at: str


class Pinned(_Document):
    """A run its user keeps: no deletion, by request or by retention, removes it."""

    run_id: RunId
    pinned_at: str


@dataclass(frozen=True)
class Decision:
    """What a promotion did: ``pointer`` is the current run's afterwards (``run_id`` its
    id); ``promoted`` False with the ``reason`` when the policy kept another run."""

    pointer: Pointer
    promoted: bool = True
    reason: str | None = None

    @property
    def run_id(self) -> str:
        return self.pointer.run_id


# The latest pointer as read for a compare-and-swap: the document (None: no run promoted
# yet) and its ETag.
Seen = tuple[Pointer | None, str | None]


def _roots_follow(roots: Mapping[str, str | None], run_id: str, *, scored: bool) -> bool:
    """Whether every root copy (``root_runs``: key -> the run it is tagged with) comes from
    ``run_id``; score.txt is absent when that run is not scored."""
    tagged = (roots[MODEL_KEY], roots[X_TEST_KEY], roots[Y_TEST_KEY])
    return tagged == (run_id,) * 3 and roots[SCORE_KEY] == (run_id if scored else None)


def _age_s(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    now = datetime.fromisoformat(utc_now().replace("Z", "+00:00"))
    return (now - then).total_seconds()


class RunLog:
    """The runs of one store: what each run wrote, and which run is current.

    ``stale_after_s``: a run still queued or running after this long is reported failed
    (abandoned); ``min_r2``: an optional promotion gate; ``policy``: whether a new run
    becomes current only when it scores at least as well as the current one (``better``)
    or always (``always``, the original project's way).
    """

    def __init__(
        self,
        store: ArtifactStore,
        *,
        stale_after_s: float = 360.0,
        min_r2: float | None = None,
        policy: Promotion = "better",
        dataset: str = HOUSING,
        prefix: str = RUNS_PREFIX,
        roots: bool = True,
    ) -> None:
        self.store = store
        self.dataset = dataset
        self.prefix = prefix
        self.latest_key = f"{prefix}latest.json"
        self.roots = roots  # whether it keeps the original project's root copies (housing)
        self._logs: dict[str, RunLog] = {}  # the run logs of other datasets, by name
        self.stale_after_s = stale_after_s
        self.min_r2 = min_r2
        self.policy: Promotion = policy
        # run id -> (its files' names, ETags and sizes; its record without "current")
        self._finished: dict[str, tuple[tuple[tuple[str, str, int], ...], dict[str, Any]]] = {}
        # run key -> (ETag, document) of the documents read lately: a record made right after
        # a promotion read the run's manifest and metrics takes them from here when the
        # listing shows the same ETags (a rewritten document has another ETag: it is read).
        self._read: dict[str, tuple[str, _Document]] = {}
        self._index: RunIndex | None = None  # made when first used (``index``)

    @classmethod
    def from_settings(cls, store: ArtifactStore, settings: Settings) -> RunLog:
        """A run log with the configured gate; runs are abandoned after the function timeout
        plus a minute."""
        return cls(
            store,
            stale_after_s=settings.function_timeout_s + 60,
            min_r2=settings.min_r2,
            policy=settings.promotion,
        )

    def of_dataset(self, name: str) -> RunLog:
        """The run log of a registered dataset (``datasets/<name>/runs/``, its own pointer, no
        root copies), with this log's settings; housing's is this one's kind."""
        if name == self.dataset:
            return self
        with _KEEPING:
            known = self._logs.get(name)
        if known is not None:
            return known
        log = RunLog(
            self.store,
            stale_after_s=self.stale_after_s,
            min_r2=self.min_r2,
            policy=self.policy,
            dataset=name,
            prefix=RUNS_PREFIX if name == HOUSING else dataset_runs_prefix(name),
            roots=name == HOUSING,
        )
        _keep(self._logs, name, log, _RECORD_CACHE_SIZE)
        return self._logs.get(name, log)

    @property
    def index(self) -> RunIndex:
        """The run index (derived: it lists runs in pages; the documents stay the truth)."""
        if self._index is None:
            self._index = RunIndex(self)
        return self._index

    def key(self, run_id: str, name: str) -> str:
        """Key of a run-scoped file: ``<prefix><run_id>/<name>``."""
        return f"{self.prefix}{run_id}/{name}"

    @property
    def _data(self) -> str:
        return self.store.data_bucket

    def _get(self, run_id: str, name: str, kind: type[Any]) -> Any:
        key = self.key(run_id, name)
        blob = self.store.read(self._data, key)
        value = parse_document(blob.data, kind, f"s3://{self._data}/{key}")
        if blob.etag and name in _KINDS:  # a record's small documents (not the predictions)
            _keep(self._read, key, (blob.etag, value), _DOCUMENT_CACHE_SIZE)
        return value

    def _read_lately(self, run_id: str, name: str, listed: StoredObject) -> Any | None:
        """The document ``name`` of a run as read lately, if the listing shows its ETag."""
        kept = self._read.get(self.key(run_id, name))
        return kept[1] if kept is not None and listed.etag and kept[0] == listed.etag else None

    # -- a run's own documents ----------------------------------------------------------
    def queue(self, run_id: str, options: Mapping[str, Any]) -> None:
        """Record a run a caller is about to start (once), before any function runs."""
        document = Queued(run_id=run_id, options=dict(options), created_at=utc_now())
        self.index.mark(run_id)  # before the document: the index reads it from there
        self.store.put_json(self._data, self.key(run_id, QUEUED), document, once=True)

    def create(self, run_id: str, parameters: Parameters) -> str:
        """Record that ingestion started a run (once); returns its creation time."""
        created_at = utc_now()
        request = Request(run_id=run_id, parameters=parameters, created_at=created_at)
        self.index.mark(run_id)
        try:
            self.store.put_json(self._data, self.key(run_id, REQUEST), request, once=True)
        except AlreadyExistsError:
            raise InvalidRequestError(
                f"run {run_id!r} already exists; runs are never rewritten"
            ) from None
        return created_at

    def write_manifest(self, manifest: Manifest) -> None:
        """The manifest is a run's last training write: a run without one never finished."""
        self.store.put_json(self._data, self.key(manifest.run_id, MANIFEST), manifest, once=True)

    def manifest(self, run_id: str) -> Manifest:
        try:
            value: Manifest = self._get(run_id, MANIFEST, Manifest)
        except KeyNotFoundError:
            if self.store.exists(self._data, self.key(run_id, REQUEST)):
                raise NoModelError(f"run {run_id!r} has no trained model") from None
            raise RunNotFoundError(f"run {run_id!r} does not exist") from None
        return value

    def metrics(self, run_id: str) -> Metrics | None:
        try:
            value: Metrics = self._get(run_id, METRICS, Metrics)
        except KeyNotFoundError:
            return None
        return value

    def write_metrics(self, metrics: Metrics) -> None:
        """Keep a run's first metrics: scoring it again does not rewrite them."""
        with contextlib.suppress(AlreadyExistsError):
            key = self.key(metrics.run_id, METRICS)
            self.store.put_json(self._data, key, metrics, once=True)

    def write_predictions(self, predictions: Predictions) -> None:
        """Keep a run's first predictions (written once, like its metrics; their rows are
        paired, which the document checks when it is made)."""
        # pydantic's own JSON writer: a large test split's numbers are written 15 times
        # faster than by json.dumps (every value was checked finite when it was made).
        data = predictions.model_dump_json().encode()
        with contextlib.suppress(AlreadyExistsError):
            key = self.key(predictions.run_id, PREDICTIONS)
            self.store.put_bytes(self._data, key, data, "application/json", once=True)

    def predictions(self, run_id: str) -> Predictions:
        """A scored run's test predictions; NotFound for an unknown run, NoModelError for one
        not scored (or scored before predictions were kept)."""
        try:
            value: Predictions = self._get(run_id, PREDICTIONS, Predictions)
        except KeyNotFoundError:
            self.record(run_id)  # RunNotFoundError for an unknown run
            raise NoModelError(f"run {run_id!r} has no stored test predictions") from None
        return value

    def record_failure(
        self, run_id: str, stage: str, error_type: str, message: str, details: Any = None
    ) -> None:
        """Write ``error.json`` once; a failing store is left to the caller, which raises the
        original error."""
        document = Failure(
            run_id=run_id,
            stage=stage,
            error_type=error_type,
            message=message,
            details=details,
            failed_at=utc_now(),
        )
        with contextlib.suppress(LocalMlFlowError):
            self.index.mark(run_id)  # a finished run's status may change: the index rereads it
            self.store.put_json(self._data, self.key(run_id, ERROR), document, once=True)

    # -- the current run ----------------------------------------------------------------
    def _pointer(self) -> Seen:
        """The latest pointer and its ETag; (None, None) before the first promoted run."""
        try:
            blob = self.store.read(self._data, self.latest_key)
        except KeyNotFoundError:
            return None, None
        where = f"s3://{self._data}/{self.latest_key}"
        return parse_document(blob.data, Pointer, where), blob.etag

    def pointer(self) -> Seen:
        """The latest pointer and its ETag; (None, None) before the first promoted run."""
        return self._pointer()

    def peek_pointer(self) -> Seen | None:
        """The pointer and its ETag for a promotion to come, or None if they could not be
        read (the promotion reads them again and reports that failure as its own)."""
        try:
            return self._pointer()
        except LocalMlFlowError:
            return None

    def latest(self) -> Pointer | None:
        """The latest pointer, or None before the first promoted run."""
        return self._pointer()[0]

    def latest_run_id(self, missing: str) -> str:
        """The current run's id; NoModelError with ``missing`` when there is none."""
        pointer = self.latest()
        if pointer is None:
            raise NoModelError(missing)
        return pointer.run_id

    def check_promotable(
        self,
        run_id: str,
        manifest: Manifest,
        scored: Metrics | None,
        failed: bool | None = None,
    ) -> None:
        """PromotionRefusedError unless the run succeeded with finite metrics over the gate.

        ``failed``: whether the run has an ``error.json``, if the caller looked (else a HEAD).
        """
        if failed is None:
            failed = self.store.exists(self._data, self.key(run_id, ERROR))
        if failed:
            raise PromotionRefusedError(f"run {run_id!r} failed: it cannot become current")
        metric, value = _main(manifest, scored)
        name = _named(metric)
        if not math.isfinite(value):
            raise PromotionRefusedError(f"run {run_id!r} has no finite test {name}")
        if metric == "r2" and self.min_r2 is not None and value < self.min_r2:
            raise PromotionRefusedError(
                f"run {run_id!r} has test R² {value:.4f}, below LMF_MIN_R2 = {self.min_r2}"
            )

    def check_finished(self, run_id: str) -> None:
        """PromotionRefusedError unless the run's record says succeeded: a queued or running
        run is not finished, a failed or corrupt one never becomes current (an explicit
        promotion, a roll back or forward, checks this first; a refusal changes nothing)."""
        record = self.record(run_id)
        if record["status"] != "succeeded":
            raise PromotionRefusedError(
                f"run {run_id!r} is {record['status']}: only a succeeded run can become current"
            )

    def promote(
        self,
        run_id: str,
        manifest: Manifest | None = None,
        *,
        policy: Promotion = "always",
        serves: Callable[[str], bool] | None = None,
        record_failure: bool = True,
        just_trained: bool = False,
        seen: Seen | None = None,
        by: Actor = "library",
        reason: str | None = None,
    ) -> Decision:
        """Make a trained run current: root copies, then the latest pointer, compare-and-swapped
        on its ETag. If another run was promoted meanwhile, that one stays current (this run
        counts as promoted, then superseded) and the root copies are made to follow it.

        ``policy`` ``better``: the current run stays if it scores better on its test split
        and was trained on the same dataset version, and can be served (``serves``, when
        given); the new run's ``kept.json`` says why. A pointer that moves meanwhile is
        compared again. ``always`` (an explicit promotion): no comparison.

        If it fails, the run is recorded as failed (stage promotion; unless ``record_failure``
        is False, as for a rollback to a finished run) unless the pointer did move to it, and
        the root copies are repaired to name the current run again.

        ``just_trained``: the caller is the ingestion that trained the run a moment ago and
        passes its ``manifest``: the run has no metrics and no failure yet, so neither is read;
        ``seen``: the pointer and its ETag as the caller read them (``peek_pointer``) while it
        wrote the manifest (else read here). The compare-and-swap makes an early read safe.

        ``by``: who or what promotes (``promotions.Actor``); ``reason``: why, when the caller
        decides it (an explicit promotion), else the policy's comparison says it. Both go
        into the pointer and the promotion log (``promotions.py``), written after the swap.
        """
        try:
            return self._promote(run_id, manifest, policy, serves, just_trained, seen, by, reason)
        except RunNotFoundError:  # deleted: nothing of it is written again
            with contextlib.suppress(LocalMlFlowError):
                self.repair()
            raise
        except LocalMlFlowError as exc:
            with contextlib.suppress(LocalMlFlowError):
                pointer = self.latest()
                if pointer is not None and pointer.run_id == run_id:
                    # the pointer write landed; only its answer was lost (its log entry is
                    # rebuilt from it when read, and written by the next promoter)
                    return Decision(pointer)
            if record_failure:
                self.record_failure(run_id, "promotion", type(exc).__name__, exc.message)
            with contextlib.suppress(LocalMlFlowError):
                self.repair()
            raise

    def _promote(
        self,
        run_id: str,
        manifest: Manifest | None,
        policy: Promotion,
        serves: Callable[[str], bool] | None,
        just_trained: bool,
        seen: Seen | None,
        by: Actor,
        reason: str | None,
    ) -> Decision:
        # What the promotion decides on, read at once: the manifest (unless the caller has
        # it), the metrics, whether the run failed, and the pointer it compare-and-swaps.
        info: Manifest
        scored: Metrics | None
        failed: bool
        if just_trained and manifest is not None:
            info, scored, failed = manifest, None, False
            current, etag = seen if seen is not None else self._pointer()
        else:
            info, scored, files, (current, etag) = gather(
                (lambda: manifest) if manifest is not None else (lambda: self.manifest(run_id)),
                lambda: self.metrics(run_id),
                lambda: self._files(run_id),
                self._pointer,
            )
            if DELETED in files:
                raise RunNotFoundError(f"run {run_id!r} was deleted")
            failed = ERROR in files
        self.check_promotable(run_id, info, scored, failed)
        metric, value = _main(info, scored)
        for _ in range(_REPAIR_ROUNDS):
            why = reason or _why(policy, current, run_id)
            if policy == "better" and current is not None and current.run_id != run_id:
                worse, why = self._worse(info, metric, value, current, serves)
                if worse is not None:
                    now, now_etag = self._pointer()  # the pointer compared with must still be
                    if now_etag != etag:
                        current, etag = now, now_etag
                        continue
                    return self._kept(run_id, policy, current, worse)
            pointer = Pointer(
                run_id=run_id,
                model_sha256=info.model_sha256,
                x_test_sha256=info.x_test_sha256,
                y_test_sha256=info.y_test_sha256,
                dataset_sha256=info.dataset_sha256,
                score=scored.score if scored is not None else None,
                promoted_at=utc_now(),
                previous_run_id=current.run_id if current is not None else None,
                metric=metric,
                value=value,
                by=by,
                reason=why,
            )
            self._write_roots(run_id, pointer.score)
            try:
                self.store.put_json(
                    self._data, self.latest_key, pointer, once=etag is None, if_match=etag
                )
            except (ConcurrentUpdateError, AlreadyExistsError):
                # Another run was promoted while this one was. Under ``better`` this run is
                # compared with that one; otherwise that one came last and stays current, as
                # if this run had been promoted first and then superseded.
                self.repair()
                winner, winner_etag = self._pointer()
                if winner is None:
                    raise ConcurrentUpdateError(
                        f"the pointer vanished promoting {run_id!r}"
                    ) from None
                if policy == "better" and winner.run_id != run_id:
                    current, etag = winner, winner_etag
                    continue
                return Decision(winner)
            # A loser that wrote its root copies after ours repairs them once it has lost (it
            # loops until the pointer stops moving). But a repair that read the pointer before
            # this swap may have copied that run over ours meanwhile, and stopped before the
            # swap could show it: so the winner looks once (one wave of HEADs) and repairs if
            # so. The promotion itself is done: a failure here is left to the next repair.
            # The same wave looks whether the run was deleted while it was promoted: then
            # the run it replaced is made current again; and writes the promotion log's entry
            # (and the replaced pointer's, if it was never written): the pointer is the commit
            # point, the entry is rebuilt from it.
            roots, deleted = self._after_swap(run_id, pointer, current, deletable=not just_trained)
            if deleted:
                self._undo(run_id, current, pointer)
                raise RunNotFoundError(f"run {run_id!r} was deleted while it was promoted")
            with contextlib.suppress(LocalMlFlowError):
                if roots is not None and not _roots_follow(
                    roots, run_id, scored=pointer.score is not None
                ):
                    self.repair()
            return Decision(pointer)
        raise ConcurrentUpdateError(
            f"the pointer kept moving while run {run_id!r} was promoted: try again"
        )

    def _files(self, run_id: str) -> dict[str, StoredObject]:
        """A run's files in the data bucket, by name."""
        listed = self.store.list_objects(self._data, self.key(run_id, ""))
        return {o.key.rsplit("/", 1)[-1]: o for o in listed}

    def _after_swap(
        self, run_id: str, pointer: Pointer, replaced: Pointer | None, *, deletable: bool
    ) -> tuple[dict[str, str | None] | None, bool]:
        """After a run's pointer swap, at once: the root copies' runs (None: no root copies,
        or they could not be read) and whether the run is being deleted (only looked at when
        it is ``deletable``: a run its own ingestion promotes is in flight, never deleted);
        meanwhile the promotion log's entries of ``pointer`` and of the one it ``replaced``
        are written (``promotions.record``: a failure is logged, never raised)."""

        def roots() -> dict[str, str | None] | None:
            with contextlib.suppress(LocalMlFlowError):
                return self.root_runs() if self.roots else None
            return None

        log = partial(promotions.record, self.store, self.prefix, self.dataset, pointer, replaced)
        if not deletable:
            found, _ = gather(roots, log)
            return found, False
        found, deleted, _ = gather(
            roots, lambda: self.store.exists(self._data, self.key(run_id, DELETED)), log
        )
        return found, deleted

    def _undo(self, run_id: str, previous: Pointer | None, written: Pointer) -> None:
        """Move the pointer back from ``run_id``, deleted while it was promoted, to the run it
        replaced (compare-and-swapped: a promotion that came meanwhile stays)."""
        with contextlib.suppress(LocalMlFlowError):
            now, etag = self._pointer()
            if now is not None and now.run_id == run_id and now.promoted_at == written.promoted_at:
                if previous is None:
                    self.store.delete(self._data, self.latest_key)
                else:
                    back = previous.model_copy(
                        update={
                            "promoted_at": utc_now(),
                            "previous_run_id": run_id,
                            "by": written.by,
                            "reason": f"run {run_id} was deleted while it was promoted: the"
                            " run it replaced is current again",
                        }
                    )
                    self.store.put_json(self._data, self.latest_key, back, if_match=etag)
                    promotions.record(self.store, self.prefix, self.dataset, back, None)
            self.repair()

    def _kept(self, run_id: str, policy: Promotion, current: Pointer, reason: str) -> Decision:
        """The policy kept ``current``: say why in the run (a failure to write it is logged;
        the decision stands, and the run stays a succeeded run that can be promoted)."""
        kept = Kept(
            run_id=run_id,
            policy=policy,
            current_run_id=current.run_id,
            reason=reason,
            decided_at=utc_now(),
        )
        try:
            self.index.mark(run_id)
            self.store.put_json(self._data, self.key(run_id, KEPT), kept, once=True)
        except LocalMlFlowError as exc:
            logger.warning("run %s: could not record why it was kept: %s", run_id, exc.message)
        return Decision(current, promoted=False, reason=reason)

    def _worse(
        self,
        info: Manifest,
        metric: str,
        value: float,
        current: Pointer,
        serves: Callable[[str], bool] | None,
    ) -> tuple[str | None, str]:
        """Why the run of ``info`` (its test ``metric`` = ``value``) should not replace the
        current run, or None: it scores at least as well (a tie goes to the newer run), or
        the two cannot be compared (another dataset version or metric, the current run's
        figures cannot be read), or the current run cannot be served (``serves``); and why
        it replaces it, when it does (for the promotion log)."""
        policy = "promotion policy better"
        if current.dataset_sha256 != info.dataset_sha256:
            # trained on other data: the new run serves the new data
            return None, (
                f"{policy}: trained on another dataset version than the current run"
                f" {current.run_id}"
            )
        theirs: tuple[str, float] | None = None
        if current.metric is not None and current.value is not None:
            theirs = (current.metric, current.value)
        else:  # a pointer written before it carried the figure: the current run's own
            with contextlib.suppress(LocalMlFlowError):
                theirs = _main(
                    *gather(
                        lambda: self.manifest(current.run_id), lambda: self.metrics(current.run_id)
                    )
                )
        if theirs is None or theirs[0] != metric:
            return None, f"{policy}: the current run {current.run_id} has no comparable figure"
        if value >= theirs[1]:
            return None, (
                f"{policy}: test {_named(metric)} {value:.4f} is at least {theirs[1]:.4f} of"
                f" the run it replaces, {current.run_id}"
            )
        if serves is not None and not serves(current.run_id):
            # the current run cannot be served: any servable run is better
            return None, f"{policy}: the current run {current.run_id} cannot be served"
        return (
            f"test {_named(metric)} {value:.4f} is below {theirs[1]:.4f} of the current run"
            f" {current.run_id}: the promotion policy (LMF_PROMOTION=better) keeps the better"
            " model; promote this run to serve it anyway"
        ), ""

    def _write_roots(self, run_id: str, score: str | None) -> None:
        """The seed-compatible root copies of a run, each tagged with the run id (housing's
        only: a registered dataset has none)."""
        if not self.roots:
            return
        store, data, models = self.store, self._data, self.store.models_bucket
        tag = {RUN_TAG: run_id}

        def score_file() -> None:
            if score is not None:
                store.put_text(data, SCORE_KEY, score, metadata=tag)
            else:  # not scored yet: no score.txt rather than another run's
                store.delete(data, SCORE_KEY)

        # Independent writes, all done (or the promotion fails) before the pointer moves.
        gather(
            lambda: store.copy(models, self.key(run_id, MODEL_KEY), MODEL_KEY, metadata=tag),
            lambda: store.copy(data, self.key(run_id, X_TEST_KEY), X_TEST_KEY, metadata=tag),
            lambda: store.copy(data, self.key(run_id, Y_TEST_KEY), Y_TEST_KEY, metadata=tag),
            score_file,
        )

    def write_score_if_latest(self, run_id: str, score: str, pointer: Pointer | None) -> None:
        """``score.txt`` follows the current run only (inference of a run promoted before it
        was scored, as ``aws lambda invoke`` of ingestion then inference does).

        ``pointer``: the latest pointer as the caller read it (None: no run promoted yet);
        after a write it is read again, and the root copies repaired if it moved."""
        if not self.roots:
            return
        if pointer is None or pointer.run_id != run_id:
            return
        self.store.put_text(self._data, SCORE_KEY, score, metadata={RUN_TAG: run_id})
        moved = self.latest()
        if moved is not None and moved.run_id != run_id:
            self.repair()  # another run was promoted meanwhile: score.txt must follow it

    def root_runs(self) -> dict[str, str | None]:
        """Root key -> the run its copy came from (None: absent or untagged)."""
        roots: dict[str, str | None] = gather(*self._root_heads())[0]
        return roots

    def _root_heads(self) -> list[Callable[[], Any]]:
        """The HEADs of the root copies as calls to gather; the first one's result is
        ``root_runs``' answer once all of them are done."""
        data, models = self._data, self.store.models_bucket
        out: dict[str, str | None] = {}
        calls: list[Callable[[], Any]] = []
        for bucket, key in (
            (models, MODEL_KEY),
            (data, X_TEST_KEY),
            (data, Y_TEST_KEY),
            (data, SCORE_KEY),
        ):

            def tag(bucket: str = bucket, key: str = key) -> dict[str, str | None]:
                head = self.store.head(bucket, key)
                out[key] = head.metadata.get(RUN_TAG) if head is not None else None
                return out

            calls.append(tag)
        return calls

    def repair(self) -> bool:
        """Make the root copies name the current run again (after a promotion that failed or
        lost half-way); returns whether anything was rewritten. Repeats while the pointer
        moves under it, so the last promoter to finish leaves the copies consistent."""
        if not self.roots:
            return False
        repaired = False
        for _ in range(_REPAIR_ROUNDS):
            pointer = self.latest()
            if pointer is None:
                return repaired
            run_id = pointer.run_id
            roots, *_, scored = gather(*self._root_heads(), partial(self.metrics, run_id))
            if _roots_follow(roots, run_id, scored=scored is not None):
                return repaired
            self._write_roots(pointer.run_id, scored.score if scored is not None else None)
            repaired = True
        raise ConcurrentUpdateError(
            f"root copies still moving after {_REPAIR_ROUNDS} repairs: promotions keep coming"
        )

    def promotions(self, limit: int = 50) -> list[Promoted]:
        """This dataset's promotions, newest first (``promotions.read``)."""
        return promotions.read(self.store, self.prefix, self.dataset, self.latest(), limit)

    # -- records ------------------------------------------------------------------------
    def _current(self) -> str | None:
        """The current run's id; None when there is none or the pointer is corrupt."""
        try:
            pointer = self.latest()
        except CorruptStateError:
            return None
        return pointer.run_id if pointer is not None else None

    def record(self, run_id: str) -> dict[str, Any]:
        """What is known of a run, from its own files: status, parameters, metrics, error."""
        listed, current = gather(  # independent reads, at once
            lambda: self.store.list_objects(self._data, self.key(run_id, "")), self._current
        )
        files = {o.key.rsplit("/", 1)[-1]: o for o in listed}
        if REQUEST not in files and QUEUED not in files:
            raise RunNotFoundError(f"run {run_id!r} does not exist")
        if DELETED in files:
            raise RunNotFoundError(f"run {run_id!r} was deleted")
        return self._full_record(run_id, files, current)

    def _full_record(
        self, run_id: str, files: Mapping[str, StoredObject], current: str | None
    ) -> dict[str, Any]:
        """A run's record from its files; a corrupt document makes it 'corrupt'.

        A finished run's record is kept in memory, keyed by its files' names, ETags and sizes:
        its documents are written once, and any change to them (a new file, a rewritten one)
        changes the key, so a kept record is never stale.
        """
        signature = tuple(sorted((name, o.etag, o.size) for name, o in files.items()))
        kept = self._finished.get(run_id)
        if kept is not None and kept[0] == signature and all(o.etag for o in files.values()):
            record = dict(kept[1])
        else:
            try:
                record = self._record(run_id, files)
            except CorruptStateError as exc:
                record = _blank(run_id)
                record["status"] = "corrupt"
                record["error"] = {
                    "stage": None,
                    "type": "CorruptStateError",
                    "message": exc.message,
                }
            if record["status"] not in ("queued", "running"):
                _keep(self._finished, run_id, (signature, dict(record)), _RECORD_CACHE_SIZE)
        record["current"] = run_id == current
        record["pinned"] = PINNED in files
        if record["current"]:
            record["not_promoted"] = None  # kept once, promoted since
        record["dataset"] = self.dataset
        return record

    def _record(self, run_id: str, files: Mapping[str, StoredObject]) -> dict[str, Any]:
        record = _blank(run_id)
        # The documents the record is made of (the metrics only without an error): those read
        # lately with the listed ETag are known, the others are read at once.
        wanted = [REQUEST if REQUEST in files else QUEUED, MANIFEST, ERROR]
        wanted = [name for name in wanted if name in files]
        if METRICS in files and ERROR not in files:
            wanted += [METRICS, KEPT] if KEPT in files else [METRICS]
        documents: dict[str, Any] = {
            name: self._read_lately(run_id, name, files[name]) for name in wanted
        }
        unread = [name for name, value in documents.items() if value is None]
        documents.update(
            zip(
                unread,
                gather(*(partial(self._get, run_id, name, _KINDS[name]) for name in unread)),
                strict=True,
            )
        )
        if REQUEST in files:
            request: Request = documents[REQUEST]
            record.update(
                status="running",
                parameters=request.parameters.model_dump(),
                created_at=request.created_at,
            )
        else:
            queued: Queued = documents[QUEUED]
            record.update(status="queued", parameters=queued.options, created_at=queued.created_at)
        info: Manifest | None = documents.get(MANIFEST)
        if ERROR in files:
            failure: Failure = documents[ERROR]
            record.update(status="failed", finished_at=failure.failed_at, error=_error(failure))
        elif METRICS in files:
            scored: Metrics = documents[METRICS]
            record.update(status="succeeded", finished_at=scored.evaluated_at)
            if scored.accuracy is None:
                shown = {"r2": scored.r2, "mae": scored.mae, "rmse": scored.rmse}
            else:
                shown = {name: getattr(scored, name) for name in CLASS_METRICS}
            record["metrics"] = {
                **shown,
                "n_test": scored.n_test,
                "score": scored.score,
                "n_train": info.n_train if info is not None else None,
            }
            kept: Kept | None = documents.get(KEPT)
            if kept is not None:
                record["not_promoted"] = {
                    "reason": kept.reason,
                    "current_run_id": kept.current_run_id,
                    "policy": kept.policy,
                    "decided_at": kept.decided_at,
                }
        elif _age_s(record["created_at"]) > self.stale_after_s:
            stage = "inference" if info is not None else "ingestion"
            message = (
                f"no result {self.stale_after_s:.0f}s after the run was requested:"
                f" the {stage} function died or timed out"
            )
            record.update(
                status="failed",
                error={"stage": stage, "type": "AbandonedRunError", "message": message},
            )
        if info is not None:
            record["model_sha256"] = info.model_sha256
            record["dataset_sha256"] = info.dataset_sha256
            record["features"] = info.features
        return record

    def listing(self) -> tuple[dict[str, dict[str, StoredObject]], dict[str, str]]:
        """One listing of the runs: each run's files by name, and when each was recorded."""
        return _index(self.store.list_objects(self._data, self.prefix), self.prefix)

    def page(
        self, limit: int = 50, cursor: Cursor | None = None, status: str | None = None
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """Up to ``limit`` run records, newest first, after ``cursor``, of ``status`` (any
        if None), and the next page's cursor (None after the last), through the run index:
        a run is read from its documents unless it is settled (``runindex``)."""
        return self.index.page(limit, cursor, status)

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """Run records, newest first (by creation time): the first page of ``page``."""
        return self.page(limit)[0]


_KEEPING = threading.Lock()


def _keep(cache: dict[str, V], key: str, value: V, size: int) -> None:
    """Put ``value`` in ``cache``, the oldest entry out when it holds ``size`` (a listing
    fills the caches from several threads: one at a time)."""
    with _KEEPING:
        if len(cache) >= size:
            cache.pop(next(iter(cache)), None)
        cache[key] = value


_KINDS: dict[str, type[_Document]] = {
    DELETED: Deleted,
    PINNED: Pinned,
    REQUEST: Request,
    QUEUED: Queued,
    MANIFEST: Manifest,
    ERROR: Failure,
    METRICS: Metrics,
    KEPT: Kept,
}


CLASS_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc")


def _why(policy: Promotion, current: Pointer | None, run_id: str) -> str:
    """Why a run becomes current when no comparison decides it."""
    if current is None:
        return f"promotion policy {policy}: the first run to become current"
    if current.run_id == run_id:
        return f"promotion policy {policy}: made current again (it already was)"
    if policy == "always":
        return "promotion policy always: a new run replaces the current one"
    return f"promotion policy {policy}"


def _named(metric: str) -> str:
    """A metric's name for people: R² for r2."""
    return "R²" if metric == "r2" else metric


def _main(info: Manifest, scored: Metrics | None) -> tuple[str, float]:
    """The metric a dataset's runs are compared by (R², or accuracy) and a run's test value
    of it: from its metrics, else from the test figures its ingestion recorded."""
    if scored is not None:
        metric, value = scored.main
    else:
        test = info.test_metrics
        metric = "r2" if info.task == "regression" else "accuracy"
        value = getattr(test, metric) if test is not None else None
    if value is None:
        raise PromotionRefusedError(f"run {info.run_id!r} has no finite test {_named(metric)}")
    return metric, value


def _blank(run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "status": "running",
        "parameters": {},
        "metrics": None,
        "created_at": None,
        "finished_at": None,
        "error": None,
        "not_promoted": None,
        "pinned": False,
    }


def _error(failure: Failure) -> dict[str, Any]:
    return {
        "stage": failure.stage,
        "type": failure.error_type,
        "message": failure.message,
        "details": failure.details,
    }


def _index(
    objects: list[StoredObject], prefix: str = RUNS_PREFIX
) -> tuple[dict[str, dict[str, StoredObject]], dict[str, str]]:
    """From a listing of ``runs/``: each run's files by name, and when each run was first
    recorded (queued by a caller, or requested by ingestion)."""
    files: dict[str, dict[str, StoredObject]] = {}
    created: dict[str, str] = {}
    for obj in objects:
        run_id, _, name = obj.key[len(prefix) :].partition("/")
        if not name:
            continue  # runs/latest.json
        files.setdefault(run_id, {})[name] = obj
        if name in (QUEUED, REQUEST):
            created[run_id] = min(created.get(run_id, obj.last_modified), obj.last_modified)
    return files, created
