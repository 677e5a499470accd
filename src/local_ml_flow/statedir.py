"""The embedded stack's state directory: what makes it ours, and what may be deleted in it.

A state directory carries a marker, ``.local-ml-flow-state`` (JSON, ``{"format": 1}``),
written when the stack creates or adopts the directory. Clean-up (``--fresh``, ``reset``,
the start-up's ``tmp/``) happens only in a directory carrying it, and deletes only the
entries the stack makes (``DATA``). A directory without the marker is adopted only when it
is empty or holds nothing but entries a stack makes, each of its kind (the state of a version
before the marker); any other directory is refused (``StateDirError``), and so are the file
system root and the home directory, marker or not. Standard library only (``launch.py``
imports it before the heavy imports).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Literal

from local_ml_flow.errors import LocalMlFlowError

MARKER = ".local-ml-flow-state"
FORMAT = 1
# the emulator's admin secret, mode 0600, new at every start
ADMIN_TOKEN = "admin-token"  # noqa: S105 - a file name, not a secret
LOCK = ".lock"
# What a stack makes in its state directory and deletes on a reset: name -> is a directory.
DATA: dict[str, bool] = {
    "s3": True,
    "s3-journal": True,  # the emulator's commit journal (emulator_main.commit)
    "emulator": True,
    "tmp": True,
    "emulator.log": False,
    ADMIN_TOKEN: False,
    f"{ADMIN_TOKEN}.tmp": False,
    f"{MARKER}.tmp": False,
}
# Made by a stack and kept by a reset (the lock is held while it resets).
KEPT: dict[str, bool] = {LOCK: False, MARKER: False}

Status = Literal["missing", "empty", "previous", "ours"]


class StateDirError(LocalMlFlowError):
    """A state directory that is not the stack's own: nothing is written or deleted in it."""


def _refused(path: Path, why: str) -> StateDirError:
    return StateDirError(
        f"{path} cannot be a local-ml-flow state directory: {why}; set LMF_STATE_DIR (or"
        " --state-dir) to a new or empty directory"
    )


def _is_kind(path: Path, directory: bool) -> bool:
    """A real directory or regular file (a symbolic link is neither)."""
    if path.is_symlink():
        return False
    return path.is_dir() if directory else path.is_file()


def status(state_dir: Path) -> Status:
    """What ``state_dir`` is: missing, empty, a state of a version before the marker
    (``previous``: every entry one a stack makes) or ours (the marker). Raises
    StateDirError for anything else."""
    path = Path(state_dir).absolute()
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        raise _refused(path, "it is the file system root")
    with contextlib.suppress(RuntimeError):
        if resolved == Path.home().resolve():
            raise _refused(path, "it is the home directory")
    if not path.exists():
        if path.is_symlink():
            raise _refused(path, "it is a dangling symbolic link")
        return "missing"
    if not path.is_dir():
        raise _refused(path, "it is not a directory")
    marker = path / MARKER
    if marker.exists() or marker.is_symlink():
        _check_marker(path, marker)
        return "ours"
    names = sorted(p.name for p in path.iterdir())
    if not names:
        return "empty"
    known = {**DATA, **KEPT}
    foreign = [n for n in names if n not in known or not _is_kind(path / n, known[n])]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
        raise _refused(path, f"it holds {shown} and no {MARKER} marker")
    return "previous"


def _check_marker(path: Path, marker: Path) -> None:
    try:
        if not _is_kind(marker, False):
            raise ValueError("not a regular file")
        found = json.loads(marker.read_text(encoding="utf-8"))
        version = found["format"] if isinstance(found, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("no format number")
    except (OSError, ValueError, KeyError) as exc:
        raise _refused(path, f"its marker {MARKER} is unreadable ({exc})") from None
    if version > FORMAT:
        raise StateDirError(
            f"{path} holds a state of format {version}, made by a newer local-ml-flow: use"
            " that version, or set LMF_STATE_DIR to another directory"
        )


def claim(state_dir: Path) -> Status:
    """Make ``state_dir`` the stack's own: create it, or adopt an empty one or a previous
    version's, by writing the marker. Returns what it was; StateDirError if not ours."""
    found = status(state_dir)
    path = Path(state_dir)
    try:
        if found == "missing":
            path.mkdir(parents=True, exist_ok=True)
        if found != "ours":
            _write(path, MARKER, json.dumps({"format": FORMAT}) + "\n")
    except OSError as exc:
        raise _refused(path.absolute(), f"it cannot be written ({exc.strerror or exc})") from None
    return found


def clear(state_dir: Path) -> list[Path]:
    """Delete what a stack makes in ``state_dir`` (ours: the caller claimed it and holds
    its lock), nothing else; a symbolic link is removed, never followed. Returns what went."""
    deleted = []
    for name in DATA:
        path = Path(state_dir) / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            continue
        deleted.append(path)
    return deleted


def empty_dir(path: Path) -> None:
    """``path`` (an entry of a claimed state directory) as a new empty directory."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def new_admin_token(state_dir: Path) -> str:
    """A new random secret for the emulator's admin endpoints, stored as ``admin-token``
    (mode 0600) in ``state_dir`` (claimed, its lock held)."""
    token = secrets.token_urlsafe(32)
    _write(Path(state_dir), ADMIN_TOKEN, token + "\n")
    return token


def _write(directory: Path, name: str, text: str) -> None:
    """``directory/name`` replaced whole (temporary file, fsync, rename), mode 0600."""
    tmp = directory / f"{name}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a crash's leftover; O_EXCL below then never follows a link
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, directory / name)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
