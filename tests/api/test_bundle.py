"""A run as one bundle, through the real API and CLI: export from one embedded stack, import
into another, tampered bundles refused naming the member, nothing ever unpickled."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from tests.api.conftest import ApiServer, assert_error, start_server
from tests.component.test_cli_embedded import run_cli
from tests.conftest import Exploit

# Small limits, so that a zip bomb above them is small to make.
LIMITS = {"LMF_MAX_UPLOAD_BYTES": "4000000", "LMF_MAX_DATASET_BYTES": "1000000"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, dataset_path: Path) -> Iterator[ApiServer]:
    """This module's embedded stack, with small upload limits."""
    api = start_server(tmp_path_factory, dataset_path, env=LIMITS)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def runs(client: httpx.Client) -> list[dict[str, Any]]:
    """Two succeeded runs of the module's stack (the second current)."""
    made = []
    for options in ({}, {"feature_set": "seed", "promotion": "always"}):
        run = client.post("/pipeline/runs", json=options)
        assert run.status_code == 201, run.text
        made.append(run.json())
    return made


@pytest.fixture(scope="module")
def bundle(client: httpx.Client, runs: list[dict[str, Any]]) -> bytes:
    got = client.get(f"/pipeline/runs/{runs[0]['run_id']}/bundle")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/zip"
    assert f'filename="run-{runs[0]["run_id"]}.zip"' in got.headers["content-disposition"]
    return got.content


@pytest.fixture(scope="module")
def elsewhere(
    tmp_path_factory: pytest.TempPathFactory, dataset_path: Path
) -> Iterator[httpx.Client]:
    """Another stack, with a state of its own."""
    api = start_server(tmp_path_factory, dataset_path, env=LIMITS)
    try:
        with httpx.Client(base_url=api.url, timeout=120) as http:
            http.emulator_url = api.emulator_url  # type: ignore[attr-defined]
            yield http
    finally:
        api.stop()


