"""The cost of durable S3 writes on the embedded emulator: this checkout against a commit.

    .venv/bin/python benchmarks/durability.py --dataset ../shared/data/housing.csv --before REV

Two emulators on private state directories, one running this checkout's ``emulator_main.py``
(durable: staged files, fsync, a journal per request) and one running REV's (MiniStack's own
persistence); prints, for each, the median of:
- a warm run: ingestion then inference, in-process functions, over the emulator (``--runs``);
- a 50 MB upload (PutObject) and its read back;
- restart to answering with ``--stored`` runs' worth of objects stored (5 small objects per
  run), a graceful stop then a start on the same state.
The measurements alternate between the two (A B B A ...) so a loaded machine slows both alike.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import free_port
from local_ml_flow import bootstrap, embedded
from local_ml_flow.embedded import EmbeddedEmulator
from local_ml_flow.events import RunOptions
from local_ml_flow.invoke import LocalInvoker
from local_ml_flow.runlog import RunLog
from local_ml_flow.runner import run_pipeline
from local_ml_flow.settings import Settings
from local_ml_flow.storage import ArtifactStore, make_store

SETTINGS = Settings(_env_file=None)


class Emulator:
    """An emulator running a given ``emulator_main.py`` on its own state."""

    def __init__(self, script: str, state: Path) -> None:
        self.script, self.state = script, state
        self.running: EmbeddedEmulator | None = None

    def start(self) -> float:
        """Start it; seconds until it answers."""
        names = vars(embedded)  # the module's globals: spawn() runs names["emulator_main"]
        original = names["emulator_main"]
        names["emulator_main"] = type("Main", (), {"__file__": self.script})
        try:
            self.running = EmbeddedEmulator("127.0.0.1", free_port(), self.state)
            started = time.perf_counter()
            self.running.start()
            return time.perf_counter() - started
        finally:
            names["emulator_main"] = original

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()

    def store(self) -> ArtifactStore:
        assert self.running is not None
        return make_store(SETTINGS, endpoint_url=self.running.endpoint_url)


def prepare(emulator: Emulator, dataset: bytes) -> None:
    store = emulator.store()
    for bucket in (SETTINGS.data_bucket, SETTINGS.models_bucket):
        store.s3.create_bucket(Bucket=bucket)
    store.s3.put_bucket_versioning(
        Bucket=SETTINGS.data_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    store.put_bytes(store.data_bucket, store.dataset_key, dataset, "text/csv")


def warm_run(emulator: Emulator) -> float:
    store = emulator.store()
    invoker = LocalInvoker(bootstrap.local_functions(SETTINGS, store))
    started = time.perf_counter()
    run_pipeline(invoker, RunLog(store), SETTINGS, RunOptions(promotion="always"))
    return time.perf_counter() - started


def upload(emulator: Emulator, blob: bytes) -> float:
    store = emulator.store()
    started = time.perf_counter()
    store.put_bytes(store.data_bucket, "big/upload.bin", blob, "application/octet-stream")
    return time.perf_counter() - started


def fill(emulator: Emulator, runs: int) -> None:
    store = emulator.store()
    for i in range(runs):
        for name in ("request.json", "manifest.json", "metrics.json", "x.npy", "y.npy"):
            store.put_bytes(store.data_bucket, f"filler/{i}/{name}", b"{}" * 200, "text/plain")


def interleaved(a: Callable[[], float], b: Callable[[], float], n: int) -> tuple[float, float]:
    """Medians of ``a`` and ``b``, called A B B A ... ``n`` times each."""
    times: dict[str, list[float]] = {"a": [], "b": []}
    for i in range(n):
        order = ("a", "b") if i % 2 == 0 else ("b", "a")
        for name in order:
            times[name].append((a if name == "a" else b)())
    return statistics.median(times["a"]), statistics.median(times["b"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--before", required=True, help="the commit to compare with")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--stored", type=int, default=1000)
    args = parser.parse_args()
    dataset = args.dataset.read_bytes()
    root = Path(tempfile.mkdtemp(prefix="lmf-durability-"))
    old_script = root / "emulator_main_before.py"
    old_script.write_bytes(
        subprocess.run(
            ["git", "show", f"{args.before}:src/local_ml_flow/emulator_main.py"],
            capture_output=True,
            check=True,
        ).stdout
    )
    now = Emulator(str(Path(embedded.__file__).with_name("emulator_main.py")), root / "now")
    before = Emulator(str(old_script), root / "before")
    for emulator in (now, before):
        emulator.start()
        prepare(emulator, dataset)
    runs = interleaved(lambda: warm_run(now), lambda: warm_run(before), args.runs)
    blob = os.urandom(50 * 1024 * 1024)
    uploads = interleaved(lambda: upload(now, blob), lambda: upload(before, blob), 3)
    for emulator in (now, before):
        fill(emulator, args.stored)
        emulator.stop()

    def restart(emulator: Emulator) -> float:
        seconds = emulator.start()
        emulator.stop()
        return seconds

    restarts = interleaved(lambda: restart(now), lambda: restart(before), 3)
    print(f"durable S3 writes (this checkout) vs {args.before} (MiniStack's own), medians:")
    print(
        f"  warm run (in-process functions), {args.runs} each: "
        f"{runs[0] * 1000:.0f} ms vs {runs[1] * 1000:.0f} ms"
    )
    print(
        f"  50 MB PutObject, 3 each:            "
        f"{uploads[0] * 1000:.0f} ms vs {uploads[1] * 1000:.0f} ms"
    )
    print(
        f"  restart to answering, {args.stored} runs stored: "
        f"{restarts[0]:.2f} s vs {restarts[1]:.2f} s"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
