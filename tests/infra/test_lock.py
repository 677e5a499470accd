"""One lock: uv.lock matches pyproject.toml, the exported requirement files match uv.lock,
and every install (venv, zip, both images) goes through them."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from .conftest import ROOT, require_tool

LOCK_SCRIPT = ROOT / "bin" / "lock.sh"
EXPORTS = {
    "requirements.lock.txt": ["--no-emit-project", "--no-default-groups"],
    "lambdas/requirements.txt": ["--only-group", "lambda"],
}


@pytest.fixture(scope="module")
def uv() -> str:
    return require_tool("uv", "it comes with the dev extra (./bin/test.sh installs it)")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_lock_matches_pyproject(uv: str) -> None:
    proc = subprocess.run(
        [uv, "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"uv.lock is stale: run ./bin/lock.sh\n{proc.stderr}"


@pytest.mark.parametrize("path", sorted(EXPORTS))
def test_exported_requirements_match_the_lock(uv: str, path: str, tmp_path: Path) -> None:
    out = tmp_path / "export.txt"
    proc = subprocess.run(
        [uv, "export", "--frozen", "--quiet", "--format", "requirements.txt",
         *EXPORTS[path], "--output-file", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    def pins(text: str) -> list[str]:  # the header names the output file: compare the rest
        return [line for line in text.splitlines() if not line.startswith("#")]

    assert pins((ROOT / path).read_text()) == pins(out.read_text()), (
        f"{path} differs from uv.lock: run ./bin/lock.sh"
    )


def test_lock_has_one_version_of_each_package() -> None:
    """The venv (3.11 or 3.12) and the zip (3.12) cannot get different versions."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    names = [package["name"] for package in lock["package"]]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_every_lambda_dependency_is_pinned_with_hashes() -> None:
    text = (ROOT / "lambdas" / "requirements.txt").read_text()
    requirements = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE)
    names = {name for name, _ in requirements}
    assert {"scikit-learn", "numpy", "pandas", "pydantic", "skops"} <= names
    assert not names & {"boto3", "botocore", "fastapi", "uvicorn", "moto", "ministack"}
    # every line naming a package pins it and is followed by its hashes
    named = re.findall(r"^[A-Za-z].*$", text, re.MULTILINE)
    hashed = re.findall(r"^[A-Za-z0-9_.-]+==[^\n]*\\\n\s+--hash=sha256:", text, re.MULTILINE)
    assert len(named) == len(requirements) == len(hashed)


def test_images_and_zip_install_the_exports_with_hashes() -> None:
    api = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock.txt" in api
    assert "--no-deps ." in api
    lambda_image = (ROOT / "lambdas" / "Dockerfile").read_text()
    assert "--require-hashes" in lambda_image
    assert "-r /tmp/requirements.txt" in lambda_image
    build = (ROOT / "bin" / "build_lambdas.sh").read_text()
    assert "--require-hashes" in build
    assert '-r "$ROOT/lambdas/requirements.txt"' in build


def test_venv_scripts_sync_from_the_lock_frozen() -> None:
    venv = (ROOT / "bin" / "lib" / "venv.sh").read_text()
    assert "sync --frozen" in venv
    assert "pip install -e" not in venv


def test_license_metadata_is_consistent_with_the_build_requirement() -> None:
    data = pyproject()
    # an SPDX string in `license` (PEP 639) needs setuptools >= 77
    assert data["project"]["license"] == "MIT"
    requires = data["build-system"]["requires"]
    setuptools = next(r for r in requires if r.startswith("setuptools"))
    minimum = re.search(r">=\s*(\d+)", setuptools)
    assert minimum is not None
    assert int(minimum[1]) >= 77
    assert data["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def find_uv_in(tmp_path: Path, path_dirs: list[Path]) -> subprocess.CompletedProcess[str]:
    """`find_uv` of bin/lib/venv.sh with nothing to install uv with (PYTHON=false)."""
    env = {
        "PATH": ":".join([*map(str, path_dirs), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path / "home"),
        "PYTHON": "false",
        "LMF_UV_HOME": str(tmp_path / "uv-home"),
    }
    return subprocess.run(
        ["bash", "-c", '. bin/lib/venv.sh && find_uv && echo "found $UV"'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_find_uv_says_how_to_get_uv_when_it_cannot_install_it(tmp_path: Path) -> None:
    old = tmp_path / "old-bin"
    old.mkdir()
    (old / "uv").write_text("#!/bin/sh\necho 'uv 0.4.0'\n")  # too old for uv.lock
    (old / "uv").chmod(0o755)
    done = find_uv_in(tmp_path, [old])
    assert done.returncode == 1
    assert "installing uv" in done.stdout
    assert "error: uv >= 0.9.0 is needed and could not be installed from PyPI" in done.stderr
    assert "pipx install uv" in done.stderr
    assert "UV=/path/to/uv" in done.stderr


def test_find_uv_takes_a_recent_enough_uv_from_path(tmp_path: Path, uv: str) -> None:
    done = find_uv_in(tmp_path, [Path(uv).parent])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"found {uv}"
