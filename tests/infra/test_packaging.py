"""The Lambda zip: contents, limits, versions, reproducibility, and that it runs the pipeline.

The zip is built once per session (bin/build_lambdas.sh, no Docker). The end-to-end test
unpacks it and calls both handlers under CPython 3.12 with nothing on sys.path but the
unpacked zip, the standard library and boto3 (what the Lambda runtime adds), against a
moto server standing in for S3 - as LocalStack runs the function.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from .conftest import LAMBDAS_DIR, TERRAFORM_DIR, LambdaZip, find_python312

DATA_BUCKET = "local-ml-flow-data"
MODELS_BUCKET = "local-ml-flow-models"
DATASET_KEY = "housing.csv"

LAMBDA_MAX_UNZIPPED = 250 * 1024 * 1024
# Top-level packages that must never ship in the function code.
FORBIDDEN_TOP_LEVEL = {"fastapi", "starlette", "uvicorn", "moto", "boto3", "botocore", "pip"}

# Runs one handler the way the Lambda runtime does: import "module.function", call it with
# the event and a context, print the JSON result and where the modules came from.
RUNNER = r"""
import importlib, json, sys
task_root, runtime_dir, handler, event = sys.argv[1:5]
sys.path[:0] = [task_root]
sys.path.append(runtime_dir)
module_name, _, function_name = handler.rpartition(".")
function = getattr(importlib.import_module(module_name), function_name)

class Context:
    function_name = handler
    aws_request_id = "test-request"
    def get_remaining_time_in_millis(self):
        return 300_000

