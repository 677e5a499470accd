"""The Lambda zip: contents, limits, versions, reproducibility.

The zip is built once per session (bin/build_lambdas.sh, no Docker). That it really runs
the pipeline is proven in test_terraform: applied with Terraform to MiniStack on CPython
3.12, both functions invoked through the Lambda API.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import LAMBDAS_DIR, TERRAFORM_DIR, LambdaZip

DATA_BUCKET = "local-ml-flow-data"
MODELS_BUCKET = "local-ml-flow-models"
DATASET_KEY = "housing.csv"

LAMBDA_MAX_UNZIPPED = 250 * 1024 * 1024
# Top-level packages that must never ship in the function code.
FORBIDDEN_TOP_LEVEL = {
    "fastapi",
    "starlette",
    "uvicorn",
    "moto",
    "ministack",
    "boto3",
    "botocore",
    "pip",
}


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
    for module in ("embedded", "emulator_main", "lambda_package"):
        assert f"local_ml_flow/{module}.py" not in names
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
