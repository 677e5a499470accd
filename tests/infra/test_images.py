"""bin/check_images.sh: both images built and proven in containers (exhaustive suite), its quick
contract by default (help, a printed skip where no container engine runs; shellcheck in
test_docker_lint)."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "bin" / "check_images.sh"
CANNOT_RUN_HERE = 77  # the script's exit status when the check cannot run on this machine


def run_script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_help_names_both_images_and_the_ci_form() -> None:
    proc = run_script("--help", timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert "lambdas/Dockerfile" in proc.stdout
    assert "--engine docker --no-build" in proc.stdout


def test_no_container_engine_is_a_printed_skip_not_a_pass() -> None:
    proc = run_script("--engine", "lmf-no-such-engine", "--no-build", timeout=10)
    assert proc.returncode == CANNOT_RUN_HERE, proc.stdout + proc.stderr
    assert proc.stdout.startswith("SKIP: no lmf-no-such-engine"), proc.stdout


def test_unknown_argument_is_refused() -> None:
    proc = run_script("--bogus", timeout=10)
    assert proc.returncode == 2
    assert "unknown argument --bogus" in proc.stderr


@pytest.mark.full
def test_both_images_build_and_pass_the_smoke_check() -> None:
    """The real thing: bases made here, both images built, served, invoked (10-20 minutes
    cold, about 3 with podman's layer cache)."""
    proc = run_script(timeout=3600)  # LMF_DATASET_PATH, when set, is the dataset mounted
    if proc.returncode == CANNOT_RUN_HERE:
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "score.txt after the Lambda image's ingestion then inference: 65.29%" in proc.stdout
    assert "==> the images pass" in proc.stdout
