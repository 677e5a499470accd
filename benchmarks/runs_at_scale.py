"""The run record at scale: 10,000 runs stored, this checkout against a commit.

    .venv/bin/python benchmarks/runs_at_scale.py --dataset ../shared/data/housing.csv --before REV

Starts `local-ml-flow serve --embedded` on a private state, makes three real runs (one
promoted, one kept back by the promotion policy, one failed), then seeds ``--runs`` runs by
writing copies of those runs' documents (every object a real run writes in the data bucket:
queued, request, manifest, metrics, predictions, test split, error, kept) under new run ids
through the store, to the emulator on that state (started for the seeding with fsync turned
off, so 10,000 runs take minutes, not an hour; the models bucket, which no listing reads, is
not copied). Every 10th seeded run failed, every 20th was kept back. Then, for this checkout
and for REV (``git archive``, on PYTHONPATH; both serve the same state), alternating A B B A
(the machine is shared), it restarts the API and measures:
- restart to ready: process start to `GET /health` answering 200 (the emulator loading the
  stored objects included);
- the first `GET /pipeline/runs?limit=50` after that restart;
- the first `GET /ui` after it (the dashboard's runs page, its default page of 100);
- the API process's peak RSS (VmHWM) after them.
This checkout's run index is built by the first listing after the seeding (its time is printed
once, as "first listing, no index yet"), before the measured restarts. Prints medians; asserts
nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.api.conftest import ApiServer  # noqa: E402

from common import export, free_port  # noqa: E402
from local_ml_flow import embedded, emulator_main  # noqa: E402
from local_ml_flow.errors import KeyNotFoundError  # noqa: E402
from local_ml_flow.runlog import RUNS_PREFIX  # noqa: E402
from local_ml_flow.settings import Settings  # noqa: E402
from local_ml_flow.storage import ArtifactStore, make_store  # noqa: E402

SETTINGS = Settings(_env_file=None)
Figures = dict[str, float]


PATIENT = """\
import local_ml_flow.embedded as embedded

_wait_ready = embedded.EmbeddedEmulator.wait_ready
embedded.EmbeddedEmulator.wait_ready = lambda self, timeout_s=0: _wait_ready(self, 1800.0)
"""


class Server(ApiServer):
    """The tests' server, given time to load 10,000 runs' objects: its emulator too (a
    sitecustomize on PYTHONPATH lifts `serve`'s 60 s wait for the emulator)."""

    def __init__(self, log: Path, args: list[str], env: dict[str, str]) -> None:
        patient = log.parent / "patient"
        patient.mkdir(exist_ok=True)
        (patient / "sitecustomize.py").write_text(PATIENT)
        path = [str(patient), *filter(None, [env.get("PYTHONPATH")])]
        super().__init__(log, args, {**env, "PYTHONPATH": os.pathsep.join(path)})

    def _wait(self, timeout_s: float = 1800) -> None:
        super()._wait(timeout_s)


def real_runs(api: httpx.Client, store: ArtifactStore) -> tuple[str, str, str]:
    """A promoted run, a run kept back (worse), a run whose ingestion failed: their ids."""
    best = api.post("/pipeline/runs", json={}).json()["run_id"]
    kept = api.post("/pipeline/runs", json={"feature_set": "seed"}).json()["run_id"]
    good = store.get_bytes(store.data_bucket, store.dataset_key)
    store.put_bytes(store.data_bucket, store.dataset_key, b"price,area\n1,2\n", "text/csv")
    try:
        failed = api.post("/pipeline/runs", json={}).json()["error"]["details"]["run_id"]
    finally:
        store.put_bytes(store.data_bucket, store.dataset_key, good, "text/csv")
    return best, kept, failed


def documents(store: ArtifactStore, run_id: str) -> dict[str, bytes]:
    """Every object of a run in the data bucket, by name."""
    prefix = f"{RUNS_PREFIX}{run_id}/"
    return {
        o.key[len(prefix) :]: store.get_bytes(store.data_bucket, o.key)
        for o in store.list_objects(store.data_bucket, prefix)
    }


def seed(store: ArtifactStore, templates: dict[str, tuple[str, dict[str, bytes]]], n: int) -> None:
    """``n`` runs, copies of the templates' objects under new ids (older than the real runs)."""
    start = time.time() - 3600 * 24 * 30

    def one(i: int) -> None:
        kind = "failed" if i % 10 == 9 else "kept" if i % 20 == 4 else "best"
        template_id, objects = templates[kind]
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start + i * 60))
        run_id = f"{stamp}{i % 1_000_000:06d}Z-seed{i:05x}"
        for name, data in objects.items():
            if name.endswith(".json"):
                data = data.replace(template_id.encode(), run_id.encode())
            key = f"{RUNS_PREFIX}{run_id}/{name}"
            store.put_bytes(store.data_bucket, key, data, "application/json")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(n)))


