"""What several benchmarks share: a free port, an older commit's code to compare with, the
reference dataset, an emulator on loopback, and a counter of S3 requests and round trips."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The reference housing.csv: LMF_DATASET_PATH, else ../shared/data/housing.csv
DATASET = Path(os.environ.get("LMF_DATASET_PATH", ROOT.parent / "shared/data/housing.csv"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def export(rev: str, into: Path) -> Path:
    """``rev``'s ``src/`` as files (git archive) under ``into``, importable with PYTHONPATH."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


class Counter:
    """Requests and overlapping-request waves (round trips on the critical path)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.inflight = 0
        self.requests = 0
        self.waves = 0
        self.ops: list[str] = []

    def sent(self, event_name: str = "", **_: Any) -> None:
        with self.lock:
            if self.inflight == 0:
                self.waves += 1
                self.ops.append("|")
            self.inflight += 1
            self.requests += 1
            self.ops.append(event_name.rsplit(".", 1)[-1])

    def received(self, **_: Any) -> None:
        with self.lock:
            self.inflight -= 1

    def take(self) -> dict[str, Any]:
        with self.lock:
            out = {
                "requests": self.requests,
                "waves": self.waves,
                "ops": " ".join(self.ops).strip("| "),
            }
            self.reset()
        return out


def start_ministack() -> tuple[Any, str]:
    """The embedded emulator (MiniStack, as ``serve --embedded`` runs it) on a free port,
    with a private temporary state directory."""
    sys.path.insert(0, str(ROOT / "src"))
    from local_ml_flow.embedded import EmbeddedEmulator

    emulator = EmbeddedEmulator(port=free_port())
    return emulator, emulator.start(fresh=True)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return server, url
        except OSError:
            time.sleep(0.05)
    server.terminate()
    raise SystemExit("moto server did not start")


def run_child(script: str, src: Path, args: list[str]) -> dict[str, Any]:
    """``script --child ARGS`` in a fresh process importing ``src`` (and benchmarks/), with
    test credentials and no endpoint from the environment; the JSON its last line prints,
    after checking it imported ``src``'s local_ml_flow."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), str(Path(__file__).parent)]),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run(
        [sys.executable, script, "--child", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed ({src}):\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not figures["module"].startswith(str(src)):
        raise SystemExit(f"child imported {figures['module']}, not {src}")
    return figures
