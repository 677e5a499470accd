"""`dataset fetch` against a loopback HTTP server: verified, cached, tampered file refused."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from local_ml_flow import datasource
from local_ml_flow.errors import DatasetFetchError
from tests.conftest import free_port


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path, dataset_bytes: bytes) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a folder holding housing.csv and a tampered copy."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "housing.csv").write_bytes(dataset_bytes)
    (root / "tampered.csv").write_bytes(dataset_bytes.replace(b"13300000", b"99999999"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def expected_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_verifies_and_caches(http_root, tmp_path, dataset_bytes):
    url, root = http_root
    cache = tmp_path / "cache"
    path = datasource.fetch(f"{url}/housing.csv", expected_sha(dataset_bytes), cache)
    assert path.read_bytes() == dataset_bytes
    (root / "housing.csv").unlink()  # a valid cached copy is reused without the network
    assert datasource.fetch(f"{url}/housing.csv", expected_sha(dataset_bytes), cache) == path


def test_tampered_download_is_refused_and_not_cached(http_root, tmp_path, dataset_bytes):
    url, _ = http_root
    cache = tmp_path / "cache"
    with pytest.raises(DatasetFetchError, match="refusing the file"):
        datasource.fetch(f"{url}/tampered.csv", expected_sha(dataset_bytes), cache)
    assert list(cache.iterdir()) == []


def test_unreachable_url_says_what_to_do(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/housing.csv"
    with pytest.raises(DatasetFetchError, match="LMF_DATASET_PATH"):
        datasource.fetch(url, "0" * 64, tmp_path)


def test_non_http_url_is_refused(tmp_path):
    with pytest.raises(DatasetFetchError, match="only http"):
        datasource.fetch("file:///etc/passwd", "0" * 64, tmp_path)


def test_cli_fetch(http_root, tmp_path, dataset_bytes):
    url, _ = http_root
    cmd = [sys.executable, "-m", "local_ml_flow.cli", "dataset", "fetch"]
    args = ["--url", f"{url}/housing.csv", "--cache-dir", str(tmp_path / "c")]
    ok = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "verified and cached" in ok.stdout
    assert (tmp_path / "c" / "housing.csv").read_bytes() == dataset_bytes
    bad_args = ["--url", f"{url}/tampered.csv", "--cache-dir", str(tmp_path / "d")]
    bad = subprocess.run([*cmd, *bad_args], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1
    assert "error: downloaded" in bad.stderr
    assert "Traceback" not in bad.stderr
