"""The promotion log: what served when, and why (one write-once entry per promotion).

S3 has no append: each promotion is one small JSON object under the dataset's
``promotions/`` prefix (housing: ``promotions/``; a registered dataset:
``datasets/<name>/promotions/``), named ``<UTC time>-<run id>.json`` so that a listing is in
time order. The latest pointer stays the one commit point: an entry is written by the
promoter only after its compare-and-swap succeeded, and the pointer carries the same facts
(``promoted_at``, ``previous_run_id``, ``by``, ``reason``). So an entry whose write failed is
never lost: the next promoter writes it again from the pointer it replaces (write-once: a
no-op when it is there), and until then a reading of the log rebuilds it from the current
pointer (``recorded`` False). A failure to write an entry is logged; the promotion stands.

``by`` is who or what promoted, as the caller says (no authentication: a label, not an
identity): ``api`` (an HTTP client), ``dashboard`` (the dashboard says so, with ``by=dashboard``
on the request), ``cli``, ``lambda`` (the ingestion function's promotion policy, invoked
directly through the Lambda API), ``library`` (Python code calling the run log itself).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from local_ml_flow.errors import AlreadyExistsError, LocalMlFlowError
from local_ml_flow.events import RunId
from local_ml_flow.storage import ArtifactStore, gather, key_stamp, parse_document

Actor = Literal["api", "dashboard", "cli", "lambda", "library"]
ACTORS: tuple[Actor, ...] = ("api", "dashboard", "cli", "lambda", "library")
PROMOTIONS = "promotions/"
logger = logging.getLogger("local_ml_flow.runs")


class Pointer(Protocol):
    """What the log reads of a latest pointer (``runlog.Pointer``)."""

    @property
    def run_id(self) -> str: ...
    @property
    def previous_run_id(self) -> str | None: ...
    @property
    def promoted_at(self) -> str: ...
    @property
    def by(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...


class Promoted(BaseModel):
    """One promotion: ``run_id`` became current at ``at``, replacing ``previous_run_id``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: RunId
    previous_run_id: str | None = None
    at: str
    by: str
    reason: str
    dataset: str
    # False: rebuilt from the latest pointer (its own entry could not be written yet)
    recorded: bool = True


def log_prefix(runs_prefix: str) -> str:
    """The log's prefix next to a dataset's ``runs/``: ``promotions/`` or
    ``datasets/<name>/promotions/``."""
    return runs_prefix.removesuffix("runs/") + PROMOTIONS


def entry_key(runs_prefix: str, at: str, run_id: str) -> str:
    return f"{log_prefix(runs_prefix)}{key_stamp(at)}-{run_id}.json"


def from_pointer(pointer: Pointer, dataset: str, *, recorded: bool = True) -> Promoted:
    """The entry of the promotion that wrote ``pointer``."""
    return Promoted(
        run_id=pointer.run_id,
        previous_run_id=pointer.previous_run_id,
        at=pointer.promoted_at,
        by=pointer.by or "unknown",
        reason=pointer.reason or "promoted before promotions were logged",
        dataset=dataset,
        recorded=recorded,
    )


def record(
    store: ArtifactStore,
    runs_prefix: str,
    dataset: str,
    pointer: Pointer,
    replaced: Pointer | None,
) -> bool:
    """Write the entry of the promotion that just wrote ``pointer``, and the entry of the one
    it replaced (``replaced``: a no-op when it is there); returns whether both are stored.
    Called after the pointer's compare-and-swap succeeded: a failure is logged, never raised
    (the promotion is done; the entry is written again by the next promoter). An entry
    this process wrote is not written again."""
    entries = [pointer] + ([replaced] if replaced is not None else [])
    data = store.data_bucket

    def writer(one: Pointer) -> Callable[[], None]:
        def write() -> None:
            key = entry_key(runs_prefix, one.promoted_at, one.run_id)
            if (data, key) in store.written_once:
                return
            entry = from_pointer(one, dataset).model_dump(mode="json", exclude={"recorded"})
            with contextlib.suppress(AlreadyExistsError):
                store.put_json(data, key, entry, once=True)
            store.written_once.add((data, key))

        return write

    try:
        gather(*(writer(one) for one in entries))
    except LocalMlFlowError as exc:
        logger.warning(
            "dataset %s: the promotion of run %s is current but its log entry could not be"
            " written (the next promotion writes it from the pointer): %s",
            dataset,
            pointer.run_id,
            exc.message,
        )
        return False
    return True


def read(
    store: ArtifactStore,
    runs_prefix: str,
    dataset: str,
    pointer: Pointer | None,
    limit: int = 50,
) -> list[Promoted]:
    """The newest ``limit`` promotions, newest first; the current pointer's own entry is
    rebuilt from it when it could not be written (``recorded`` False)."""
    prefix = log_prefix(runs_prefix)
    keys = sorted((o.key for o in store.list_objects(store.data_bucket, prefix)), reverse=True)
    rebuilt = pointer is not None and (
        entry_key(runs_prefix, pointer.promoted_at, pointer.run_id) not in keys
    )
    newest = keys[:limit]

    def reader(key: str) -> Callable[[], Promoted]:
        def read_one() -> Promoted:
            blob = store.read(store.data_bucket, key)
            return parse_document(blob.data, Promoted, f"s3://{store.data_bucket}/{key}")

        return read_one

    found: list[Promoted] = gather(*(reader(k) for k in newest)) if newest else []
    if pointer is not None and rebuilt:
        found.append(from_pointer(pointer, dataset, recorded=False))
    found.sort(key=lambda p: (key_stamp(p.at), p.run_id), reverse=True)
    return found[:limit]
