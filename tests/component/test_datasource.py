"""The reference dataset: fetched (verified, cached, tampered file refused) and located."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
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
from tests.conftest import ROOT, free_port


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


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:abc/housing.csv", "http://[::1/housing.csv", "http:///housing.csv"]
)
def test_a_malformed_url_is_one_clear_error(tmp_path, url):
    """A mistyped LMF_DATASET_URL (urllib raises ValueError for some) is a DatasetFetchError
    (one line from the CLI), not a traceback."""
    with pytest.raises(DatasetFetchError, match="cannot download the dataset from"):
        datasource.fetch(url, "0" * 64, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # no partial download left


def test_a_server_that_does_not_speak_http_is_one_clear_error(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def answer_garbage() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/housing.csv"
        with pytest.raises(DatasetFetchError, match="cannot download the dataset from"):
            datasource.fetch(url, "0" * 64, tmp_path / "cache")
        thread.join(timeout=10)


def test_other_schemes_are_refused_and_a_file_url_is_verified(tmp_path, dataset_path):
    with pytest.raises(DatasetFetchError, match="only http"):
        datasource.fetch("ftp://example.org/housing.csv", "0" * 64, tmp_path)
    with pytest.raises(DatasetFetchError, match="expected 0000"):  # read, then refused
        datasource.fetch("file:///etc/passwd", "0" * 64, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing cached
    digest = hashlib.sha256(dataset_path.read_bytes()).hexdigest()
    cached = datasource.fetch(dataset_path.as_uri(), digest, tmp_path)  # offline: a local copy
    assert cached.read_bytes() == dataset_path.read_bytes()


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


# ---------------------------------------------------------------- where the tests look --


def locate(tmp_path: Path, url: str, sha: str, *, explicit: Path | None = None) -> Path:
    return datasource.locate(
        explicit=explicit,
        shared=tmp_path / "shared" / "housing.csv",
        cache_dir=tmp_path / "cache",
        url=url,
        expected_sha256=sha,
        timeout_s=5,
    )


def test_locate_order_explicit_shared_cache_download(http_root, tmp_path, dataset_bytes):
    url, root = http_root
    sha = expected_sha(dataset_bytes)
    # nothing local: the verified download, into the cache
    found = locate(tmp_path, f"{url}/housing.csv", sha)
    assert found == tmp_path / "cache" / "housing.csv"
    (root / "housing.csv").unlink()
    # the cache, without the network
    assert locate(tmp_path, f"{url}/housing.csv", sha) == found
    # the shared copy before the cache
    shared = tmp_path / "shared" / "housing.csv"
    shared.parent.mkdir()
    shared.write_bytes(dataset_bytes)
    assert locate(tmp_path, f"{url}/housing.csv", sha) == shared
    # LMF_DATASET_PATH before everything
    mine = tmp_path / "mine.csv"
    mine.write_bytes(dataset_bytes)
    assert locate(tmp_path, f"{url}/housing.csv", sha, explicit=mine) == mine


def test_locate_refuses_a_missing_explicit_path(tmp_path, dataset_bytes):
    with pytest.raises(DatasetFetchError, match=r"LMF_DATASET_PATH=.*not a file"):
        locate(tmp_path, "http://127.0.0.1:9/x", "0" * 64, explicit=tmp_path / "nope.csv")


def test_locate_with_nothing_says_how_to_provide_it(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/housing.csv"
    with pytest.raises(DatasetFetchError) as caught:
        locate(tmp_path, url, "0" * 64)
    message = caught.value.message
    for hint in ("LMF_DATASET_PATH=/path/to/housing.csv", "shared", "local-ml-flow dataset fetch"):
        assert hint in message


def plain_clone(tmp_path: Path) -> Path:
    """The tests and what they read, without a ../shared next to them."""
    repo = tmp_path / "clone" / "repo"
    for folder in ("tests", "src"):
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / folder, repo / folder, ignore=ignore)
    for name in ("pyproject.toml", ".env.example", ".importlinter"):
        shutil.copy(ROOT / name, repo / name)
    return repo


def run_pytest(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LMF_", "_LMF_", "PYTEST"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"],
        cwd=repo,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_plain_clone_without_the_dataset_stops_with_one_message(tmp_path):
    repo = plain_clone(tmp_path)
    done = run_pytest(
        repo,
        {
            "LMF_DATASET_URL": f"http://127.0.0.1:{free_port()}/housing.csv",
            "LMF_CACHE_DIR": str(tmp_path / "empty-cache"),
        },
    )
    out = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert out.count("the reference dataset housing.csv was not found") == 1, out
    assert "LMF_DATASET_PATH=/path/to/housing.csv" in out
    assert " passed" not in out
    assert " error" not in out


@pytest.mark.full  # the README test runs a fresh clone on LMF_DATASET_PATH in the default suite
def test_a_plain_clone_uses_lmf_dataset_path(tmp_path, dataset_path):
    repo = plain_clone(tmp_path)
    done = run_pytest(
        repo,
        {
            "LMF_DATASET_PATH": str(dataset_path),
            "LMF_DATASET_URL": f"http://127.0.0.1:{free_port()}/housing.csv",
            "LMF_CACHE_DIR": str(tmp_path / "empty-cache"),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout
