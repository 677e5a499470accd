"""Run MiniStack behind a guard that refuses browser-originated requests, with durable S3
persistence (a standalone script).

``python emulator_main.py`` (any interpreter with ``ministack`` installed; this file imports
only the standard library and ministack, so the Terraform tests run it on a separate
CPython 3.12) serves MiniStack exactly as ``python -m ministack`` does, with one ASGI
layer in front of it. MiniStack answers every request with
``Access-Control-Allow-Origin: *`` and serves ``/_ministack/reset``: a web page in the
user's browser could read, overwrite or wipe the local buckets. The guard refuses, with
403 and before MiniStack sees it, any request that

- carries an ``Origin`` header or a ``Sec-Fetch-*`` header (browsers send them; the AWS
  SDKs, the AWS CLI and Terraform never do), or
- names a host other than loopback (``127.0.0.1``, ``localhost``, ``*.localhost``, ``[::1]``):
  a DNS-rebinding page reaches 127.0.0.1 under its own host name, or
- asks for one of MiniStack's admin endpoints, ``/_ministack/*`` (reset, config, ...; any
  method), without the stack's secret in ``x-lmf-admin-token``: any local process could wipe
  the state on disk. The secret comes in the environment (``LOCAL_ML_FLOW_ADMIN_TOKEN``,
  removed before MiniStack starts, so its Lambda workers do not inherit it); without one,
  every admin request is refused. The data plane (S3, Lambda, IAM on loopback) needs none.

MiniStack persists each S3 object as two files written one after the other (the bytes, then a
``.meta.json`` sidecar with the size), without fsync, and a write that fails is logged and
still answered 200. Here the file changes one S3 request makes are staged in memory and
committed together (``commit``): each new file written beside its target and fsync'd, then a
journal naming them renamed into place (the commit point), then the renames and removals. A
crash before the journal's rename leaves the state as it was (the staged files are removed at
the next start, ``recover``); after it, the next start completes the journal. A commit that
fails (ENOSPC, EIO, a read-only disk) changes nothing on disk: the request answers 507
InsufficientStorage and the bucket is reloaded from disk, so what is served is what is stored.
The S3 event notifications a request fires (an upload invoking a function) are delivered after
its commit, and never for a write that was refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hmac
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
ADMIN_HEADER = "x-lmf-admin-token"
ADMIN_TOKEN_ENV = "LOCAL_ML_FLOW_ADMIN_TOKEN"  # noqa: S105 - a variable's name, not a secret
ADMIN_PREFIX = "/_ministack"


def _host_is_loopback(host: str) -> bool:
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:4566
        name = name[: name.find("]") + 1]
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    return name in LOOPBACK_HOSTS or name.endswith(".localhost")


def _is_admin(path: str) -> bool:
    """``/_ministack`` or below it (leading slashes and case do not matter)."""
    name = "/" + path.lstrip("/").lower()
    return name == ADMIN_PREFIX or name.startswith(ADMIN_PREFIX + "/")


def refusal(headers: dict[str, str], path: str = "/", admin_token: str = "") -> str | None:
    """Why a request with these (lower-case) headers for ``path`` is refused, or None to let
    it through. ``admin_token``: what ``/_ministack/*`` needs (empty: refused to all)."""
    if "origin" in headers:
        return "requests from a web page (Origin header) are refused"
    if any(name.startswith("sec-fetch-") for name in headers):
        return "requests from a web browser (Sec-Fetch headers) are refused"
    host = headers.get("host")
    if host is not None and not _host_is_loopback(host):
        return f"host {host!r} is not loopback"
    if _is_admin(path):
        given = headers.get(ADMIN_HEADER, "").encode("latin-1")
        if not admin_token or not hmac.compare_digest(given, admin_token.encode()):
            return (
                f"{ADMIN_PREFIX}/* needs the stack's admin token in the {ADMIN_HEADER} header"
                " (the admin-token file of its state directory)"
            )
    return None


def guard(app: App, admin_token: str = "") -> App:
    """``app`` behind the browser/host/admin check (HTTP only; lifespan passes through)."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http":
            headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in scope.get("headers", [])
            }
            reason = refusal(headers, scope.get("path", "/"), admin_token)
            if reason is not None:
                body = json.dumps(
                    {"__type": "AccessDeniedException", "message": f"local emulator: {reason}"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


# -- durable S3 persistence ------------------------------------------------------------------
STAGED = ".lmf-new.tmp"  # a staged file's suffix (MiniStack never loads a *.tmp file)
_log = logging.getLogger("local_ml_flow.emulator")


class Faults:
    """The fault hook of the crash and I/O-error tests: ``LMF_EMULATOR_FAULT`` =
    ``crash@N`` (the process dies at its N-th durable file operation) or ``enospc@N`` (that
    operation fails with ENOSPC); ``LMF_EMULATOR_OPS_LOG``: a file each operation is
    appended to (how many a scenario makes)."""

    def __init__(self, spec: str = "", ops_log: str = "") -> None:
        self.kind, _, at = spec.partition("@")
        self.at = int(at) if at.isdigit() else 0
        self.ops_log = ops_log
        self.count = 0

    def op(self, kind: str, path: str) -> None:
        """Count one durable operation; crash or fail here if the hook says so."""
        self.count += 1
        if self.ops_log:
            with open(self.ops_log, "a") as log:
                log.write(f"{self.count} {kind} {path}\n")
        if self.count == self.at:
            if self.kind == "crash":
                os._exit(137)
            if self.kind == "enospc":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


FAULTS = Faults()


def _fsync_dir(path: str) -> None:
    FAULTS.op("fsync-dir", path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: str, data: bytes) -> None:
    """``data`` in a new file at ``path`` (mode 0600), fsync'd."""
    FAULTS.op("write", path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        FAULTS.op("fsync", path)
        os.fsync(fd)
    finally:
        os.close(fd)


class Changes:
    """The file changes of one S3 request: path -> new bytes, and paths to remove."""

    def __init__(self) -> None:
        self.writes: dict[str, bytes] = {}
        self.removals: set[str] = set()
        self.failure: str | None = None  # a persistence step MiniStack reported failed
        # S3 event notifications the request fires: delivered once it is committed
        self.events: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def write(self, path: str, data: bytes) -> None:
        self.removals.discard(path)
        self.writes[path] = data

    def remove(self, path: str) -> None:
        self.writes.pop(path, None)
        self.removals.add(path)


_CHANGES: contextvars.ContextVar[Changes | None] = contextvars.ContextVar(
    "lmf_changes", default=None
)


def _inside(root: str, path: str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base + os.sep)


def commit(changes: Changes, data_dir: str, journal_dir: str) -> None:
    """Apply ``changes`` atomically and durably (see the module's docstring). An OSError
    means nothing changed: it came before the commit point (the journal's rename). After
    that point the changes are carried out whatever fails: again from the journal, or, if
    even that fails, by the next start (this process exits for its supervisor to restart it).
    """
    if not changes.writes and not changes.removals:
        return
    journal, record = _committed(changes, journal_dir)
    try:
        _fsync_dir(journal_dir)
        _apply(journal, record, data_dir)
    except Exception as exc:  # committed: finish it, now or at the next start
        _log.error("completing a committed S3 write failed (%s): completing it again", exc)
        try:
            recover(data_dir, journal_dir)
        except Exception as again:
            _log.critical("cannot complete a committed S3 write (%s): exiting", again)
            os._exit(75)


def _committed(changes: Changes, journal_dir: str) -> tuple[str, dict[str, Any]]:
    """Stage the new files (fsync'd) and commit them with a journal renamed into place;
    the journal and its record. On any failure before the rename nothing was changed (the
    staged files are removed) and the error is raised."""
    staged: list[tuple[str, str]] = []
    journal = ""
    try:
        for path, data in changes.writes.items():
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            staged.append((path, path + STAGED))
            _write_synced(path + STAGED, data)
        for folder in sorted({os.path.dirname(p) for p, _ in staged}):
            _fsync_dir(folder)
        os.makedirs(journal_dir, mode=0o700, exist_ok=True)
        journal = os.path.join(journal_dir, f"{time.time_ns()}-{secrets.token_hex(4)}.json")
        record = {"writes": staged, "removals": sorted(changes.removals)}
        _write_synced(journal + ".tmp", json.dumps(record).encode())
        FAULTS.op("rename", journal)
        os.replace(journal + ".tmp", journal)  # the commit point
    except BaseException:
        for _, new in staged:
            with contextlib.suppress(OSError):
                os.remove(new)
        if journal:
            with contextlib.suppress(OSError):
                os.remove(journal + ".tmp")
        raise
    return journal, record


def _apply(journal: str, record: dict[str, Any], data_dir: str) -> None:
    """Carry out a committed journal (again, after a crash: every step is idempotent)."""
    folders: set[str] = set()
    for path, new in record.get("writes", []):
        if not (_inside(data_dir, path) and _inside(data_dir, new)):
            raise ValueError(f"journal {journal} names a file outside {data_dir}: {path}")
        if os.path.exists(new):
            FAULTS.op("rename", path)
            os.replace(new, path)
        folders.add(os.path.dirname(path))
    for path in record.get("removals", []):
        if not _inside(data_dir, path):
            raise ValueError(f"journal {journal} names a file outside {data_dir}: {path}")
        if os.path.isfile(path):
            FAULTS.op("remove", path)
            os.remove(path)
            folders.add(os.path.dirname(path))
    for folder in sorted(folders):
        if os.path.isdir(folder):
            _fsync_dir(folder)
    FAULTS.op("remove", journal)
    os.remove(journal)


def recover(data_dir: str, journal_dir: str) -> list[str]:
    """Bring a state directory to its last commit: finish the committed journals, remove
    what was staged but never committed, and make each sidecar agree with its file's size
    (a file changed by hand is served as it is). Returns what was done, one line each."""
    done: list[str] = []
    if os.path.isdir(journal_dir):
        for entry in sorted(os.listdir(journal_dir)):
            path = os.path.join(journal_dir, entry)
            if entry.endswith(".json.tmp"):
                os.remove(path)
                done.append(f"removed an uncommitted journal {entry}")
            elif entry.endswith(".json"):
                with open(path, "rb") as journal:
                    record = json.loads(journal.read())
                _apply(path, record, data_dir)
                done.append(f"completed the committed write {entry}")
    if not os.path.isdir(data_dir):
        return done
    for folder, _, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(STAGED):
                os.remove(path)
                done.append(f"rolled back an uncommitted write of {path[: -len(STAGED)]}")
            elif name.endswith(".meta.json") and os.path.isfile(path[: -len(".meta.json")]):
                fixed = _sidecar_fixed(path)
                if fixed:
                    done.append(fixed)
    return done


def _sidecar_fixed(sidecar: str) -> str | None:
    """Make a sidecar's size and ETag those of its data file, if they differ."""
    import hashlib

    target = sidecar[: -len(".meta.json")]
    try:
        with open(sidecar, "rb") as file:
            meta = json.loads(file.read())
    except (OSError, ValueError):
        return None  # MiniStack reads the file itself when the sidecar is unreadable
    if not isinstance(meta, dict) or meta.get("is_delete_marker") or "size" not in meta:
        return None
    size = os.path.getsize(target)
    if meta.get("size") == size:
        return None
    with open(target, "rb") as file:
        digest = hashlib.md5(file.read(), usedforsecurity=False).hexdigest()
    meta.update(size=size, etag=f'"{digest}"', checksums={})
    _write_synced(sidecar + ".tmp", json.dumps(meta).encode())
    os.replace(sidecar + ".tmp", sidecar)
    _fsync_dir(os.path.dirname(sidecar))
    return f"{target}: its size on disk ({size} bytes) differs from its record: recorded as is"


def make_durable(s3: Any, data_dir: str, journal_dir: str) -> None:
    """Route MiniStack's S3 file writes and removals through ``Changes``, committed once per
    request; a failed commit answers 507 and reloads the bucket from disk."""
    handle = s3.handle_request

    def atomic_write(fpath: str, data: bytes | str, *, text: bool = False) -> None:
        blob = data.encode() if isinstance(data, str) else data
        changes = _CHANGES.get()
        if changes is None:  # outside a request (start-up): written at once, durably
            commit_one = Changes()
            commit_one.write(fpath, blob)
            commit(commit_one, data_dir, journal_dir)
            return
        changes.write(fpath, blob)

    def remove_key_files(fpath: str | None) -> None:
        changes = _CHANGES.get()
        for path in (fpath, fpath and fpath + ".meta.json"):
            if path and os.path.isfile(path):
                if changes is None:
                    os.remove(path)
                else:
                    changes.remove(path)

    def delete_version_file(bucket_name: str, key: str, version_id: str) -> None:
        path = s3._version_disk_path(bucket_name, key, version_id)
        changes = _CHANGES.get()
        if path is not None and os.path.exists(path):
            if changes is None:
                os.remove(path)
            else:
                changes.remove(path)

    fire = s3._fire_s3_event_async

    def fire_after_commit(*args: Any, **kw: Any) -> None:
        changes = _CHANGES.get()
        if changes is None:
            fire(*args, **kw)
        else:  # MiniStack fires while the request runs, before its files are committed
            changes.events.append((args, kw))

    async def handle_request(
        method: str, path: str, headers: dict[str, str], *args: Any, **kw: Any
    ) -> Any:
        if method in ("GET", "HEAD", "OPTIONS"):
            return await handle(method, path, headers, *args, **kw)
        changes = Changes()
        token = _CHANGES.set(changes)
        try:
            answer = await handle(method, path, headers, *args, **kw)
        finally:
            _CHANGES.reset(token)
        try:
            if changes.failure is not None:
                raise OSError(changes.failure)
            commit(changes, data_dir, journal_dir)
        except (OSError, ValueError) as exc:
            bucket = s3._parse_bucket_key(path, headers)[0]
            _reload_bucket(s3, bucket)
            _log.error("an S3 write to %s could not be stored: %s", path, exc)
            return s3._error(
                "InsufficientStorage",
                f"the local emulator could not store this write ({exc}); nothing was"
                " changed: free space or fix the state directory, then retry",
                507,
            )
        for event_args, event_kw in changes.events:
            fire(*event_args, **event_kw)
        return answer

    class Logger:
        """MiniStack's S3 logger: its "Failed to persist ..." warnings fail the request."""

        def __init__(self, inner: logging.Logger) -> None:
            self.inner = inner

        def warning(self, message: str, *args: Any, **kw: Any) -> None:
            changes = _CHANGES.get()
            if changes is not None and message.startswith("Failed to"):
                changes.failure = message % args if args else message
            self.inner.warning(message, *args, **kw)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    s3._atomic_write = atomic_write
    s3._remove_key_files = remove_key_files
    s3._delete_version_file = delete_version_file
    s3._fire_s3_event_async = fire_after_commit
    s3.handle_request = handle_request
    s3.logger = Logger(s3.logger)


def _reload_bucket(s3: Any, bucket: str) -> None:
    """Forget what memory holds of ``bucket``'s objects and load them again from disk."""
    account = s3.get_account_id()
    record = s3._buckets._data.get((account, bucket))
    if record is None:
        return
    record["objects"] = {}
    for table in (s3._object_versions, s3._object_tags, s3._object_acl, s3._object_annotations):
        for scoped in [k for k in table._data if k[0] == account and k[1][0] == bucket]:
            del table._data[scoped]
    path = os.path.join(s3.DATA_DIR, account, bucket)
    if os.path.isdir(path):
        s3._load_persisted_bucket(account, bucket, path)


def main() -> None:
    """Bring the S3 state to its last commit, load MiniStack with durable S3 writes, install
    the guard as its app, then run MiniStack's own main()."""
    admin_token = os.environ.pop(ADMIN_TOKEN_ENV, "")  # before MiniStack: workers never see it
    global FAULTS
    FAULTS = Faults(
        os.environ.get("LMF_EMULATOR_FAULT", ""), os.environ.get("LMF_EMULATOR_OPS_LOG", "")
    )
    data_dir = os.environ.get("S3_DATA_DIR", "")
    if data_dir and os.environ.get("S3_PERSIST") == "1":
        journal_dir = data_dir.rstrip(os.sep) + "-journal"
        for line in recover(data_dir, journal_dir):
            print(f"local-ml-flow recovery: {line}", file=sys.stderr, flush=True)
        import ministack.services.s3 as s3  # loads the persisted objects

        make_durable(s3, data_dir, journal_dir)
    import ministack.app

    ministack.app.app = guard(ministack.app.app, admin_token)
    sys.stdout.flush()
    ministack.app.main()


if __name__ == "__main__":
    main()
