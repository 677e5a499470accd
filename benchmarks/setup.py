"""Fresh clone to an API answering /ready: the set-up time a new user waits.

    python3 benchmarks/setup.py --dataset ../shared/data/housing.csv [--runs 2]

Clones the current commit (HEAD) into a temporary directory and times
`./bin/start_all.sh --embedded` there until GET /ready answers 200: .venv created from
uv.lock by `uv sync --frozen` (uv's package cache as it is on this machine: run it twice to
see the warm figure), the embedded stack, the first training, the server. Then a second
start on the same clone (venv already synced). Prints figures; asserts nothing.
Target (issue 12): <= 60 s with the package cache warm. Needs only the standard library.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def time_to_ready(clone: Path, dataset: Path, log: Path) -> float:
    """Seconds from launching start_all.sh in `clone` to /ready answering 200."""
    port = free_port()
    env = {**os.environ, "LMF_EMBEDDED_PORT": str(free_port())}
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["./bin/start_all.sh", "--embedded", "--dataset", str(dataset), "--port", str(port)],
            cwd=clone,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"start_all.sh exited early:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() - started > 900:
                raise SystemExit(f"not ready after 900 s:\n{log.read_text()}")
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a local housing.csv")
    parser.add_argument("--runs", type=int, default=1, help="fresh clones to time")
    args = parser.parse_args()
    dataset = args.dataset.resolve()
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="lmf-setup-") as tmp:
            clone = Path(tmp) / "repo"
            subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
            first = time_to_ready(clone, dataset, Path(tmp) / "first.log")
            again = time_to_ready(clone, dataset, Path(tmp) / "again.log")
            venv_mb = sum(f.stat().st_size for f in (clone / ".venv").rglob("*") if f.is_file()) / (
                1024 * 1024
            )
            print(
                f"run {run}: fresh clone -> /ready {first:.1f} s; second start {again:.1f} s;"
                f" .venv {venv_mb:.0f} MB (runtime dependencies only)"
            )


if __name__ == "__main__":
    main()
