"""The run index: derived data that lists a run log's runs newest first, in pages, by status.

The run documents stay the source of truth and the latest pointer the commit point; the index
only remembers which runs exist, in which order, and the record of each *settled* run, so a
page of 50 runs out of 10,000 needs neither a listing of every run's files nor their
documents. It lives beside the runs (``runs-index/`` for housing,
``datasets/<name>/runs-index/`` for a registered dataset):

- ``marks/<stamp>-<token>/<run_id>``: an empty write-once object the run log writes *before* a
  document that creates a run (``queued.json``, ``request.json``) or can change a finished
  run's status (``kept.json``, ``error.json``). A mark claims nothing: it says "this run
  exists or is changing: read it from its documents". A failed write after its mark leaves a
  run read from its documents, never a wrong status.
- ``snapshot.json``: every known run (its sort key, the status its file names suggest, its
  files' ETags, the record of a settled run), written whole by a compaction with a
  compare-and-swap on its ETag, then the marks it absorbed are deleted. It is checked when
  read (sha256, shape, each settled record against its files); a missing, corrupt or
  tampered one is rebuilt from one listing of the runs.

How staleness is detected: a run is *settled* (its record served from the index) only when
its documents say it finished (``metrics.json``: succeeded, ``error.json``: failed) and its
newest mark is older than the run log's ``stale_after_s`` (the function timeout plus a minute:
no writer that marked it can still be writing). Every other run (queued, running, abandoned,
corrupt, recently marked) is read from its documents each time a page shows it. A new mark
unsettles its run. Writers that bypass the run log (another tool, an older Lambda package,
hand edits) are caught by a reconciliation: one listing of every run's files, compared by
ETag with the index (a mismatch unsettles the run); it runs in the background a while after
the index is first loaded and every ``RECONCILE_EVERY_S`` after that, and at once when the
index is lost or fails its checks.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Final

from local_ml_flow.errors import (
    AlreadyExistsError,
    ConcurrentUpdateError,
    InvalidRequestError,
    KeyNotFoundError,
    LocalMlFlowError,
    RunNotFoundError,
)
from local_ml_flow.events import valid_run_id
from local_ml_flow.storage import StoredObject

if TYPE_CHECKING:
    from local_ml_flow.runlog import RunLog

logger = logging.getLogger("local_ml_flow.runs")

FORMAT: Final = 1
INDEX_SUFFIX: Final = "-index/"  # beside ``<prefix>`` (``runs/``): ``runs-index/``
SNAPSHOT = "snapshot.json"
MARKS = "marks/"
STATUSES: Final = ("queued", "running", "succeeded", "failed", "corrupt")
# The statuses a run can still reach from the one its files suggest (documents only ever
# appear): a filter skips a run whose files rule it out without reading it.
_REACHABLE: Final[dict[str | None, frozenset[str]]] = {
    None: frozenset(STATUSES),
    "queued": frozenset(STATUSES),
    "running": frozenset(("running", "succeeded", "failed", "corrupt")),
    "succeeded": frozenset(("succeeded", "failed", "corrupt")),
    "failed": frozenset(("failed", "corrupt")),
}
RECONCILE_AFTER_S = 30.0  # the first reconciliation, after the index is first loaded
RECONCILE_EVERY_S = 900.0
COMPACT_EVERY_S = 10.0
_READERS = 8
_STAMP = "%Y%m%dT%H%M%S%fZ"

Key = tuple[str, str]  # (created, run_id): the order of runs, newest last


def _normal(timestamp: str) -> str:
    """A timestamp as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (S3's and the documents' alike)."""
    when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp_time(stamp: str) -> str:
    return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hint(names: Mapping[str, object]) -> str | None:
    """The status a run's file names suggest (its documents may still say corrupt)."""
    from local_ml_flow.runlog import ERROR, METRICS, QUEUED, REQUEST

    if ERROR in names:
        return "failed"
    if METRICS in names:
        return "succeeded"
    if REQUEST in names:
        return "running"
    return "queued" if QUEUED in names else None


