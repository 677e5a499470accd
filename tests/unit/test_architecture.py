"""The import contracts of .importlinter hold, and each one fails when it is broken on purpose."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# contract name -> (file to edit, line that breaks it)
BREAKS = {
    "Layers": ("storage.py", "from local_ml_flow import pipeline"),
    "The ML code never touches AWS": ("ml/model.py", "import boto3"),
    "Only aws, storage and invoke import boto3 or botocore": ("runlog.py", "import botocore"),
    "The Lambda handlers never reach": ("handlers.py", "import fastapi"),
    "Routers are thin": ("api/routes/health.py", "from local_ml_flow import aws"),
}


def lint_imports(source_root: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract(tmp_path):
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    done = lint_imports(ROOT / "src", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
    assert done.stdout.count(" KEPT") == len(BREAKS)


@pytest.mark.parametrize("contract", sorted(BREAKS))
def test_a_broken_contract_fails_the_check(tmp_path, contract):
    source = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "local_ml_flow", source / "local_ml_flow")
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    path, line = BREAKS[contract]
    target = source / "local_ml_flow" / path
    text = target.read_text()
    # after the module's `from __future__` line, so the file still parses
    head, sep, rest = text.partition("from __future__ import annotations\n")
    target.write_text(f"{head}{sep}{line}\n{rest}" if sep else f"{line}\n{text}")
    done = lint_imports(source, tmp_path)
    assert done.returncode != 0, done.stdout
    broken = [row for row in done.stdout.splitlines() if row.endswith(" BROKEN")]
    assert any(row.startswith(contract) for row in broken), done.stdout
