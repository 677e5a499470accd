"""Deleting runs (issue 25, item 3), through a real server on the embedded emulator with
``LMF_KEEP_RUNS=3``: a deletion frees the run's objects in both buckets and the bytes on
disk, and the dataset versions no remaining run was trained on; the current run, a pinned run
and unknown ids are refused; a deletion cut half-way is finished by the next one; retention
keeps the newest finished runs, the current one and the pinned ones."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import datasets
from tests.api.conftest import ApiServer, assert_error, start_server
from tests.conftest import emulator_client

DATA, MODELS = "local-ml-flow-data", "local-ml-flow-models"
KEEP = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, dataset_path: Path) -> Iterator[ApiServer]:
    api = start_server(
        tmp_path_factory, dataset_path, env={"LMF_KEEP_RUNS": str(KEEP), "LMF_PROMOTION": "always"}
    )
    yield api
    api.stop()


@pytest.fixture(scope="module")
def s3(server: ApiServer) -> Any:
    return emulator_client("s3", server.emulator_url)


def run(client: httpx.Client, path: str = "/pipeline/runs", **body: Any) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def disk_bytes(server: ApiServer) -> int:
    state = server.log.parent / "state"
    return sum(p.stat().st_size for p in state.rglob("*") if p.is_file())


def current_id(client: httpx.Client) -> str:
    runs = client.get("/pipeline/runs", params={"limit": 500}).json()["runs"]
    (current,) = [r["run_id"] for r in runs if r["current"]]
    return current


def listed_ids(client: httpx.Client, path: str = "/pipeline/runs") -> list[str]:
    return [r["run_id"] for r in client.get(path, params={"limit": 500}).json()["runs"]]


def test_deleting_a_run_frees_its_objects_and_the_bytes_on_disk(
    client: httpx.Client, s3: Any, server: ApiServer
) -> None:
    old = run(client, random_state=1)
    current = run(client, random_state=2)
    assert current["current"] is True
    prefix = f"runs/{old['run_id']}/"
    assert keys(s3, DATA, prefix)
    assert keys(s3, MODELS, prefix)
    before = disk_bytes(server)

    response = client.delete(f"/pipeline/runs/{old['run_id']}")
    assert response.status_code == 200, response.text
    freed = response.json()
    assert freed["deleted"] == [old["run_id"]]
    assert freed["objects"] >= 8
    assert freed["bytes"] > 10_000
    assert freed["dataset_versions"] == []  # the current run was trained on the same data
    assert keys(s3, DATA, prefix) == []
    assert keys(s3, MODELS, prefix) == []
    assert before - disk_bytes(server) >= freed["bytes"] * 0.9
    assert_error(client.get(f"/pipeline/runs/{old['run_id']}"), 404, "NotFoundError")
    assert old["run_id"] not in listed_ids(client)
    refused = client.post(f"/pipeline/runs/{old['run_id']}/promote")
    assert_error(refused, 404, "NotFoundError")
    # what serves is untouched
    assert current_id(client) == current["run_id"]


def test_the_current_run_unknown_and_bad_ids_are_refused(client: httpx.Client) -> None:
    current = current_id(client)
    body = assert_error(client.delete(f"/pipeline/runs/{current}"), 409, "RunInUseError")
    assert "current" in body["message"]
    assert_error(client.delete("/pipeline/runs/20260101T000000Z-0000000a"), 404, "NotFoundError")
    assert client.delete("/pipeline/runs/..%2Fx").status_code in (404, 422)
    assert current_id(client) == current


def test_a_pinned_run_stays_until_unpinned(client: httpx.Client) -> None:
    kept = run(client, random_state=3)
    run(client, random_state=4)  # kept is no longer current
    pinned = client.put(f"/pipeline/runs/{kept['run_id']}/pin")
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["pinned"] is True
    body = assert_error(client.delete(f"/pipeline/runs/{kept['run_id']}"), 409, "RunInUseError")
    assert "pinned" in body["message"]
    unpinned = client.delete(f"/pipeline/runs/{kept['run_id']}/pin")
    assert unpinned.json()["pinned"] is False
    assert client.delete(f"/pipeline/runs/{kept['run_id']}").status_code == 200


def test_retention_keeps_the_newest_runs_the_current_and_the_pinned(
    client: httpx.Client, s3: Any
) -> None:
    oldest = run(client, random_state=10)
    assert client.put(f"/pipeline/runs/{oldest['run_id']}/pin").status_code == 200
    made = [run(client, random_state=11 + k)["run_id"] for k in range(KEEP + 2)]
    records = client.get("/pipeline/runs", params={"limit": 500}).json()["runs"]
    ids = [r["run_id"] for r in records]
    finished = [r for r in records if not r["current"] and not r["pinned"]]
    assert len(finished) == KEEP, ids
    assert oldest["run_id"] in ids  # pinned
    assert made[-1] in ids  # current
    assert set(made[-KEEP - 1 :]) <= set(ids)  # the newest
    assert made[0] not in ids
    assert keys(s3, DATA, f"runs/{made[0]}/") == []
    assert keys(s3, MODELS, f"runs/{made[0]}/") == []


def test_a_dataset_version_goes_with_the_last_run_trained_on_it(
    client: httpx.Client, s3: Any, dataset_bytes: bytes
) -> None:
    lines = dataset_bytes.splitlines(keepends=True)
    smaller = b"".join(lines[:-20])
    digest = hashlib.sha256(smaller).hexdigest()
    upload = client.put("/bucket/dataset", files={"file": ("h.csv", smaller, "text/csv")})
    assert upload.status_code == 200, upload.text
    on_smaller = run(client, random_state=20)
    assert on_smaller["dataset_sha256"] == digest
    back = client.put("/bucket/dataset", files={"file": ("h.csv", dataset_bytes, "text/csv")})
    assert back.status_code == 200, back.text
    run(client, random_state=21)  # current, on the original data
    archived = f"datasets/housing-{digest}.csv"
    assert keys(s3, DATA, archived) == [archived]

    freed = client.delete(f"/pipeline/runs/{on_smaller['run_id']}").json()
    assert freed["dataset_versions"] == [digest]
    assert keys(s3, DATA, archived) == []
    current_digest = hashlib.sha256(dataset_bytes).hexdigest()
    assert keys(s3, DATA, f"datasets/housing-{current_digest}.csv")  # the current one stays


def test_a_registered_datasets_run_and_version(client: httpx.Client, s3: Any) -> None:
    iris = datasets.iris()
    first, second = datasets.csv(iris.iloc[:140]), datasets.csv(iris)
    put = client.put(
        "/datasets/flowers",
        files={"file": ("f.csv", first, "text/csv")},
        data={"target": "species"},
    )
    assert put.status_code == 200, put.text
    old = run(client, "/datasets/flowers/runs")
    new_version = client.put("/datasets/flowers", files={"file": ("f.csv", second, "text/csv")})
    assert new_version.status_code == 200, new_version.text
    run(client, "/datasets/flowers/runs")
    response = client.delete(f"/datasets/flowers/runs/{old['run_id']}")
    assert response.status_code == 200, response.text
    digest = hashlib.sha256(first).hexdigest()
    assert response.json()["dataset_versions"] == [digest]
    assert keys(s3, DATA, f"datasets/flowers/runs/{old['run_id']}/") == []
    assert keys(s3, MODELS, f"datasets/flowers/runs/{old['run_id']}/") == []
    assert keys(s3, DATA, f"datasets/flowers/versions/{digest}.csv") == []
    document = json.loads(
        s3.get_object(Bucket=DATA, Key="datasets/flowers/dataset.json")["Body"].read()
    )
    history = {v["sha256"]: v for v in document["versions"]}
    assert history[digest]["deleted_at"]  # the history keeps it, marked
    shown = client.get("/datasets/flowers").json()["versions"]
    assert [v["deleted_at"] is not None for v in shown] == [False, True]
    assert old["run_id"] not in listed_ids(client, "/datasets/flowers/runs")


def test_a_deletion_cut_half_way_is_invisible_and_finished_by_the_next(
    client: httpx.Client, s3: Any
) -> None:
    victim = run(client, random_state=30)
    run(client, random_state=31)
    prefix = f"runs/{victim['run_id']}/"
    mark = {"run_id": victim["run_id"], "reason": "asked", "deleted_at": "2026-01-01T00:00:00Z"}
    s3.put_object(Bucket=DATA, Key=prefix + "deleted.json", Body=json.dumps(mark).encode())
    s3.delete_object(Bucket=DATA, Key=prefix + "metrics.json")  # cut after the first delete
    assert_error(client.get(f"/pipeline/runs/{victim['run_id']}"), 404, "NotFoundError")
    assert victim["run_id"] not in listed_ids(client)
    finished = client.delete(f"/pipeline/runs/{victim['run_id']}")
    assert finished.status_code == 200, finished.text
    assert keys(s3, DATA, prefix) == []
    assert keys(s3, MODELS, prefix) == []


def test_the_cli_deletes_and_pins(client: httpx.Client, server: ApiServer, s3: Any) -> None:
    one = run(client, random_state=40)["run_id"]
    run(client, random_state=41)
    env = {**os.environ, "AWS_ENDPOINT_URL": server.emulator_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "local_ml_flow.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    pinned = cli("pin", one)
    assert pinned.returncode == 0, pinned.stderr
    refused = cli("delete", one)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"error: run {one!r} is pinned: unpin it first"
    assert cli("pin", one, "--off").returncode == 0
    deleted = cli("delete", one, "--json")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout)["deleted"] == [one]
    assert keys(s3, DATA, f"runs/{one}/") == []
    bad = cli("delete", "../etc")
    assert bad.returncode == 1
    assert "is not a run id" in bad.stderr