@dataclass
class Entry:
    """One run as the index knows it."""

    created: str  # the sort key: when the run was first recorded (normalized)
    hint: str | None  # the status its files suggested when last seen
    files: dict[str, str] | None  # its files' names -> ETags when last read (None: unread)
    record: dict[str, Any] | None  # its record as last read from its documents
    marked: str | None = None  # its newest mark's time (normalized), if any
    read_at: str | None = None  # when ``record`` was read (normalized)
    listed: dict[str, StoredObject] | None = None  # files from a reconciliation, not yet read

    def finished(self) -> bool:
        """Whether its last read record came from a finishing document."""
        from local_ml_flow.runlog import ERROR, METRICS

        if self.record is None or self.files is None:
            return False
        status = self.record.get("status")
        if status == "failed":
            return ERROR in self.files
        return status == "succeeded" and METRICS in self.files and ERROR not in self.files


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the next page starts after this run."""

    created: str
    run_id: str

    def encode(self) -> str:
        raw = json.dumps([self.created, self.run_id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor a page answered with; InvalidRequestError (422) for anything else."""
        wrong = InvalidRequestError(
            f"cursor {text[:40]!r} is not one this API gave: pass the `next_cursor` of the"
            " previous page unchanged, or no cursor for the first page"
        )
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            created, run_id = json.loads(raw)
            if not (isinstance(created, str) and isinstance(run_id, str) and valid_run_id(run_id)):
                raise ValueError(run_id)
            created = _normal(created)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise wrong from None
        return cls(created, run_id)


def is_index_key(key: str) -> bool:
    """Whether ``key`` is the run index's (derived data, not a run's or a dataset's)."""
    return f"runs{INDEX_SUFFIX}" in key


def check_status(status: str | None) -> str | None:
    """A status filter, or InvalidRequestError (422) naming the accepted ones."""
    if status is not None and status not in STATUSES:
        raise InvalidRequestError(f"status {status[:40]!r} is not one of {', '.join(STATUSES)}")
    return status


