"""A state directory changed by hand or left half-written, and a full disk, as a user meets
them: through the run log, the CLI's ``doctor`` and the real API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from local_ml_flow.runlog import RunLog
from tests.api.conftest import assert_error
from tests.durability.test_faults import SETTINGS, emulator, run, store_of
from tests.e2e.test_embedded_state import emulator_pid, serve


def _manifest(state: Path, run_id: str) -> Path:
    return state / "s3" / "000000000000" / SETTINGS.data_bucket / "runs" / run_id / "manifest.json"


def test_a_file_truncated_by_hand_makes_its_run_corrupt_not_the_list(tmp_path, dataset_bytes):
    state = tmp_path / "state"
    running = emulator(state)
    try:
        store = store_of(running)
        for bucket in (SETTINGS.data_bucket, SETTINGS.models_bucket):
            store.s3.create_bucket(Bucket=bucket)
        store.put_bytes(store.data_bucket, store.dataset_key, dataset_bytes, "text/csv")
        edited, kept = run(store), run(store, model="ridge")
        manifest = _manifest(state, edited)
        manifest.write_bytes(manifest.read_bytes()[:40])  # its sidecar still says the old size
        statuses = {r["run_id"]: r["status"] for r in RunLog(store).list()}
        assert statuses == {edited: "corrupt", kept: "succeeded"}
        record = RunLog(store).record(edited)
        assert "shorter than its recorded size" in record["error"]["message"]
    finally:
        running.stop()
    restarted = emulator(state)  # the start records the file as it is
    try:
        statuses = {r["run_id"]: r["status"] for r in RunLog(store_of(restarted)).list()}
        assert statuses == {edited: "corrupt", kept: "succeeded"}
    finally:
        restarted.stop()
    log = (state / "emulator.log").read_text()
    assert f"{manifest}: its size on disk (40 bytes) differs from its record" in log


def doctor(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_ml_flow.cli", "doctor", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_doctor_finishes_committed_writes_and_rolls_back_the_others(tmp_path):
    state = tmp_path / "state"
    key = state / "s3" / "000000000000" / "bkt" / "key.txt"
    key.parent.mkdir(parents=True)
    key.write_bytes(b"old")
    key.with_name("key.txt.meta.json").write_text(json.dumps({"size": 3, "etag": '"x"'}))
    # a write committed (its journal renamed into place) but not carried out: finished
    journal = state / "s3-journal"
    journal.mkdir()
    staged = Path(f"{key}.lmf-new.tmp")
    staged.write_bytes(b"new!")
    (journal / "1-a.json").write_text(json.dumps({"writes": [[str(key), str(staged)]]}))
    # a write staged but never committed: removed
    other = key.with_name("other.txt.lmf-new.tmp")
    other.write_bytes(b"half")
    (journal / "2-b.json.tmp").write_text("{")
    done = doctor(state)
    assert done.returncode == 0, done.stderr
    assert key.read_bytes() == b"new!"
    assert not other.exists()
    assert not list(journal.iterdir())
    lines = done.stdout.splitlines()
    assert "repaired: completed the committed write 1-a.json" in lines
    assert "repaired: removed an uncommitted journal 2-b.json.tmp" in lines
    assert f"repaired: rolled back an uncommitted write of {key.with_name('other.txt')}" in lines
    # the sidecar said 3 bytes: the file, 4 bytes now, is recorded as it is
    assert json.loads(key.with_name("key.txt.meta.json").read_text())["size"] == 4
    again = doctor(state)
    assert again.stdout.strip() == f"the state in {state} is consistent: nothing to repair"
    not_ours = doctor(tmp_path / "elsewhere")
    assert not_ours.returncode == 1
    assert "holds no local-ml-flow state" in not_ours.stderr


def test_a_full_disk_is_507_and_changes_nothing(tmp_path, dataset_path):
    """The emulator cannot store an upload (ENOSPC at its first write): the API answers 507
    StorageFullError, the stored dataset stays and serves, and the next upload works."""
    state = tmp_path / "state"
    api = serve(state, dataset_path)  # provisions the state, then stops
    api.stop()
    upload = dataset_path.read_bytes().replace(b"\n", b"\r\n")
    api = serve(state, dataset_path, env={"LMF_EMULATOR_FAULT": "enospc@1"})
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            before = http.get("/bucket/dataset", params={"limit": 1}).json()
            files = {"file": ("housing.csv", upload, "text/csv")}
            refused = http.put("/bucket/dataset", files=files)
            error = assert_error(refused, 507, "StorageFullError")
            assert "No space left on device" in error["message"]
            assert http.get("/bucket/dataset", params={"limit": 1}).json() == before
            assert http.get("/bucket/datasets").status_code == 200
            accepted = http.put("/bucket/dataset", files=files)
            assert accepted.status_code == 200, accepted.text
    finally:
        api.stop()
    assert os.path.isdir(state / "s3")


def test_a_dead_emulator_is_said_and_restarted_on_the_same_state(tmp_path, dataset_path):
    """kill -9 of the emulator alone: /ready answers 503 with the reason, the log says it, and
    the stack restarts it on the same state; then everything serves again."""
    state = tmp_path / "state"
    api = serve(state, dataset_path)
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            assert http.post("/pipeline/runs", json={}).status_code == 201
            served = http.post("/predict", json={"houses": [EXAMPLE_HOUSE]}).json()["run_id"]
            os.killpg(emulator_pid(state, api.embedded_port), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while (ready := http.get("/ready")).status_code == 200:
                assert time.monotonic() < deadline, "the death was never noticed"
                time.sleep(0.1)
            assert ready.status_code == 503
            missing = ready.json()["missing"]
            assert len(missing) == 1
            assert missing[0].startswith("emulator running (the embedded emulator was killed")
            down = http.post("/predict", json={"houses": [EXAMPLE_HOUSE]})
            if down.status_code == 503:  # the restart may already be done
                assert "the embedded emulator was killed" in down.json()["error"]["message"]
            deadline = time.monotonic() + 60
            while (ready := http.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.2)
            again = http.post("/predict", json={"houses": [EXAMPLE_HOUSE]})
            assert again.status_code == 200, again.text
            assert again.json()["run_id"] == served
            assert http.post("/pipeline/runs", json={}).status_code == 201
    finally:
        api.stop()
    assert "the embedded emulator was killed (SIGKILL)" in api.log.read_text()