result = function(json.loads(event), Context())
origins = {
    name: getattr(sys.modules.get(name), "__file__", None)
    for name in ("local_ml_flow", "pandas", "numpy", "sklearn", "pydantic", "boto3", "botocore")
}
leaked = sorted(m for m in ("fastapi", "uvicorn", "moto", "local_ml_flow.api") if m in sys.modules)
print(json.dumps({"result": result, "origins": origins, "leaked": leaked}, default=str))
"""


def load_packager() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_zip", LAMBDAS_DIR / "package_zip.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def handlers_in_terraform() -> dict[str, str]:
    """{function key: handler} as written in terraform/main.tf."""
    text = (TERRAFORM_DIR / "main.tf").read_text()
    found = dict(re.findall(r'(\w+) = \{\s*name\s*=[^\n]*\n\s*handler\s*=\s*"([\w.]+)"', text))
    assert set(found) == {"ingestion", "inference"}, found
    return found


# ---------------------------------------------------------------- the packager ---------


def make_tree(root: Path) -> None:
    files = {
        "pkg/__init__.py": "x = 1\n",
        "pkg/core.so": "binary",
        "pkg/_testing.py": "kept\n",
        "pkg/testing/__init__.py": "kept\n",
        "pkg/tests/test_core.py": "dropped\n",
        "pkg/__pycache__/core.cpython-312.pyc": "dropped",
        "pkg/core.pyi": "dropped\n",
        "pkg/include/core.h": "dropped\n",
        "bin/tool": "#!/some/build/python\n",
        "pkg-1.0.dist-info/METADATA": "Name: pkg\n",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_trim_drops_tests_caches_stubs_and_scripts_but_keeps_testing_modules(
    tmp_path: Path,
) -> None:
    packager = load_packager()
    make_tree(tmp_path)
    assert packager.trim(tmp_path) > 0
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "pkg-1.0.dist-info/METADATA",
        "pkg/__init__.py",
        "pkg/_testing.py",
        "pkg/core.so",
        "pkg/testing/__init__.py",
    ]


def test_zip_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    packager = load_packager()
    make_tree(tmp_path / "tree")
    first = tmp_path / "first.zip"
    second = tmp_path / "second.zip"
    packager.write_zip(tmp_path / "tree", first)
    for path in (tmp_path / "tree").rglob("*"):  # new mtimes: must not matter
        os.utime(path, (1_700_000_000, 1_700_000_000))
    packager.write_zip(tmp_path / "tree", second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_packager_fails_over_the_size_limit(tmp_path: Path) -> None:
    packager = load_packager()
    make_tree(tmp_path / "tree")
    out = tmp_path / "out.zip"
    assert packager.main([str(tmp_path / "tree"), str(out), "--max-unzipped-bytes", "10"]) == 1
    assert not out.exists()


# ---------------------------------------------------------------- the real zip ---------


@pytest.mark.slow
def test_zip_holds_the_functions_and_only_what_they_need(lambda_zip: LambdaZip) -> None:
    with zipfile.ZipFile(lambda_zip.path) as zf:
        infos = zf.infolist()
    names = [info.filename for info in infos]
    unzipped = sum(info.file_size for info in infos)
    top_level = {name.split("/")[0] for name in names}

    for module in ("handlers", "pipeline", "settings", "storage", "aws", "errors", "invoke"):
        assert f"local_ml_flow/{module}.py" in names
    assert not [n for n in names if n.startswith("local_ml_flow/api/")]
    assert "local_ml_flow/cli.py" not in names
    assert "local_ml_flow/embedded.py" not in names
    for package in (
        "pandas",
        "numpy",
        "sklearn",
        "scipy",
        "joblib",
        "pydantic",
        "pydantic_settings",
        "pydantic_core",
    ):
        assert package in top_level, package
    assert not FORBIDDEN_TOP_LEVEL & top_level
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if "/tests/" in n]
    # manylinux wheels for CPython 3.12 on x86_64, whatever the build machine is
    assert [n for n in names if re.search(r"\.cpython-312-x86_64-linux-gnu\.so$", n)]
    assert not [n for n in names if re.search(r"\.cpython-3(?!12)\d+-.*\.so$", n)]

    assert unzipped < LAMBDA_MAX_UNZIPPED
    assert f"unzipped: {unzipped / 1024 / 1024:.1f} MB" in lambda_zip.build_log
    assert "zipped:" in lambda_zip.build_log


# ---------------------------------------------------------------- it runs --------------


@pytest.fixture(scope="module")
def python312() -> str:
    python = find_python312()
    if python is None:
        pytest.skip("no CPython 3.12 here (python3.12 or LMF_PYTHON312): cannot run the zip")
    return python


# What the python3.12 Lambda runtime puts on sys.path (/var/runtime) besides the function:
# boto3 and its dependencies (pure Python). Taken from the venv, at uv.lock's versions.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boto3 as the python3.12 Lambda runtime provides it (/var/runtime), outside the zip."""
    target = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        assert spec.origin is not None, name
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (target / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return target


@pytest.fixture(scope="module")
def task_root(lambda_zip: LambdaZip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip unpacked, as Lambda unpacks it into /var/task."""
    root = tmp_path_factory.mktemp("var-task")
    with zipfile.ZipFile(lambda_zip.path) as zf:
        zf.extractall(root)
    return root


@pytest.fixture
def s3_with_dataset(private_moto: str, dataset_bytes: bytes) -> Any:
    """The two buckets and the dataset, as Terraform leaves them (fresh for each test)."""
    s3 = boto3.client("s3", endpoint_url=private_moto, region_name="us-east-1")
    for bucket in (DATA_BUCKET, MODELS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=DATA_BUCKET, Key=DATASET_KEY, Body=dataset_bytes)
    yield s3
    for bucket in (DATA_BUCKET, MODELS_BUCKET):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
                s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        s3.delete_bucket(Bucket=bucket)


RunHandler = Callable[[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture
def run_handler(
    python312: str, task_root: Path, runtime_dir: Path, private_moto: str, tmp_path: Path
) -> RunHandler:
    def run(handler: str, event: dict[str, Any]) -> dict[str, Any]:
        # Only what Lambda (LocalStack) gives the function: Terraform's variables, the
        # region, credentials and - injected by LocalStack, never by us - the endpoint.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path),
            "LANG": "C.UTF-8",
            "LAMBDA_TASK_ROOT": str(task_root),
            "AWS_LAMBDA_FUNCTION_NAME": handler,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": private_moto,
            "LMF_DATA_BUCKET": DATA_BUCKET,
            "LMF_MODELS_BUCKET": MODELS_BUCKET,
            "LMF_DATASET_KEY": DATASET_KEY,
        }
        proc = subprocess.run(
            # -I: no user site, no PYTHON* variables; -S: no site-packages at all.
            [
                python312,
                "-I",
                "-S",
                "-c",
                RUNNER,
                str(task_root),
                str(runtime_dir),
                handler,
                json.dumps(event),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=task_root,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"{handler} failed:\n{proc.stdout}\n{proc.stderr}"
        output: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        for name, origin in output["origins"].items():
            base = runtime_dir if name.startswith("boto") else task_root
            assert origin is not None, f"{name} was not imported"
            assert Path(origin).is_relative_to(base), f"{name} came from {origin}"
        assert output["leaked"] == []
        result: dict[str, Any] = output["result"]
        return result

    return run


def object_keys(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


@pytest.mark.slow
def test_both_handlers_run_from_the_unpacked_zip_under_python312(
    s3_with_dataset: Any, run_handler: RunHandler
) -> None:
    s3 = s3_with_dataset
    handlers = handlers_in_terraform()

    trained = run_handler(handlers["ingestion"], {})
    assert trained["run_id"]
    assert trained["n_test"] > 0
    assert "model.joblib" in object_keys(s3, MODELS_BUCKET)
    assert {"x_test.joblib", "y_test.joblib"} <= object_keys(s3, DATA_BUCKET)

    scored = run_handler(handlers["inference"], {})
    assert set(scored) >= {"run_id", "r2", "mae", "rmse", "n_test", "score"}
    assert scored["run_id"] == trained["run_id"]
    assert scored["n_test"] == trained["n_test"]
    assert 0.5 < scored["r2"] < 0.8  # twelve features + linear: R² 0.653 on this dataset
    score = s3.get_object(Bucket=DATA_BUCKET, Key="score.txt")["Body"].read().decode()
    assert re.fullmatch(r"\d{1,3}\.\d{2}%", score.strip())
    assert score.strip() == scored["score"]
    assert float(score.strip().rstrip("%")) == pytest.approx(scored["r2"] * 100, abs=0.01)


# ---------------------------------------------------------------- one lock -------------

SHARED_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "joblib", "pydantic", "skops")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.slow
def test_zip_and_venv_run_the_same_library_versions(lambda_zip: LambdaZip) -> None:
    """A model written by the functions is read by the API with the very same libraries."""
    with zipfile.ZipFile(lambda_zip.path) as zf:
        metadata = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        in_zip: dict[str, str] = {}
        for name in metadata:
            headers = zf.read(name).decode()
            dist = re.search(r"^Name: (.+)$", headers, re.MULTILINE)
            version = re.search(r"^Version: (.+)$", headers, re.MULTILINE)
            assert dist is not None
            assert version is not None
            in_zip[canonical(dist[1].strip())] = version[1].strip()
    in_venv = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    for library in SHARED_LIBRARIES:
        assert library in in_zip, f"{library} missing from the zip"
        assert in_zip[library] == in_venv[library], library
    shared = set(in_zip) & set(in_venv)
    assert {name: in_zip[name] for name in shared} == {name: in_venv[name] for name in shared}
