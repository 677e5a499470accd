"""The CLI's start-up path stays light: nothing heavy is imported before the emulator starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# What `local-ml-flow run --embedded` must not have loaded when it spawns the emulator: these
# load while the emulator starts (launch.py). A module-level import of one of them in the CLI,
# the settings, the events or launch's own imports would make every run wait for it first.
HEAVY = ("numpy", "pandas", "boto3", "botocore", "sklearn", "scipy", "skops", "fastapi")


def test_importing_the_cli_loads_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "import local_ml_flow.cli, local_ml_flow.launch\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert json.loads(done.stdout) == []
