"""The state directory through the real CLI and a real emulator: the stack deletes only in a
directory it made (the marker), and only what it made there; anything else is refused in one
line (exit code 1), with nothing written or deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from local_ml_flow import aws, statedir
from local_ml_flow.embedded import EmbeddedEmulator, reset_state
from tests.conftest import free_port


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_ml_flow.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ, "LMF_EMBEDDED_PORT": str(free_port()), **env},
    )


def assert_refused(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Exit code 1, one line on stderr saying what is wrong, no traceback, nothing started."""
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines
    assert fragment in lines[0], lines[0]
    assert "embedded AWS" not in done.stdout  # the emulator never started


def user_folder(path: Path) -> dict[str, bytes]:
    """A folder of the user's that happens to hold ``tmp/`` and ``s3/``; its files, read back."""
    for name, text in {"tmp/session": b"open", "s3/backup": b"mine", "notes.txt": b"keep"}.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(text)
    return files(path)


def files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_reset_refuses_the_home_directory(tmp_path: Path) -> None:
    """``local-ml-flow reset --yes --state-dir ~`` once deleted ``~/tmp`` and ``~/s3``."""
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)  # only entries a stack would make: still refused
    (home / "s3").mkdir()
    (home / "tmp" / "draft").write_text("mine")
    done = cli("reset", "--yes", "--state-dir", str(home), env={"HOME": str(home)}, cwd=tmp_path)
    assert_refused(done, "it is the home directory")
    assert (home / "tmp" / "draft").read_text() == "mine"
    assert sorted(p.name for p in home.iterdir()) == ["s3", "tmp"]


def test_reset_refuses_a_folder_that_is_not_a_state(tmp_path: Path) -> None:
    folder = tmp_path / "var"
    before = user_folder(folder)
    done = cli("reset", "--yes", "--state-dir", str(folder), env={}, cwd=tmp_path)
    assert_refused(done, "it holds notes.txt and no .local-ml-flow-state marker")
    assert "LMF_STATE_DIR" in done.stderr
    assert files(folder) == before


def test_start_and_fresh_refuse_a_folder_that_is_not_a_state(
    tmp_path: Path, dataset_path: Path
) -> None:
    """``LMF_STATE_DIR=/var`` once emptied ``/var/tmp`` at every start, ``--fresh`` more."""
    folder = tmp_path / "var"
    before = user_folder(folder)
    env = {"LMF_STATE_DIR": str(folder)}
    for fresh in ([], ["--fresh"]):
        done = cli(
            "run", "--embedded", "--dataset", str(dataset_path), *fresh, env=env, cwd=tmp_path
        )
        assert_refused(done, f"{folder} cannot be a local-ml-flow state directory")
        assert files(folder) == before  # no lock, no log, no marker: nothing written
    for args in (
        ["serve", "--embedded", "--no-run", "--port", str(free_port())],
        ["dataset", "list", "--embedded"],
    ):
        assert_refused(cli(*args, env=env, cwd=tmp_path), "it holds notes.txt")
    assert files(folder) == before


def test_an_empty_state_dir_is_refused_not_the_current_directory(
    tmp_path: Path, dataset_path: Path
) -> None:
    before = user_folder(tmp_path)
    for args in (["reset", "--yes"], ["run", "--embedded", "--dataset", str(dataset_path)]):
        done = cli(*args, env={"LMF_STATE_DIR": ""}, cwd=tmp_path)
        assert_refused(done, "LMF_STATE_DIR")
        assert "must not be empty" in done.stderr
    done = cli("reset", "--yes", "--state-dir", "", env={}, cwd=tmp_path)
    assert_refused(done, "--state-dir is empty")
    assert files(tmp_path) == before


def test_a_state_made_before_the_marker_is_adopted_and_kept(tmp_path: Path) -> None:
    """A previous version's state (its entries only, no marker) starts as before and is
    marked; a reset then deletes the stack's entries and keeps a file the user put there."""
    state = tmp_path / "state"
    emulator = EmbeddedEmulator("127.0.0.1", free_port(), state)
    emulator.start()
    try:
        s3 = aws.client("s3", endpoint_url=emulator.endpoint_url)
        s3.create_bucket(Bucket="lmf-adopt")
        s3.put_object(Bucket="lmf-adopt", Key="kept.txt", Body=b"acknowledged")
    finally:
        emulator.stop()
    (state / statedir.MARKER).unlink()  # what the previous version left: no marker
    made = {"s3", "s3-journal", "emulator", "emulator.log", ".lock", "admin-token"}
    assert {p.name for p in state.iterdir()} <= made

    again = EmbeddedEmulator("127.0.0.1", free_port(), state)
    again.start()
    try:
        s3 = aws.client("s3", endpoint_url=again.endpoint_url)
        assert s3.get_object(Bucket="lmf-adopt", Key="kept.txt")["Body"].read() == b"acknowledged"
    finally:
        again.stop()
    marker = json.loads((state / statedir.MARKER).read_text())
    assert marker == {"format": statedir.FORMAT}

    (state / "notes.txt").write_text("the user's")  # in a marked state: kept, never deleted
    done = cli("reset", "--yes", "--state-dir", str(state), env={}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in state.iterdir()) == [".local-ml-flow-state", ".lock", "notes.txt"]
    assert reset_state(state) == []