class RunIndex:
    """The index of one run log's runs (see the module's notes)."""

    def __init__(self, log: RunLog) -> None:
        self.log = log
        self.prefix = log.prefix.rstrip("/") + INDEX_SUFFIX
        self.snapshot_key = self.prefix + SNAPSHOT
        self.marks_prefix = self.prefix + MARKS
        self._lock = threading.RLock()
        self._entries: dict[str, Entry] = {}
        self._order: list[Key] = []  # sorted ascending: the newest run last
        self._loaded = False
        self._etag: str | None = None  # the snapshot's ETag as last read or written
        self._marks: set[str] = set()  # mark keys applied
        self._changed = False  # something the snapshot does not hold yet
        self._busy = False  # a background compaction or reconciliation under way
        self._filled = False  # the runs not read yet were read in the background
        self._compacted = 0.0
        self._reconcile_at = 0.0

    # -- writers ----------------------------------------------------------------------------
    def mark(self, run_id: str) -> None:
        """Say a run is created or changing, before the document that does it is written."""
        stamp = datetime.now(UTC).strftime(_STAMP)
        key = f"{self.marks_prefix}{stamp}-{secrets.token_hex(4)}/{run_id}"
        store = self.log.store
        store.put_bytes(store.data_bucket, key, b"", "application/octet-stream")

    # -- readers ----------------------------------------------------------------------------
    def warm(self) -> None:
        """Load the index in a thread (an API at start-up): the first page finds it read."""

        def load() -> None:
            try:
                with self._lock:
                    self._refresh()
                self._background()
            except LocalMlFlowError as exc:  # the first page tries again, and says why
                logger.warning("run index %s: %s", self.prefix, exc.message)

        threading.Thread(target=load, name="run-index-load", daemon=True).start()

    def page(
        self, limit: int, cursor: Cursor | None = None, status: str | None = None
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """Up to ``limit`` records, newest first, after ``cursor``, of ``status`` (any if
        None), and the cursor of the next page (None: this is the last)."""
        check_status(status)
        with self._lock:
            self._refresh()
            current = self.log._current()
            records, last, more = self._collect(limit, cursor, status)
        self._background()
        for record in records:
            record["current"] = record["run_id"] == current
            if record["current"]:
                record["not_promoted"] = None  # kept once, promoted since
        return records, (Cursor(*last) if more and last is not None else None)

    def _keys_after(self, cursor: Cursor | None) -> Iterator[Key]:
        """The runs' keys, newest first, strictly older than ``cursor``."""
        end = len(self._order)
        if cursor is not None:
            end = bisect.bisect_left(self._order, (cursor.created, cursor.run_id))
        for i in range(end - 1, -1, -1):
            yield self._order[i]

    def _collect(
        self, limit: int, cursor: Cursor | None, status: str | None
    ) -> tuple[list[dict[str, Any]], Key | None, bool]:
        """The page's records, the key of its last run, and whether runs may follow it."""
        out: list[dict[str, Any]] = []
        last: Key | None = None
        keys = self._keys_after(cursor)
        exhausted = more = False
        gone: list[str] = []
        while len(out) < limit and not exhausted:
            batch: list[Key] = []
            want = max(limit - len(out), _READERS)  # as many as still wanted, a few at least
            for key in keys:
                if status is None or status in self._could_be(self._entries[key[1]]):
                    batch.append(key)
                    if len(batch) >= want:
                        break
            else:
                exhausted = True
            gone += self._read([k[1] for k in batch if not self._settled(self._entries[k[1]])])
            for key in batch:
                record = self._entries[key[1]].record
                if record is None or key[1] in gone:
                    continue  # marked, not (yet) written
                if status is not None and record["status"] != status:
                    continue
                if len(out) == limit:
                    more = True  # a run of the next page
                    break
                out.append(dict(record))
                last = key
        more = more or (len(out) == limit and not exhausted)
        for run_id in gone:
            self._drop(run_id)
        return out, last, more

    def _could_be(self, entry: Entry) -> frozenset[str]:
        if self._settled(entry):
            assert entry.record is not None
            return frozenset((entry.record["status"],))
        return _REACHABLE.get(entry.hint, _REACHABLE[None])

    def _settled(self, entry: Entry) -> bool:
        """Whether the record kept is the run's for good (see the module's notes): it came
        from a finishing document, read after its newest mark could still be written over."""
        if not entry.finished():
            return False
        if entry.marked is None:
            return True
        return entry.read_at is not None and _seconds(entry.marked, entry.read_at) > (
            self.log.stale_after_s
        )

    def _read(self, run_ids: list[str]) -> list[str]:
        """Read runs from their documents (at once) and remember what they said; returns
        the runs that do not exist and were marked long ago (to drop)."""
        if not run_ids:
            return []
        now = _normal(datetime.now(UTC).isoformat())
        if len(run_ids) == 1:
            found = [self._read_one(run_ids[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(_READERS, len(run_ids))) as readers:
                found = list(readers.map(self._read_one, run_ids))
        gone: list[str] = []
        for run_id, got in zip(run_ids, found, strict=True):
            entry = self._entries[run_id]
            if got is None:  # not written yet, or deleted: not shown
                entry.record = entry.files = None
                if not self._recent(entry.marked):  # marked long ago: gone for good
                    gone.append(run_id)
                continue
            files, record = got
            entry.files = {name: o.etag for name, o in files.items()}
            entry.hint, entry.record, entry.read_at, entry.listed = _hint(files), record, now, None
            if self._settled(entry):
                self._changed = True
        return gone

    def _read_one(self, run_id: str) -> tuple[dict[str, StoredObject], dict[str, Any]] | None:
        log = self.log
        entry = self._entries[run_id]
        files = entry.listed
        if files is None:
            listed = log.store.list_objects(log.store.data_bucket, log.key(run_id, ""))
            files = {o.key.rsplit("/", 1)[-1]: o for o in listed}
        if not set(files) & {"queued.json", "request.json"} or "deleted.json" in files:
            return None  # not (yet) written, or deleted
        return files, log._full_record(run_id, files, None)

    def _recent(self, marked: str | None) -> bool:
        """Whether a mark made at ``marked`` may still be followed by its document."""
        if marked is None:
            return False
        return _seconds(marked, datetime.now(UTC).isoformat()) <= self.log.stale_after_s

    # -- keeping the index ------------------------------------------------------------------
    def _put(self, run_id: str, entry: Entry) -> None:
        old = self._entries.get(run_id)
        if old is not None:
            index = bisect.bisect_left(self._order, (old.created, run_id))
            if index < len(self._order) and self._order[index] == (old.created, run_id):
                del self._order[index]
        self._entries[run_id] = entry
        bisect.insort(self._order, (entry.created, run_id))

    def _drop(self, run_id: str) -> None:
        old = self._entries.pop(run_id, None)
        if old is not None:
            index = bisect.bisect_left(self._order, (old.created, run_id))
            if index < len(self._order) and self._order[index] == (old.created, run_id):
                del self._order[index]
            self._changed = True

    def _refresh(self) -> None:
        """Load the index (or rebuild it), then apply the marks written since."""
        store = self.log.store
        if self._loaded:
            head = store.head(store.data_bucket, self.snapshot_key)
            if head is not None and head.etag != self._etag:
                self._loaded = False  # another process compacted: take its snapshot
        if not self._loaded:
            self._load()
        for mark in store.list_objects(store.data_bucket, self.marks_prefix):
            if mark.key not in self._marks:
                self._apply(mark.key)

    def _apply(self, key: str) -> None:
        name, _, run_id = key[len(self.marks_prefix) :].partition("/")
        try:
            when = _stamp_time(name.split("-", 1)[0])
        except ValueError:
            when = None
        self._marks.add(key)
        if when is None or not valid_run_id(run_id):
            return  # not a mark this project writes: left alone
        entry = self._entries.get(run_id)
        if entry is None:
            self._put(run_id, Entry(created=when, hint=None, files=None, record=None, marked=when))
        elif entry.marked is None or when > entry.marked:
            entry.marked = when
        else:
            return
        self._changed = True

    def _load(self) -> None:
        store = self.log.store
        self._entries, self._order, self._marks = {}, [], set()
        self._filled = False
        try:
            blob = store.read(store.data_bucket, self.snapshot_key)
        except KeyNotFoundError:
            logger.info("run index %s: none yet, building it from the runs", self.prefix)
            self._rebuild()
            return
        try:
            self._entries = _parse(blob.data, blob.metadata.get("sha256"))
        except ValueError as exc:
            logger.warning("run index %s: %s; rebuilding it from the runs", self.snapshot_key, exc)
            self._entries = {}
            self._rebuild()
            return
        self._order = sorted((e.created, run_id) for run_id, e in self._entries.items())
        self._etag, self._loaded = blob.etag, True
        self._reconcile_at = time.monotonic() + RECONCILE_AFTER_S

    def _rebuild(self) -> None:
        """The index from one listing of every run's files (kept records whose files did not
        change are kept)."""
        from local_ml_flow.runlog import _index

        log = self.log
        objects = log.store.list_objects(log.store.data_bucket, log.prefix)
        files, created = _index(objects, log.prefix)
        self._merge(files, created, self._first_marks())
        head = log.store.head(log.store.data_bucket, self.snapshot_key)
        self._etag = head.etag if head is not None else None
        self._loaded, self._changed = True, True
        self._reconcile_at = time.monotonic() + RECONCILE_EVERY_S

    def _first_marks(self) -> dict[str, str]:
        """Each marked run's first mark's time: when it was created, to the microsecond (a
        listing's times may be whole seconds)."""
        store = self.log.store
        first: dict[str, str] = {}
        for mark in store.list_objects(store.data_bucket, self.marks_prefix):
            run_id = mark.key.rsplit("/", 1)[-1]
            when = _mark_time(mark.key, self.marks_prefix)
            if when is not None and (run_id not in first or when < first[run_id]):
                first[run_id] = when
        return first

    def _merge(
        self,
        files: dict[str, dict[str, StoredObject]],
        created: dict[str, str],
        marked: Mapping[str, str],
    ) -> None:
        """Make the index follow a listing of the runs: a run whose files' ETags differ from
        the ones its record was read from is read again; a run gone is dropped; a new run is
        placed by its first mark, else by its first document's time."""
        created = {r: when for r, when in created.items() if "deleted.json" not in files[r]}
        for run_id, when in created.items():
            listed = files[run_id]
            tags = {name: o.etag for name, o in listed.items()}
            entry = self._entries.get(run_id)
            if entry is None:
                # its first mark, if that is its creation (in the second its first document
                # was listed at), to the microsecond; not a later mark of a run made without
                # one (written by another tool, then changed through the run log)
                listed_at, mark = _normal(when), marked.get(run_id)
                at = mark if mark is not None and mark[:19] <= listed_at[:19] else listed_at
                self._put(run_id, Entry(at, _hint(listed), None, None, listed=listed))
            elif entry.files != tags:
                entry.files, entry.record, entry.listed = None, None, listed
                entry.hint = _hint(listed)
                self._changed = True
        for run_id in [r for r, e in self._entries.items() if r not in created]:
            if not self._recent(self._entries[run_id].marked):
                self._drop(run_id)

    def reconcile(self) -> None:
        """Compare the index with one listing of every run's files (see the module's notes)."""
        from local_ml_flow.runlog import _index

        log = self.log
        objects = log.store.list_objects(log.store.data_bucket, log.prefix)
        with self._lock:
            if not self._loaded:
                self._load()
                return
            self._merge(*_index(objects, log.prefix), self._first_marks())
            self._reconcile_at = time.monotonic() + RECONCILE_EVERY_S

    def compact(self) -> bool:
        """Write the snapshot (compare-and-swap on its ETag), then delete the marks it holds
        that are older than ``stale_after_s``; whether it was written."""
        store = self.log.store
        with self._lock:
            if not self._loaded:
                return False
            data = _serialize(self._entries, self._settled)
            etag, marks = self._etag, sorted(self._marks)
            self._changed = False
        try:
            digest = store.put_bytes(
                store.data_bucket,
                self.snapshot_key,
                data,
                "application/json",
                once=etag is None,
                if_match=etag,
            )
        except (ConcurrentUpdateError, AlreadyExistsError):
            with self._lock:
                self._loaded = False  # another process wrote one: read it next time
            return False
        head = store.head(store.data_bucket, self.snapshot_key)
        with self._lock:
            ours = head is not None and head.metadata.get("sha256") == digest
            self._etag = head.etag if ours and head is not None else None
            self._loaded = self._loaded and ours  # else another one came since: read it
            self._compacted = time.monotonic()
        old = [k for k in marks if not self._recent(_mark_time(k, self.marks_prefix))]
        for key in old:
            with contextlib.suppress(LocalMlFlowError):
                store.delete(store.data_bucket, key)
        with self._lock:
            self._marks.difference_update(old)
        return True

    def fill(self, batch: int = 64) -> int:
        """Read the runs whose record this index has not read yet (after a rebuild, or runs
        that were not settled when the snapshot was written), a batch at a time so pages are
        served meanwhile; returns how many were read."""
        with self._lock:
            todo = [
                r
                for r, e in self._entries.items()
                if e.record is None and not self._recent(e.marked)
            ]
        done = 0
        for start in range(0, len(todo), batch):
            with self._lock:
                chunk = [r for r in todo[start : start + batch] if self._unread(r)]
                for run_id in self._read(chunk):
                    self._drop(run_id)
            done += len(chunk)
        return done

    def _unread(self, run_id: str) -> bool:
        entry = self._entries.get(run_id)
        return entry is not None and entry.record is None

    def _background(self) -> None:
        """Reconcile, fill and compact in a thread, when due and none is under way."""
        now = time.monotonic()
        with self._lock:
            reconcile = self._loaded and now >= self._reconcile_at
            compact = self._changed and now - self._compacted >= COMPACT_EVERY_S
            if self._busy or not (reconcile or compact or not self._filled):
                return
            self._busy = True

        def work() -> None:
            try:
                if reconcile:
                    self.reconcile()
                if not self._filled:
                    self._filled = True  # once per load (a page reads what it shows anyway)
                    if self.fill():
                        self.compact()
                if self._changed:
                    self.compact()
            except LocalMlFlowError as exc:
                logger.warning("run index %s: %s", self.prefix, exc.message)
            finally:
                with self._lock:
                    self._busy = False

        threading.Thread(target=work, name="run-index", daemon=True).start()


def _seconds(earlier: str, later: str) -> float:
    """Seconds from one timestamp to another."""
    first = datetime.fromisoformat(earlier.replace("Z", "+00:00"))
    second = datetime.fromisoformat(later.replace("Z", "+00:00"))
    return (second - first).total_seconds()


def _mark_time(key: str, prefix: str) -> str | None:
    try:
        return _stamp_time(key[len(prefix) :].split("-", 1)[0])
    except ValueError:
        return None


def _serialize(entries: Mapping[str, Entry], settled: Any) -> bytes:
    """The snapshot: every run's key, hint and files; the record of a settled one."""
    rows = []
    for run_id, e in entries.items():
        kept = (e.record, e.read_at) if settled(e) else (None, None)
        rows.append([run_id, e.created, e.hint, e.files, *kept, e.marked])
    return json.dumps({"format": FORMAT, "runs": rows}, separators=(",", ":")).encode()


def _parse(data: bytes, digest: str | None) -> dict[str, Entry]:
    """The entries of a snapshot; ValueError saying what is wrong with it."""
    if digest != sha256(data).hexdigest():
        raise ValueError("its sha256 does not match its bytes")
    try:
        document = json.loads(data)
    except ValueError:
        raise ValueError("it is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"it is not format {FORMAT}")
    entries: dict[str, Entry] = {}
    for row in document.get("runs", []):
        try:
            run_id, created, hint, files, record, read_at, marked = row
            entry = Entry(_normal(created), hint, files, record, marked, read_at)
        except (TypeError, ValueError):
            raise ValueError(f"an entry is not a run's seven fields: {row!r:.80}") from None
        if not isinstance(run_id, str) or not valid_run_id(run_id) or hint not in _REACHABLE:
            raise ValueError(f"entry {run_id!r:.60} has no valid run id or status")
        if files is not None and not (
            isinstance(files, dict) and all(isinstance(v, str) for v in files.values())
        ):
            raise ValueError(f"entry {run_id!r}: its files are not names and ETags")
        if record is not None:
            if not isinstance(record, dict) or record.get("run_id") != run_id:
                raise ValueError(f"entry {run_id!r}: its record is another run's")
            if not entry.finished() or _hint(files or {}) != record.get("status"):
                raise ValueError(f"entry {run_id!r}: its record's status disagrees with its files")
        entries[run_id] = entry
    return entries


__all__ = ["Cursor", "RunIndex", "RunNotFoundError", "check_status"]
