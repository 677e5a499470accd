"""The embedded stack's small parts: the browser guard, the source package, the state
directory and its reset."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from local_ml_flow import emulator_main, lambda_package, statedir
from local_ml_flow.embedded import EmulatorError, _StateLock, reset_state
from local_ml_flow.statedir import StateDirError


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"host": "127.0.0.1:4566", "authorization": "AWS4-HMAC-SHA256 ..."}, False),
        ({"host": "localhost:4566"}, False),
        ({"host": "local-ml-flow-data.s3.localhost:4566"}, False),
        ({"host": "[::1]:4566"}, False),
        ({}, False),
        ({"host": "127.0.0.1:4566", "origin": "https://example.com"}, True),
        ({"host": "127.0.0.1:4566", "origin": "null"}, True),
        ({"host": "127.0.0.1:4566", "sec-fetch-mode": "no-cors"}, True),
        ({"host": "attacker.example:4566"}, True),
        ({"host": "127.0.0.1.attacker.example"}, True),
        ({"host": "localhost.attacker.example"}, True),
    ],
)
def test_refusal(headers: dict[str, str], refused: bool) -> None:
    assert (emulator_main.refusal(headers) is not None) == refused


def call(app: Any, headers: list[tuple[bytes, bytes]], path: str = "/") -> tuple[int, bytes, bool]:
    """One HTTP request through an ASGI app: (status, body, whether the inner app ran)."""
    sent: list[dict[str, Any]] = []
    reached: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    asyncio.run(app(inner)(scope, receive, send))
    return sent[0]["status"], sent[1]["body"], bool(reached)


def test_guard_answers_403_before_the_emulator_sees_the_request() -> None:
    status, body, reached = call(emulator_main.guard, [(b"origin", b"https://example.com")])
    assert (status, reached) == (403, False)
    assert b"Origin header" in body
    assert call(emulator_main.guard, [(b"host", b"127.0.0.1:4566")]) == (200, b"inner", True)


SECRET = "s3cr3t-token"


@pytest.mark.parametrize(
    ("path", "token", "refused"),
    [
        ("/_ministack/reset", None, True),
        ("/_ministack/reset", "wrong", True),
        ("/_ministack/reset", SECRET + "x", True),
        ("/_ministack/reset", SECRET, False),
        ("/_ministack/health", None, True),
        ("/_ministack/config", "", True),
        ("//_ministack/reset", None, True),
        ("/_MiniStack/reset", None, True),
        ("/_ministack", None, True),
        ("/local-ml-flow-data/_ministack/reset", None, False),  # an S3 key: data plane
        ("/health", None, False),  # MiniStack's read-only health alias stays open
        ("/", None, False),
    ],
)
def test_admin_paths_need_the_token(path: str, token: str | None, refused: bool) -> None:
    headers = {"host": "127.0.0.1:4566"}
    if token is not None:
        headers[emulator_main.ADMIN_HEADER] = token
    assert (emulator_main.refusal(headers, path, SECRET) is not None) == refused


def test_without_a_token_every_admin_request_is_refused() -> None:
    headers = {"host": "127.0.0.1:4566", emulator_main.ADMIN_HEADER: ""}
    assert emulator_main.refusal(headers, "/_ministack/ready", "") is not None


def test_guard_refuses_admin_paths_before_the_emulator_sees_them() -> None:
    def guarded(inner: Any) -> Any:
        return emulator_main.guard(inner, SECRET)

    status, body, reached = call(guarded, [(b"host", b"127.0.0.1")], "/_ministack/reset")
    assert (status, reached) == (403, False)
    assert b"x-lmf-admin-token" in body
    token = [(b"host", b"127.0.0.1"), (b"x-lmf-admin-token", SECRET.encode())]
    assert call(guarded, token, "/_ministack/reset") == (200, b"inner", True)
    assert call(guarded, [(b"x-lmf-admin-token", b"\xff")], "/_ministack/reset")[0] == 403


def test_source_zip_is_reproducible_and_holds_only_what_functions_import() -> None:
    package = lambda_package.source_zip()
    assert package == lambda_package.source_zip()
    names = zipfile.ZipFile(io.BytesIO(package)).namelist()
    assert "local_ml_flow/handlers.py" in names
    assert "local_ml_flow/ml/model.py" in names
    assert not [n for n in names if n.startswith("local_ml_flow/api/")]
    for module in ("cli", "embedded", "emulator_main", "lambda_package", "statedir"):
        assert f"local_ml_flow/{module}.py" not in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert len(lambda_package.code_sha256(package)) == 44  # base64 of 32 bytes


def test_source_zip_follows_the_code(tmp_path: Path) -> None:
    root = tmp_path / "local_ml_flow"
    root.mkdir()
    (root / "handlers.py").write_text("x = 1\n")
    before = lambda_package.source_zip(root)
    (root / "handlers.py").write_text("x = 2\n")
    assert lambda_package.source_zip(root) != before


def test_reset_deletes_only_the_emulators_state(tmp_path: Path) -> None:
    statedir.claim(tmp_path)  # a state directory of ours (the marker)
    for name in ("s3/000000000000/bucket", "emulator", "tmp/worker"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "emulator.log").write_text("log")
    (tmp_path / "notes.txt").write_text("the user's")
    deleted = reset_state(tmp_path)
    assert {p.name for p in deleted} == {"s3", "emulator", "tmp", "emulator.log"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".local-ml-flow-state",
        ".lock",
        "notes.txt",
    ]
    assert reset_state(tmp_path / "missing") == []


def test_reset_removes_a_link_never_what_it_points_to(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep").mkdir(parents=True)
    state = tmp_path / "state"
    statedir.claim(state)
    (state / "tmp").symlink_to(elsewhere, target_is_directory=True)
    (state / "s3").symlink_to(elsewhere / "keep", target_is_directory=True)
    assert {p.name for p in reset_state(state)} == {"tmp", "s3"}
    assert (elsewhere / "keep").is_dir()


def test_a_state_directory_is_ours_only_with_the_marker_or_only_our_entries(
    tmp_path: Path,
) -> None:
    assert statedir.status(tmp_path / "new") == "missing"
    assert statedir.status(tmp_path) == "empty"
    previous = tmp_path / "previous"  # what a version before the marker left
    for name in ("s3", "emulator", "tmp"):
        (previous / name).mkdir(parents=True)
    (previous / "emulator.log").write_text("log")
    (previous / ".lock").write_text("")
    assert statedir.status(previous) == "previous"
    assert statedir.claim(previous) == "previous"
    marker = json.loads((previous / ".local-ml-flow-state").read_text())
    assert marker == {"format": statedir.FORMAT}
    assert statedir.status(previous) == "ours"
    assert not [p for p in previous.iterdir() if p.name.endswith(".tmp")]

    foreign = tmp_path / "foreign"
    (foreign / "s3").mkdir(parents=True)
    (foreign / "photos").mkdir()
    with pytest.raises(StateDirError, match=r"it holds photos and no \.local-ml-flow-state"):
        statedir.status(foreign)
    with pytest.raises(StateDirError):
        reset_state(foreign)
    with pytest.raises(StateDirError):
        statedir.claim(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["photos", "s3"]  # nothing written

    linked = tmp_path / "linked"  # an entry of ours by name, but a link: not adopted
    linked.mkdir()
    (linked / "tmp").symlink_to(foreign, target_is_directory=True)
    with pytest.raises(StateDirError, match="it holds tmp"):
        statedir.status(linked)


def test_the_root_is_never_a_state() -> None:
    # status() only reads: no test may ever ask to reset or claim a real system directory
    with pytest.raises(StateDirError, match="it is the file system root"):
        statedir.status(Path("/"))


def test_the_home_is_never_a_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"  # a home of the test's own, holding only entries a stack makes
    (home / "tmp" / "draft").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(StateDirError, match="it is the home directory"):
        statedir.claim(home)
    with pytest.raises(StateDirError, match="it is the home directory"):
        reset_state(home)
    assert [p.name for p in home.iterdir()] == ["tmp"]
    assert (home / "tmp" / "draft").is_dir()


def test_a_state_directory_that_cannot_be_made_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateDirError, match="it cannot be written"):
        statedir.claim(tmp_path / "file" / "state")


def test_a_newer_or_unreadable_marker_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / ".local-ml-flow-state"
    marker.write_text('{"format": 99}')
    with pytest.raises(StateDirError, match="format 99, made by a newer local-ml-flow"):
        statedir.claim(tmp_path)
    marker.write_text("junk")
    with pytest.raises(StateDirError, match="unreadable"):
        reset_state(tmp_path)


def test_reset_is_refused_while_a_stack_holds_the_state(tmp_path: Path) -> None:
    (tmp_path / "s3").mkdir()
    with _StateLock(tmp_path), pytest.raises(EmulatorError, match="in use by local-ml-flow"):
        reset_state(tmp_path)
    assert (tmp_path / "s3").is_dir()


def test_an_emulator_that_died_can_be_started_again(tmp_path: Path) -> None:
    import os
    import signal

    from local_ml_flow.embedded import EmbeddedEmulator
    from tests.conftest import free_port

    emulator = EmbeddedEmulator("127.0.0.1", free_port(), tmp_path / "state")
    emulator.start()
    try:
        assert emulator.pid is not None
        os.killpg(emulator.pid, signal.SIGKILL)
        os.waitpid(emulator.pid, 0)
        assert not emulator.running
        emulator.start()  # same object, same state: no "state in use" from our own lock
        assert emulator.running
    finally:
        emulator.stop()
    assert not emulator.running


class FakeS3:
    """What ``make_durable`` wraps, shaped like MiniStack's S3 module: a PUT stages its file
    and fires its event notification while the request runs."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.fired: list[tuple[str, bool]] = []  # (key, its file on disk when fired)
        self.logger = logging.getLogger("tests.fake_s3")
        self._buckets = SimpleNamespace(_data={})

    async def handle_request(self, method: str, path: str, headers: dict[str, str]) -> Any:
        key = path.strip("/")
        self._atomic_write(str(self.data_dir / key), b"bytes")
        self._fire_s3_event_async("bucket", key, "s3:ObjectCreated:Put")
        return 200, {}, b""

    def _fire_s3_event_async(self, bucket: str, key: str, event_name: str) -> None:
        self.fired.append((key, (self.data_dir / key).exists()))

    def _atomic_write(self, path: str, data: bytes) -> None:
        raise AssertionError("replaced by make_durable")

    def _parse_bucket_key(self, path: str, headers: dict[str, str]) -> tuple[str, str]:
        return "bucket", path.strip("/")

    def _error(self, code: str, message: str, status: int) -> Any:
        return status, {}, message.encode()

    def get_account_id(self) -> str:
        return "000000000000"


def test_an_uploads_notification_fires_after_its_commit_and_never_for_a_refused_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = FakeS3(tmp_path / "s3")
    emulator_main.make_durable(s3, str(tmp_path / "s3"), str(tmp_path / "journal"))
    answer = asyncio.run(s3.handle_request("PUT", "/stored.csv", {}))
    assert answer[0] == 200
    assert s3.fired == [("stored.csv", True)]  # fired once the file was committed

    monkeypatch.setattr(emulator_main, "FAULTS", emulator_main.Faults("enospc@1"))
    refused = asyncio.run(s3.handle_request("PUT", "/refused.csv", {}))
    assert refused[0] == 507
    assert s3.fired == [("stored.csv", True)]  # a write refused notifies nothing
