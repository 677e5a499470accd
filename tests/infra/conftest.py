"""Fixtures of the infrastructure tests: tools, emulators (moto, MiniStack on 3.12), the zip."""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
LAMBDAS_DIR = ROOT / "lambdas"
BUILD_SCRIPT = ROOT / "bin" / "build_lambdas.sh"
VENV_BIN = Path(sys.executable).parent

TF_PLUGIN_MIRROR = Path(os.environ.get("LMF_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
TF_AWS_PROVIDER = TF_PLUGIN_MIRROR / "registry.terraform.io" / "hashicorp" / "aws"

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """A missing tool: a failure in CI (it must not pass silently), a skip locally."""
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def find_tool(name: str) -> str | None:
    """A tool from the running interpreter's bin directory (.venv/bin) or PATH."""
    candidate = VENV_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def require_tool(name: str, how: str) -> str:
    """The path of a tool, or fail/skip (see `missing`) saying how to install it."""
    path = find_tool(name)
    if path is None:
        missing(f"{name} not found: {how}")
        raise AssertionError("unreachable")
    return path


def find_python312() -> str | None:
    """A CPython 3.12 that really runs (a pyenv shim may exist without the version active)."""
    candidates: list[str] = []
    if override := os.environ.get("LMF_PYTHON312"):
        candidates.append(override)
    if which := shutil.which("python3.12"):
        candidates.append(which)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob("versions/3.12*/bin/python3.12"))
    candidates += ["/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    for candidate in candidates:
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "True":
            return candidate
    return None


# ---------------------------------------------------------------- moto -----------------


def wait_for_http(url: str, timeout_s: float = 30.0) -> None:
    """Poll url until it answers at all (any HTTP status)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def private_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server in its own process, on a free loopback port, for one test module.

    Moto's state is global to a process, so a server started in this process would share
    it with every other test; a separate process isolates it completely.
    """
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/moto-api/")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ---------------------------------------------------------------- MiniStack on 3.12 ----

# The built zip holds cp312 wheels and MiniStack runs a function on its own interpreter:
# the Terraform test runs MiniStack from a CPython 3.12 virtualenv of its own (git-ignored),
# with what the python3.12 Lambda runtime provides (boto3).
PY312_VENV = ROOT / ".lmf" / "py312-ministack"


def pinned_ministack() -> str:
    """``ministack==X.Y.Z`` exactly as pyproject.toml pins it."""
    match = re.search(r'"(ministack==[\w.]+)"', (ROOT / "pyproject.toml").read_text())
    assert match, "pyproject.toml must pin ministack exactly"
    return match.group(1)


@pytest.fixture(scope="session")
def ministack_python312() -> str:
    """The interpreter of a CPython 3.12 virtualenv with the pinned MiniStack (made once)."""
    python312 = find_python312()
    if python312 is None:
        missing(
            "NOT TESTED: Terraform end to end needs CPython 3.12 to run the cp312 zip under"
            " MiniStack (none found; set LMF_PYTHON312=/path/to/python3.12)"
        )
        raise AssertionError("unreachable")
    # boto3 as the Lambda runtime provides it to the functions: the locked version (the venv's)
    boto3 = f"boto3=={importlib.metadata.version('boto3')}"
    spec = f"{python312}\n{pinned_ministack()}\n{boto3}"
    stamp = PY312_VENV / ".lmf-spec"
    python = PY312_VENV / "bin" / "python"
    if not python.exists() or not stamp.exists() or stamp.read_text() != spec:
        shutil.rmtree(PY312_VENV, ignore_errors=True)
        steps = [
            [python312, "-m", "venv", str(PY312_VENV)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             pinned_ministack(), boto3],
        ]  # fmt: skip
        for step in steps:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
            if proc.returncode != 0:
                missing(f"NOT TESTED: could not set up {PY312_VENV}: {proc.stderr[-2000:]}")
        stamp.write_text(spec)
    return str(python)


# ---------------------------------------------------------------- the zip --------------


@dataclass(frozen=True)
class LambdaZip:
    """The zip built by bin/build_lambdas.sh, and what the build printed."""

    path: Path
    build_log: str

    @property
    def bytecode(self) -> bool:
        """Whether the build shipped the modules' bytecode (it prints what it added)."""
        return "bytecode: none" not in self.build_log


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> LambdaZip:
    """The Lambda zip as bin/build_lambdas.sh builds it by default (with the modules' bytecode,
    compiled by the CPython 3.12 the tests find), once per session."""
    python312 = find_python312()
    env = {"LMF_PYTHON312": python312} if python312 else {}
    return shared_zip(tmp_path_factory, "lambda-build", env)


@pytest.fixture(scope="session")
def lambda_zip_without_bytecode(tmp_path_factory: pytest.TempPathFactory) -> LambdaZip:
    """The zip built with LMF_LAMBDA_BYTECODE=0 (no .pyc shipped), once per session."""
    return shared_zip(tmp_path_factory, "lambda-build-no-bytecode", {"LMF_LAMBDA_BYTECODE": "0"})


def shared_zip(
    tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str]
) -> LambdaZip:
    """Build a Lambda zip once per session, into a temporary directory.

    Under pytest-xdist the workers share it: the first one to need it builds it while the
    others wait on a lock, in the session's temporary root that all workers have in common.
    """
    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    base = tmp_path_factory.getbasetemp().parent if shared else tmp_path_factory.getbasetemp()
    work = base / name
    work.mkdir(exist_ok=True)
    with (work / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = work / "local-ml-flow-lambda.zip"
        log = work / "build.log"
        if not log.exists():
            log.write_text(build_zip(work, out, env))
        return LambdaZip(path=out, build_log=log.read_text())


def build_zip(work: Path, out: Path, extra_env: dict[str, str] | None = None) -> str:
    """Run bin/build_lambdas.sh into `out`; its output."""
    env = {**os.environ, "PYTHON": sys.executable, "LMF_LAMBDA_BUILD_DIR": str(work / "build")}
    env.pop("LMF_LAMBDA_BYTECODE", None)  # the default build, unless extra_env says otherwise
    env.update(extra_env or {})
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, f"build failed:\n{proc.stdout}\n{proc.stderr}"
    print(f"\n[build_lambdas.sh] {took:.1f} s\n{proc.stdout}")
    shutil.rmtree(work / "build", ignore_errors=True)
    return proc.stdout