@contextlib.contextmanager
def fast_emulator(work: Path) -> Iterator[str]:
    """The embedded emulator on the benchmark's state, with fsync turned off (seeding only)."""
    script = work / "emulator_without_fsync.py"
    script.write_text(
        "import os, runpy\n"
        "os.fsync = lambda fd: None\n"
        f"runpy.run_path({emulator_main.__file__!r}, run_name='__main__')\n"
    )
    names = vars(embedded)  # spawn() runs names["emulator_main"].__file__
    original = names["emulator_main"]
    names["emulator_main"] = types.SimpleNamespace(**{**vars(original), "__file__": str(script)})
    try:
        emulator = embedded.EmbeddedEmulator("127.0.0.1", free_port(), work / "state")
        emulator.start()
        try:
            yield emulator.endpoint_url
        finally:
            emulator.stop()
    finally:
        names["emulator_main"] = original


def measure(work: Path, env: dict[str, str]) -> Figures:
    """Restart the API on the seeded state and time what the first user does."""
    started = time.perf_counter()
    server = Server(work / "server.log", ["--embedded", "--no-run"], env)
    figures: Figures = {"restart to ready (s)": time.perf_counter() - started}
    try:
        with httpx.Client(base_url=server.url, timeout=300) as api:
            for name, path in (
                ("first GET /pipeline/runs?limit=50 (ms)", "/pipeline/runs?limit=50"),
                ("first GET /ui (ms)", "/ui"),
            ):
                started = time.perf_counter()
                api.get(path).raise_for_status()
                figures[name] = (time.perf_counter() - started) * 1000
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        figures["API peak RSS (MB)"] = int(hwm.split()[1]) / 1024
    except Exception:
        print(server.log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        server.stop()
    return figures


def seed_state(work: Path, dataset: Path, runs: int, quiet: dict[str, str]) -> None:
    """Real runs, the seeded ones, then this checkout's first listing (its index built)."""
    server = ApiServer(
        work / "server.log", ["--embedded", "--dataset", str(dataset), "--no-run"], quiet
    )
    try:
        store = make_store(SETTINGS, endpoint_url=server.emulator_url)
        with httpx.Client(base_url=server.url, timeout=300) as api:
            best, kept, failed = real_runs(api, store)
        templates = {k: (r, documents(store, r)) for k, r in (("best", best), ("kept", kept))}
        templates["failed"] = (failed, documents(store, failed))
    finally:
        server.stop()
    started = time.perf_counter()
    with fast_emulator(work) as endpoint:
        seed(make_store(SETTINGS, endpoint_url=endpoint), templates, runs)
    objects = sum(len(o) for _, o in templates.values()) / 3 * runs
    seconds = time.perf_counter() - started
    print(f"seeded {runs} runs (~{objects:,.0f} objects) in {seconds:.0f} s")


def index_state(work: Path, runs: int, quiet: dict[str, str]) -> None:
    """This checkout's first listing of the seeded runs: its index built, then filled."""
    server = Server(work / "server.log", ["--embedded", "--no-run"], quiet)
    try:
        with httpx.Client(base_url=server.url, timeout=600) as api:
            started = time.perf_counter()
            listed = api.get("/pipeline/runs", params={"limit": 50}).json()
            built = time.perf_counter() - started
            print(f"first listing, no index yet (this checkout): {built:.1f} s")
            assert len(listed["runs"]) == 50
            while _settled(server) < runs:  # the index reads every run in the background
                time.sleep(2)
            print(f"index filled (every run read once): {time.perf_counter() - started:.0f} s")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/housing.csv")
    parser.add_argument("--before", help="the commit to compare with")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--reuse", type=Path, help="the folder of an earlier run of this script: no seeding"
    )
    args = parser.parse_args()
    quiet = {"LMF_LOG_LEVEL": "WARNING"}
    if args.reuse is None:
        work = Path(tempfile.mkdtemp(prefix="lmf-bench-scale-"))
        print(f"state in {work} (--reuse {work} measures it again)")
        seed_state(work, args.dataset, args.runs, quiet)
    else:
        work = args.reuse
    if not (work / "indexed").exists():
        index_state(work, args.runs, quiet)
        (work / "indexed").touch()
    candidates: dict[str, Callable[[], Figures]] = {"this checkout": lambda: measure(work, quiet)}
    if args.before:
        old = export(args.before, work / "before")
        env = {**quiet, "PYTHONPATH": str(old)}
        candidates[args.before] = lambda: measure(work, env)
    results: dict[str, list[Figures]] = {name: [] for name in candidates}
    names = list(candidates)
    for i in range(args.rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            results[name].append(candidates[name]())
    print(f"\nmedians of {args.rounds} restarts each:")
    keys = list(next(iter(results.values()))[0])
    print(f"{'':<42}" + "".join(f"{name[:18]:>20}" for name in names))
    for key in keys:
        row = "".join(
            f"{statistics.median(r[key] for r in results[name]):>20.2f}" for name in names
        )
        print(f"{key:<42}{row}")


def _settled(server: ApiServer) -> int:
    """How many runs' records the run index's snapshot holds."""
    store = make_store(SETTINGS, endpoint_url=server.emulator_url)
    try:
        snapshot = json.loads(store.get_bytes(store.data_bucket, "runs-index/snapshot.json"))
    except KeyNotFoundError:
        return 0
    return sum(1 for row in snapshot["runs"] if row[4] is not None)


if __name__ == "__main__":
    main()
