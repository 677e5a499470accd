"""Deleting runs: one on request (``DELETE …/runs/{id}``), or the oldest beyond
``LMF_KEEP_RUNS`` after each run; pins that keep a run whatever happens.

A deletion has one commit point, the run's ``deleted.json``: from then on the run does not
exist for any reader (its record is 404, it leaves the list, it cannot be promoted). Then its
files go from both buckets, then the dataset versions no remaining run of its dataset was
trained on (never the dataset's current version), and ``deleted.json`` last. A deletion cut
half-way is finished by the next one (``finish``), so storage is freed whatever happened.
Never deleted: the current run, a run in flight (queued or running), a pinned run.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from local_ml_flow import datasets, registry
from local_ml_flow.errors import (
    AlreadyExistsError,
    InvalidRequestError,
    LocalMlFlowError,
    RunInUseError,
    RunNotFoundError,
)
from local_ml_flow.events import HOUSING, valid_run_id
from local_ml_flow.runlog import (
    DELETED,
    MANIFEST,
    PINNED,
    Deleted,
    Pinned,
    RunLog,
)
from local_ml_flow.storage import gather, utc_now

logger = logging.getLogger("local_ml_flow.runs")


@dataclass
class Deletion:
    """What deleting runs freed: the runs, objects and bytes, and the dataset versions."""

    run_ids: list[str] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0
    dataset_versions: list[str] = field(default_factory=list)

    def add(self, other: Deletion) -> None:
        self.run_ids += other.run_ids
        self.objects += other.objects
        self.bytes += other.bytes
        self.dataset_versions += other.dataset_versions

    def answer(self) -> dict[str, Any]:
        return {
            "deleted": self.run_ids,
            "objects": self.objects,
            "bytes": self.bytes,
            "dataset_versions": self.dataset_versions,
        }


def delete(runs: RunLog, run_id: str, *, reason: str = "asked") -> Deletion:
    """Delete a run: RunNotFoundError if there is none, RunInUseError (409) if it is current,
    in flight or pinned."""
    _check_id(run_id)
    try:
        record = runs.record(run_id)
    except RunNotFoundError:
        if runs.store.exists(runs.store.data_bucket, runs.key(run_id, DELETED)):
            return _remove(runs, [run_id])  # a deletion that was cut: finish it
        raise
    _check_deletable(record)
    mark = Deleted(run_id=run_id, reason=reason, deleted_at=utc_now())
    # (already there: a deletion of it is under way, or was cut; this one finishes it)
    runs.index.mark(run_id)  # the run index reads it again (and finds it gone)
    with contextlib.suppress(AlreadyExistsError):
        runs.store.put_json(runs.store.data_bucket, runs.key(run_id, DELETED), mark, once=True)
    # The pointer may have moved to it between the record and the mark: then it stays.
    current = runs.latest()
    if current is not None and current.run_id == run_id:
        with contextlib.suppress(LocalMlFlowError):
            runs.store.delete(runs.store.data_bucket, runs.key(run_id, DELETED))
        raise RunInUseError(f"run {run_id!r} is current: promote another run first")
    freed = _remove(runs, [run_id])
    logger.info(
        "run %s deleted (%s): %d objects, %d bytes", run_id, reason, freed.objects, freed.bytes
    )
    return freed


def _check_id(run_id: str) -> None:
    if not valid_run_id(run_id):
        raise InvalidRequestError(f"{run_id[:100]!r} is not a run id")


def _check_deletable(record: dict[str, Any]) -> None:
    run_id = record["run_id"]
    if record["current"]:
        raise RunInUseError(f"run {run_id!r} is current: promote another run first")
    if record["status"] in ("queued", "running"):
        raise RunInUseError(f"run {run_id!r} is {record['status']}: wait until it has finished")
    if record.get("pinned"):
        raise RunInUseError(f"run {run_id!r} is pinned: unpin it first")


def pin(runs: RunLog, run_id: str, pinned: bool) -> dict[str, Any]:
    """Pin a run (no deletion removes it) or unpin it; returns its record."""
    _check_id(run_id)
    runs.record(run_id)  # RunNotFoundError
    key = runs.key(run_id, PINNED)
    runs.index.mark(run_id)  # its record changes: the run index reads it again
    if pinned:
        with contextlib.suppress(AlreadyExistsError):
            document = Pinned(run_id=run_id, pinned_at=utc_now())
            runs.store.put_json(runs.store.data_bucket, key, document, once=True)
    else:
        runs.store.delete(runs.store.data_bucket, key)
    return runs.record(run_id)


def keep_newest(runs: RunLog, keep: int) -> Deletion:
    """Retention: delete the finished runs of ``runs``' dataset beyond the ``keep`` newest
    (the current run, runs in flight and pinned runs are never deleted, nor counted), and
    finish any deletion that was cut."""
    freed = finish(runs)
    records = runs.list(limit=1_000_000)
    finished = [
        r
        for r in records
        if not r["current"] and not r["pinned"] and r["status"] not in ("queued", "running")
    ]
    for record in finished[keep:]:
        try:
            freed.add(delete(runs, record["run_id"], reason=f"LMF_KEEP_RUNS={keep}"))
        except LocalMlFlowError as exc:  # promoted or pinned meanwhile: it stays
            logger.info("retention kept run %s: %s", record["run_id"], exc.message)
    return freed


def finish(runs: RunLog) -> Deletion:
    """Finish the deletions that were cut half-way (a run with its ``deleted.json``)."""
    files, _ = runs.listing()
    cut = [run_id for run_id, named in files.items() if DELETED in named]
    return _remove(runs, cut) if cut else Deletion()


def _remove(runs: RunLog, run_ids: list[str]) -> Deletion:
    """Remove the files of runs marked deleted (every version of them: the data bucket is
    versioned), then the dataset versions only they used, then their marks."""
    store = runs.store
    data, models = store.data_bucket, store.models_bucket
    freed = Deletion(run_ids=list(run_ids))
    versions: set[str] = set()
    for run_id in run_ids:
        with contextlib.suppress(LocalMlFlowError):
            versions.add(runs.manifest(run_id).dataset_sha256)
        prefix = runs.key(run_id, "")
        counted = gather(
            partial(store.purge, data, prefix, keep=prefix + DELETED),
            partial(store.purge, models, prefix),
        )
        freed.objects += sum(n for n, _ in counted)
        freed.bytes += sum(size for _, size in counted)
    freed.dataset_versions = _drop_versions(runs, versions)
    for run_id in run_ids:
        store.purge(data, runs.key(run_id, DELETED), exact=True)
    return freed


def _drop_versions(runs: RunLog, candidates: set[str]) -> list[str]:
    """Delete the dataset versions in ``candidates`` that no remaining run of the dataset was
    trained on and that are not its current version; returns their sha256s."""
    if not candidates:
        return []
    store = runs.store
    files, _ = runs.listing()
    remaining = [r for r, named in files.items() if MANIFEST in named and DELETED not in named]

    def used_by(run_id: str) -> str | None:
        try:
            return runs.manifest(run_id).dataset_sha256
        except LocalMlFlowError:
            return None  # unreadable: the version it needs cannot be known

    used = gather(*(partial(used_by, run_id) for run_id in remaining))
    if any(u is None for u in used):
        return []  # a run whose dataset cannot be read may need any version: keep them all
    unused = candidates - set(used)
    if runs.dataset == HOUSING:
        head = store.head(store.data_bucket, store.dataset_key)
        current = head.metadata.get("sha256") if head is not None else None
        if current is None:
            return []  # the current dataset's sha256 is unknown: keep every version
        dropped = sorted(unused - {current})
        for digest in dropped:
            key = datasets.archive_key(store, digest)
            store.purge(store.data_bucket, key, exact=True)
            store.written_once.discard((store.data_bucket, key))
        return dropped
    return registry.drop_versions(store, runs.dataset, unused)