def members(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(files: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            if name == symlink:
                info.external_attr = 0o120777 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def reindexed(files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` with bundle.json listing them as they now are (a consistent forgery)."""
    index = json.loads(files["bundle.json"])
    index["members"] = [
        {"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for p, d in sorted(files.items())
        if p != "bundle.json"
    ]
    return {**files, "bundle.json": json.dumps(index).encode()}


def post(http: httpx.Client, blob: bytes) -> httpx.Response:
    return http.post("/pipeline/runs/import", files={"file": ("run.zip", blob, "application/zip")})


def test_a_bundle_holds_the_run_its_model_test_split_and_dataset_version_with_sha256s(
    bundle: bytes, runs: list[dict[str, Any]], dataset_path: Path
) -> None:
    files = members(bundle)
    index = json.loads(files.pop("bundle.json"))
    assert index["run_id"] == runs[0]["run_id"]
    assert index["dataset"] == "housing"
    assert {"scikit-learn", "numpy", "python"} <= set(index["environment"])
    assert {m["path"]: m["sha256"] for m in index["members"]} == {
        p: hashlib.sha256(d).hexdigest() for p, d in files.items()
    }
    manifest = json.loads(files["data/manifest.json"])
    assert hashlib.sha256(files["models/model.skops"]).hexdigest() == manifest["model_sha256"]
    assert files[f"dataset/{manifest['dataset_sha256']}.csv"] == dataset_path.read_bytes()
    assert {"data/request.json", "data/metrics.json", "data/test_split.npz"} <= set(files)
    assert not [p for p in files if p.endswith(".joblib")], "a bundle holds no pickle"


def test_a_bundle_leaves_out_the_runs_reproductions(
    client: httpx.Client, runs: list[dict[str, Any]]
) -> None:
    """Attempts made on this stack: the importing stack reproduces the run itself."""
    run_id = runs[1]["run_id"]
    reproduced = client.post(f"/pipeline/runs/{run_id}/reproduce")
    assert reproduced.status_code == 200, reproduced.text
    assert reproduced.json()["identical"] is True
    got = client.get(f"/pipeline/runs/{run_id}/bundle")
    assert got.status_code == 200, got.text
    files = members(got.content)
    assert "data/manifest.json" in files
    assert not [p for p in files if "reproduction-" in p], sorted(files)


def test_an_unfinished_or_unknown_run_is_not_exported(client: httpx.Client) -> None:
    assert_error(client.get("/pipeline/runs/no-such-run/bundle"), 404, "NotFoundError")


Files = dict[str, bytes]
MODEL = "models/model.skops"


def _flipped(f: Files) -> Files:  # one byte of the model: its sha256 no longer matches
    return {**f, MODEL: f[MODEL][:-1] + bytes([f[MODEL][-1] ^ 1])}


def _forged(f: Files) -> Files:  # the index made to match: the run's manifest does not
    return reindexed({**f, MODEL: f[MODEL] + b"\0"})


def _pickled(f: Files) -> Files:  # a pickle that would run code if it were ever loaded
    return reindexed({**f, "data/model.joblib": pickle.dumps(Exploit("/nonexistent"))})


FORGERIES = [
    (_flipped, MODEL),
    (_forged, MODEL),
    (lambda f: reindexed({**f, "data/metrics.json": b'{"run_id": 1}'}), "data/metrics.json"),
    (lambda f: {**f, "data/extra.json": b"{}"}, "data/extra.json"),
    (lambda f: {k: v for k, v in f.items() if k != "data/test_split.npz"}, "data/test_split.npz"),
    (lambda f: {**f, "../../etc/evil.json": b"{}"}, "../../etc/evil.json"),
    (lambda f: {**f, "/tmp/evil.json": b"{}"}, "/tmp/evil.json"),
    (lambda f: {**f, "data/../manifest.json": b"{}"}, "data/../manifest.json"),
    (_pickled, "data/model.joblib"),
    (lambda f: {k: v for k, v in f.items() if k != "bundle.json"}, "bundle.json"),
]


@pytest.mark.parametrize(("forge", "named"), FORGERIES)
def test_a_tampered_bundle_is_refused_naming_the_member(
    client: httpx.Client, bundle: bytes, forge: Any, named: str
) -> None:
    error = assert_error(post(client, rezip(forge(members(bundle)))), 422, "InvalidRequestError")
    assert repr(named) in error["message"] or named in error["message"], error["message"]


def test_links_junk_and_zip_bombs_are_refused(client: httpx.Client, bundle: bytes) -> None:
    files = members(bundle)
    link = rezip(
        files, symlink="data/queued.json" if "data/queued.json" in files else "data/request.json"
    )
    assert (
        "not a regular file"
        in assert_error(post(client, link), 422, "InvalidRequestError")["message"]
    )
    junk = assert_error(post(client, b"PK\x03\x04 not really"), 422, "InvalidRequestError")
    assert "not a zip file" in junk["message"]
    many = rezip({**files, **{f"data/n{i}.json": b"{}" for i in range(80)}})
    assert (
        "members, above" in assert_error(post(client, many), 422, "InvalidRequestError")["message"]
    )
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data/big.json", b"0" * 6_000_000)  # 6 KB zipped, above 5 MB
    refused = assert_error(post(client, bomb.getvalue()), 422, "InvalidRequestError")
    assert "bytes, above" in refused["message"]


def test_a_run_that_exists_here_is_not_imported_again(client: httpx.Client, bundle: bytes) -> None:
    assert_error(post(client, bundle), 409, "AlreadyExistsError")


def test_imported_elsewhere_it_is_listed_finished_not_current_and_promotable(
    client: httpx.Client, elsewhere: httpx.Client, bundle: bytes, runs: list[dict[str, Any]]
) -> None:
    source = runs[0]
    imported = post(elsewhere, bundle)
    assert imported.status_code == 201, imported.text
    run = imported.json()
    assert (run["run_id"], run["status"], run["current"]) == (source["run_id"], "succeeded", False)
    assert run["metrics"] == source["metrics"]
    listed = elsewhere.get("/pipeline/runs").json()["runs"]
    assert source["run_id"] in [r["run_id"] for r in listed]
    # the usual path: it is checked to serve, then current; predictions as at home
    promoted = elsewhere.post(f"/pipeline/runs/{source['run_id']}/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["current"] is True
    houses = {"houses": [EXAMPLE_HOUSE]}
    here = elsewhere.post("/predict", json=houses).json()
    assert here["run_id"] == source["run_id"]
    assert elsewhere.get("/result/local-ml-flow-data").json() == {
        "content": source["metrics"]["score"]
    }
    # the bundle exported again from here is the same run, member for member
    again = members(elsewhere.get(f"/pipeline/runs/{source['run_id']}/bundle").content)
    again.pop("bundle.json")
    original = members(bundle)
    original.pop("bundle.json")
    assert again.keys() == original.keys()
    assert again["models/model.skops"] == original["models/model.skops"]


def test_the_cli_exports_and_imports_and_refuses_a_tampered_file(
    server: ApiServer,
    elsewhere: httpx.Client,
    runs: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    second = runs[1]["run_id"]
    out = tmp_path / "second.zip"
    home = {"AWS_ENDPOINT_URL": server.emulator_url}
    there = {"AWS_ENDPOINT_URL": elsewhere.emulator_url}  # type: ignore[attr-defined]
    exported = run_cli("export", second, "-o", str(out), env=home)
    assert exported.returncode == 0, exported.stderr
    assert f"run {second} exported to {out}" in exported.stdout

    files = members(out.read_bytes())
    tampered = tmp_path / "tampered.zip"
    split = files["data/test_split.npz"]
    tampered.write_bytes(
        rezip({**files, "data/test_split.npz": split[:-1] + bytes([split[-1] ^ 1])})
    )
    refused = run_cli("import", str(tampered), env=there)
    assert refused.returncode == 1
    assert "'data/test_split.npz' does not match its sha256" in refused.stderr

    imported = run_cli("import", str(out), "--json", env=there)
    assert imported.returncode == 0, imported.stderr
    record = json.loads(imported.stdout)
    assert (record["run_id"], record["status"], record["current"]) == (second, "succeeded", False)
