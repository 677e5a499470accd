"""Crash and I/O-error exploration of the embedded emulator's S3 writes (in the spirit of
SQLite's crash tests and of ALICE, OSDI 2014).

For an upload, a run and a promotion, each on a copy of one stored state: the emulator is made
to crash (``crash@N``: the process dies) or to fail with ENOSPC (``enospc@N``) at its N-th
durable file operation (a write, fsync, rename or removal; ``emulator_main.Faults``). Then,
after a restart on the same state (and, for ENOSPC, also before it), every acknowledged write
must be there and everything stored must be readable: every object in full, the run list, the
current run's model, score.txt, the dataset and its history.

By default a run is explored at two points (its first commit point and its last operation),
crashed and failed; ``LMF_TESTS=full`` (the exhaustive suite) explores every point of all
three. Each prints how many points it explored (in pytest's terminal summary).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local_ml_flow import bootstrap, datasets, pipeline
from local_ml_flow.embedded import EmbeddedEmulator
from local_ml_flow.errors import LocalMlFlowError
from local_ml_flow.events import RunOptions
from local_ml_flow.invoke import LocalInvoker
from local_ml_flow.ml import dataset
from local_ml_flow.runlog import RunLog
from local_ml_flow.runner import run_pipeline
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore, make_store
from tests.conftest import emulator_client, free_port

SETTINGS = Settings(_env_file=None)
FULL = os.environ.get("LMF_TESTS") == "full"

Check = Callable[[ArtifactStore], None]  # an acknowledged write is there
Scenario = Callable[[ArtifactStore, bytes], Check]


def emulator(state: Path, **env: str) -> EmbeddedEmulator:
    running = EmbeddedEmulator("127.0.0.1", free_port(), state, env=env)
    running.start()
    return running


def store_of(running: EmbeddedEmulator) -> ArtifactStore:
    return make_store(SETTINGS, endpoint_url=running.endpoint_url)


class Acknowledged:
    """The S3 writes the emulator acknowledged (2xx) to a store's client, and the keys any
    write was attempted on: an acknowledged object must be there after a fault, as written,
    unless a later write to its key was attempted (that one may or may not have landed)."""

    WRITES = ("PutObject", "CopyObject", "DeleteObject", "CompleteMultipartUpload")

    def __init__(self, store: ArtifactStore) -> None:
        self.last: dict[tuple[str, str], str | None] = {}  # -> ETag (None: deleted)
        self.attempts: dict[tuple[str, str], int] = {}
        self.acknowledged_at: dict[tuple[str, str], int] = {}
        events = store.s3.meta.events
        for operation in self.WRITES:
            events.register(f"before-parameter-build.s3.{operation}", self._before)
            events.register(f"after-call.s3.{operation}", self._after)

    def _before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        where = (str(params["Bucket"]), str(params["Key"]))
        context["lmf_where"] = where
        self.attempts[where] = self.attempts.get(where, 0) + 1

    def _after(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        where = context.get("lmf_where")
        if where is None or not 200 <= http_response.status_code < 300:
            return
        etag = parsed.get("ETag") or parsed.get("CopyObjectResult", {}).get("ETag")
        self.last[where] = None if model.name == "DeleteObject" else str(etag).strip('"')
        self.acknowledged_at[where] = self.attempts[where]

    def check(self, after: ArtifactStore) -> int:
        """Every acknowledged write still stands (or a later one was attempted on its key);
        returns how many were checked."""
        checked = 0
        for (bucket, key), etag in self.last.items():
            if self.attempts.get((bucket, key), 0) > self.acknowledged_at[(bucket, key)]:
                continue  # a later write was attempted: either may stand
            head = after.head(bucket, key)
            if etag is None:
                assert head is None, f"s3://{bucket}/{key} was deleted, and is back"
            else:
                assert head is not None, f"s3://{bucket}/{key} was acknowledged, and is lost"
                assert head.etag.strip('"') == etag, f"s3://{bucket}/{key} is not as acknowledged"
            checked += 1
        return checked


def run(store: ArtifactStore, **options: object) -> str:
    invoker = LocalInvoker(bootstrap.local_functions(SETTINGS, store))
    chosen = RunOptions.model_validate({"promotion": "always", **options})
    return str(run_pipeline(invoker, RunLog(store), SETTINGS, chosen)["run_id"])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, dataset_bytes: bytes) -> Path:
    """A stopped state: buckets, the reference dataset, two runs (the second current)."""
    state = tmp_path_factory.mktemp("faults") / "base"
    running = emulator(state)
    try:
        s3 = emulator_client("s3", running.endpoint_url)
        for bucket in (SETTINGS.data_bucket, SETTINGS.models_bucket):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(
            Bucket=SETTINGS.data_bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        store = store_of(running)
        store.put_bytes(store.data_bucket, store.dataset_key, dataset_bytes, "text/csv")
        run(store)
        run(store, model="ridge")
    finally:
        running.stop()
    return state


def reversed_rows(data: bytes) -> bytes:
    header, *rows = data.strip().split(b"\n")
    return b"\n".join([header, *reversed(rows)]) + b"\n"


def upload(store: ArtifactStore, reference: bytes) -> Check:
    new = reversed_rows(reference)
    datasets.accept(store, new, max_bytes=10**8, max_rows=10**6)

    def check(after: ArtifactStore) -> None:
        assert after.get_bytes(after.data_bucket, after.dataset_key) == new

    return check


def new_run(store: ArtifactStore, reference: bytes) -> Check:
    run_id = run(store, feature_set="seed")

    def check(after: ArtifactStore) -> None:
        runs = RunLog(after)
        assert runs.record(run_id)["status"] == "succeeded"
        latest = runs.latest()
        assert latest is not None
        assert latest.run_id == run_id

    return check


def promotion(store: ArtifactStore, reference: bytes) -> Check:
    runs = RunLog(store)
    first = min(r["run_id"] for r in runs.list())
    pipeline.make_current(runs, first)

    def check(after: ArtifactStore) -> None:
        latest = RunLog(after).latest()
        assert latest is not None
        assert latest.run_id == first

    return check


def assert_serves(store: ArtifactStore) -> None:
    """Everything stored reads back: every object in full, the runs, the current model,
    score.txt, the dataset and its history."""
    for bucket in (store.data_bucket, store.models_bucket):
        for obj in store.list_objects(bucket):
            assert len(store.get_bytes(bucket, obj.key)) == obj.size, (bucket, obj.key)
    runs = RunLog(store)
    records = runs.list(limit=1000)
    # a run cut by the crash stays running (until abandoned): never corrupt
    assert all(r["status"] != "corrupt" for r in records), records
    latest = runs.latest()
    assert latest is not None
    pipeline.load_model(runs, latest.run_id)
    assert store.get_text(store.data_bucket, "score.txt").endswith("%")
    dataset.load_dataset(
        store.get_bytes(store.data_bucket, store.dataset_key), max_bytes=10**8, max_rows=10**6
    )
    datasets.history(store)


def operations(base: Path, where: Path, scenario: Scenario, reference: bytes) -> list[str]:
    """The durable file operations ``scenario`` makes, in order (one line each)."""
    shutil.copytree(base, where)
    log = where.parent / f"{where.name}.ops"
    running = emulator(where, LMF_EMULATOR_OPS_LOG=str(log))
    try:
        scenario(store_of(running), reference)
    finally:
        running.stop()
    return log.read_text().splitlines()


def points(ops: list[str]) -> list[int]:
    """Every operation (full), or both sides of a commit point: the first commit (a
    journal's rename: a fault there leaves the write undone) and the last operation (after
    the last commit: the write must be completed)."""
    n = len(ops)
    if FULL:
        return list(range(1, n + 1))
    commit = next(i for i, line in enumerate(ops, 1) if line.split()[1] == "rename")
    return sorted({commit, n})


SCENARIOS = {"upload": upload, "run": new_run, "promotion": promotion}


@pytest.mark.parametrize("fault", ["crash", "enospc"])
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("upload", marks=pytest.mark.full),
        "run",
        pytest.param("promotion", marks=pytest.mark.full),
    ],
)
def test_every_acknowledged_write_survives_a_fault_at_each_point(
    base: Path,
    tmp_path: Path,
    dataset_bytes: bytes,
    name: str,
    fault: str,
    record_property: Callable[[str, object], None],
) -> None:
    scenario = SCENARIOS[name]
    ops = operations(base, tmp_path / "count", scenario, dataset_bytes)
    assert ops, f"{name} made no durable file operation"
    explored = points(ops)
    acknowledged = writes_checked = 0
    for point in explored:
        state = tmp_path / f"{fault}-{point}"
        shutil.copytree(base, state)
        running = emulator(state, LMF_EMULATOR_FAULT=f"{fault}@{point}")
        check: Check | None = None
        store = store_of(running)
        writes = Acknowledged(store)
        with contextlib.suppress(LocalMlFlowError):  # not acknowledged: both states may stand
            check = scenario(store, dataset_bytes)
        try:
            if fault == "enospc":  # still up: what it serves is what it stored
                assert running.running, f"the emulator died of ENOSPC at {point}"
                assert_serves(store_of(running))
        finally:
            running.stop()
        restarted = emulator(state)
        try:
            after = store_of(restarted)
            assert_serves(after)
            writes_checked += writes.check(after)
            if check is not None:
                acknowledged += 1
                check(after)
        finally:
            restarted.stop()
        shutil.rmtree(state)
    said = (
        f"{name}, {fault}: explored {len(explored)} of {len(ops)} points"
        f" ({acknowledged} whole scenarios and {writes_checked} single writes acknowledged"
        f" and found intact){'' if FULL else '; LMF_TESTS=full explores all'}"
    )
    print(f"\n{said}")
    record_property("fault_points", [said])  # in the terminal summary (tests/conftest.py)
    if fault == "enospc":  # the one write that failed was refused, never acknowledged
        assert acknowledged < len(explored)
