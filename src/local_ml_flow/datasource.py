"""Where the reference dataset comes from: a local file, the cache, or a verified download."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from local_ml_flow.errors import DatasetFetchError

CACHE_NAME = "housing.csv"
_LOCAL_COPY_HINT = " Point LMF_DATASET_PATH (or --dataset) at a local copy instead."
_CHUNK = 1 << 16


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_path(cache_dir: Path) -> Path:
    return cache_dir / CACHE_NAME


def fetch(url: str, expected_sha256: str, cache_dir: Path, *, timeout_s: float = 30) -> Path:
    """Download ``url`` into the cache, verify its sha256, return the cached path.

    A valid cached copy is reused; a file whose sha256 differs is refused and never cached.
    """
    target = cached_path(cache_dir)
    if target.is_file() and _sha256_file(target) == expected_sha256:
        return target
    if not url.startswith(("https://", "http://", "file://")):
        raise DatasetFetchError(
            f"refusing to fetch {url!r}: only http(s) and file:// URLs are supported"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".download-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - scheme checked above
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise DatasetFetchError(
                f"downloaded {url} has sha256 {actual}, expected {expected_sha256}:"
                " refusing the file (tampered or changed upstream)"
            )
        tmp.replace(target)
        return target
    # a malformed URL (http.client.InvalidURL, ValueError) or a server that does not speak
    # HTTP (http.client.BadStatusLine) are not OSErrors
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetFetchError(
            f"cannot download the dataset from {url}: {reason}.{_LOCAL_COPY_HINT}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def regular_file(path: Path) -> Path:
    """``path`` if it is a regular file; DatasetFetchError saying what it is otherwise (a
    folder, a device such as /dev/zero, a FIFO, or nothing)."""
    if path.is_file():
        return path
    if path.is_dir():
        raise DatasetFetchError(f"dataset {path} is a folder: name the CSV file in it")
    if path.exists():
        raise DatasetFetchError(
            f"dataset {path} is not a regular file (a device, FIFO or socket): name a CSV file"
        )
    raise DatasetFetchError(f"dataset file {path} does not exist")


def resolve(path: Path | None, *, url: str, expected_sha256: str, cache_dir: Path) -> Path:
    """The dataset file to use: an explicit path (a regular file), else the verified
    cache/download."""
    if path is not None:
        return regular_file(path)
    return fetch(url, expected_sha256, cache_dir)


def locate(
    *,
    explicit: Path | None,
    shared: Path,
    cache_dir: Path,
    url: str,
    expected_sha256: str,
    timeout_s: float = 30,
) -> Path:
    """The reference dataset, looked for in order; one error naming every place and the fixes.

    1. ``explicit`` (``LMF_DATASET_PATH``): used as given, an error if it does not exist;
    2. ``shared`` (``../shared/data/housing.csv`` next to a checkout);
    3. the fetch cache (``local-ml-flow dataset fetch``), when its sha256 matches;
    4. a verified download into that cache.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise DatasetFetchError(f"LMF_DATASET_PATH={explicit} is not a file")
        return explicit
    if shared.is_file():
        return shared
    try:
        return fetch(url, expected_sha256, cache_dir, timeout_s=timeout_s)
    except DatasetFetchError as exc:
        reason = exc.message.removesuffix(_LOCAL_COPY_HINT)
        raise DatasetFetchError(
            "the reference dataset housing.csv was not found. Looked at: LMF_DATASET_PATH (unset),"
            f" {shared} (missing), the cache {cached_path(cache_dir)} (missing or not the"
            f" pinned sha256), then the download: {reason}\nProvide it with one of:\n"
            "  LMF_DATASET_PATH=/path/to/housing.csv (a local copy)\n"
            f"  cp /path/to/housing.csv {shared}\n"
            "  local-ml-flow dataset fetch (once, with network; fills the cache)"
        ) from None
